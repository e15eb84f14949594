"""`l3ae build`: interactions (+ embeddings) -> model.h5."""

import click

from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import (cluster_from, cluster_options, config_from, data_from,
                               data_options, model_options)
from l3ae.engine.memory import parse_size
from l3ae.errors import ConfigError


class Size(click.ParamType):
    """A memory size: 8G, 500M, 1.5G, 3GiB or plain bytes (K/M/G/T are powers of 1024)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@data_options
@model_options
@cluster_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--max-memory", type=Size(), metavar="SIZE",
              help="Memory budget of the build, e.g. 8G or 500M. When the n×n matrix does not "
                   "fit, it is solved out of core on tiles in a file in --workdir, sized to fit "
                   "the budget (same model, slower and needs disk). Default: no limit.")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Folder of the tile file <out>.tiles.h5 of an out-of-core build (default: "
                   "the folder of --out). Needs about n²/2 × 4 bytes free in float32: 3.2 GB "
                   "for 40k items, 20 GB for 100k. Deleted when the build succeeds.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted out-of-core build from the last finished tile "
                   "column of its tile file. Same inputs and model options required: a file "
                   "made from other inputs, or damaged, is refused.")
@click.option("--foldable", is_flag=True,
              help="Also store what `l3ae add-items` needs to add items later without a "
                   "rebuild (P·W·E and E: 2·n·d floats more in the file).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def build(out, max_memory, workdir, resume, foldable, quiet, **kw):
    """Build an item–item model in closed form and write it to --out.

    \b
    Examples:
      l3ae build --dataset ml-1m --model l3ae --out ml1m.h5
      l3ae build --interactions ratings.csv --min-rating 4 --embeddings emb.h5 \\
                 --model l3ae --reg-x -100 --reg-e 150 --topk 200 --out model.h5
      l3ae build --interactions ratings.csv --model ease --reg-x 300 --out ease.h5
    Every item of emb.h5, those without interactions too (the default of text-aware models;
    --catalog interactions keeps only the interactions' items):
      l3ae build --interactions ratings.csv --embeddings emb.h5 --catalog both --out model.h5
    Ready for new items later (`l3ae add-items`), without a rebuild:
      l3ae build --interactions ratings.csv --embeddings emb.h5 --foldable --out model.h5
    A catalog too large for memory (interrupted? rerun the same line with --resume):
      l3ae build --interactions books.csv --model ease --max-memory 12G \\
                 --workdir /scratch --out books.h5
    Ordered histories ('user item item …' per line, oldest first), order-aware (SLIST):
      l3ae build --interactions seqs.txt --format sequences --model slist --alpha 0.5 \\
                 --window 5 --decay 0.5 --out seq.h5
    """
    from l3ae import api

    data, cfg = data_from(kw), config_from(kw)
    rec, (m, n), nnz = api.build(data, cfg, out, **cluster_from(kw), foldable=foldable,
                                 progress=progress_printer(quiet), quiet=quiet, workdir=workdir,
                                 max_memory=max_memory, resume=resume,
                                 warn=lambda msg: click.echo(msg, err=True))
    t = rec.timings_
    weights = (f"{rec.B_.nnz} weights" if hasattr(rec.B_, "nnz") else
               f"dense B{', --topk auto under 4,000 items' if cfg.topk == 'auto' else ''}")
    cold = int((rec.popularity_ == 0).sum())
    items = (f"{n} items ({cold} cold: no interactions)"
             if rec.config_.needs_text else
             f"{n} items ({cold} without interactions: zero weights)" if cold else f"{n} items")
    click.echo(f"{cfg.model}: {items}, {m} users, {nnz} interactions -> {out} ({weights}"
               f") in {t['total']:.1f} s ("
               + ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total") + ")", err=True)
