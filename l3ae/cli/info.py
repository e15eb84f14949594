"""`l3ae info`: what a model file holds."""

import json

import click

from l3ae.cli._app import cli


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
def info(model):
    """Print a model's size and composition (weights per item, share of a dense B, bytes on
    disk), its config and build timings, as JSON.

    \b
    Example:
      l3ae info model.h5
    """
    from l3ae import api

    click.echo(json.dumps(api.info(model), indent=2))
