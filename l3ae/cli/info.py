"""`l3ae info`: what a model file holds."""

import json

import click

from l3ae.cli._app import cli
from l3ae.io.model_file import read_model


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
def info(model):
    """Print a model's config, size and build timings as JSON.

    \b
    Example:
      l3ae info model.h5
    """
    d = read_model(model)
    B = d["B"]
    click.echo(json.dumps({
        "items": len(d["item_ids"]), "weights": int(getattr(B, "nnz", B.size)),
        "storage": "csr" if hasattr(B, "nnz") else "dense", "foldable": d["foldable"],
        "config": d["config"],
        "timings": d["timings"], "l3ae-version": d["l3ae-version"],
        "input-sha256": d["input-sha256"]}, indent=2))
