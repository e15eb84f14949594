"""`l3ae evaluate`: split, build on train, Recall/NDCG on validation and test."""

import json

import click

from l3ae import api
from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import config_from, data_options, model_options, source_from
from l3ae.io.atomic import atomic_open


@cli.command()
@data_options
@model_options
@click.option("--seed", default=0, show_default=True, help="Seed of the 8:1:1 split.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the "
              "metrics as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def evaluate(seed, json_out, quiet, **kw):
    """Evaluate a model: random 8:1:1 split of each user's interactions (seeded), fit on train,
    full ranking with known items masked, Recall and NDCG @10/20/50 for all, head (20% most
    popular) and tail items. Prints a table on stdout.

    \b
    Examples:
      l3ae evaluate --dataset ml-1m --model l3ae
      l3ae evaluate --dataset ml-1m --model ease --reg-x 300 --json ease.json
    """
    src, cfg = source_from(kw), config_from(kw)
    inter = api.load_interactions(**src)
    E, _ = (api.load_embeddings(inter.item_ids, kw["embeddings"], src["dataset"], kw["encoder"],
                                progress=not quiet)
            if cfg.needs_text else (None, ""))
    res = api.evaluate(inter, cfg, E, seed=seed, progress=progress_printer(quiet))
    d = res["data"]
    click.echo(f"{cfg.model} on {src['dataset'] or src['interactions']}: {d['users']} users, "
               f"{d['items']} items, {d['interactions']} interactions; build "
               f"{res['timings']['total']:.1f} s", err=True)
    click.echo(api.format_table(res))
    if json_out:
        with atomic_open(json_out) as fh:
            json.dump(res, fh, indent=2)
