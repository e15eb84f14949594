"""`l3ae build`: interactions (+ embeddings) -> model.h5."""

import click

from l3ae import api
from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import config_from, data_options, model_options, source_from


@cli.command()
@data_options
@model_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def build(out, quiet, **kw):
    """Build an item–item model in closed form and write it to --out.

    \b
    Examples:
      l3ae build --dataset ml-1m --model l3ae --out ml1m.h5
      l3ae build --interactions ratings.csv --min-rating 4 --embeddings emb.h5 \\
                 --model l3ae --reg-x -100 --reg-e 150 --topk 200 --out model.h5
      l3ae build --interactions ratings.csv --model ease --reg-x 300 --out ease.h5
    """
    src, cfg = source_from(kw), config_from(kw)
    source = api.load_source(**src)
    X, item_ids = api.full_matrix(source)
    E, encoder = (api.load_embeddings(source, item_ids, kw["embeddings"], src["dataset"],
                                      kw["encoder"], progress=not quiet)
                  if cfg.needs_text else (None, ""))
    rec = api.build(source, cfg, E, progress=progress_printer(quiet))
    rec.save(out, encoder=encoder)
    t = rec.timings_
    nnz = rec.B_.nnz if hasattr(rec.B_, "nnz") else rec.B_.size
    click.echo(f"{cfg.model}: {X.shape[1]} items, {X.shape[0]} users, "
               f"{X.nnz} interactions -> {out} ({nnz} weights) in "
               f"{t['total']:.1f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in t.items()
                                                  if k != "total") + ")", err=True)
