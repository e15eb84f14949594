"""`l3ae build`: interactions (+ embeddings) -> model.h5."""

from pathlib import Path

import click

from l3ae import api
from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import (config_from, data_options, embedding_cols, model_options,
                               source_from)
from l3ae.engine.tiled import parse_size
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
    Ready for new items later (`l3ae add-items`), without a rebuild:
      l3ae build --interactions ratings.csv --embeddings emb.h5 --foldable --out model.h5
    A catalog too large for memory (interrupted? rerun the same line with --resume):
      l3ae build --interactions books.csv --model ease --max-memory 12G \\
                 --workdir /scratch --out books.h5
    """
    src, cfg = source_from(kw), config_from(kw)
    source = api.load_source(**src)
    X, item_ids = api.full_matrix(source)
    E, encoder = (api.load_embeddings(source, item_ids, kw["embeddings"], src["dataset"],
                                      kw["encoder"], progress=not quiet,
                                      **embedding_cols(kw))
                  if cfg.needs_text else (None, ""))
    workdir = Path(workdir) if workdir else (Path(out).parent if str(Path(out).parent) else
                                             Path("."))
    tile_file = workdir / f"{Path(out).name}.tiles.h5"
    try:
        rec = api.build(source, cfg, E, progress=progress_printer(quiet), foldable=foldable,
                        max_memory=max_memory, workdir=workdir, resume=resume,
                        tile_name=Path(out).name)
    except (KeyboardInterrupt, OSError, MemoryError):
        if tile_file.exists():
            click.echo(f"\nthe tile file {tile_file} is kept: rerun the same command with "
                       f"--resume to continue from its last finished tile column", err=True)
        raise
    rec.save(out, encoder=encoder)
    t = rec.timings_
    nnz = rec.B_.nnz if hasattr(rec.B_, "nnz") else rec.B_.size
    click.echo(f"{cfg.model}: {X.shape[1]} items, {X.shape[0]} users, "
               f"{X.nnz} interactions -> {out} ({nnz} weights) in "
               f"{t['total']:.1f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in t.items()
                                                  if k != "total") + ")", err=True)
