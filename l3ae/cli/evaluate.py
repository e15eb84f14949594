"""`l3ae evaluate`: split, build on train, Recall/NDCG on validation and test."""

import click

from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import (cluster_from, cluster_options, config_from, data_from,
                               data_options, model_options, regime_from, regime_options)
from l3ae.engine.models import PRESETS


@cli.command()
@data_options
@model_options
@cluster_options
@regime_options
@click.option("--baseline", type=click.Choice(list(PRESETS)),
              help="Also evaluate this preset (its defaults) on the same split and compare.")
@click.option("--refit", is_flag=True, help="Fit again on train + validation for the test, so "
              "each target is predicted from everything before it (costs a second build).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the "
              "metrics as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def evaluate(baseline, refit, json_out, quiet, **kw):
    """Evaluate a model: random 8:1:1 split of each user's interactions (seeded; a
    --dataset-dir with trn/val/tst matrices keeps its own split), fit on train, full ranking
    with known items masked, Recall and NDCG @10/20/50 for all, head (20% most popular by
    train count), tail and (with --cold-items) cold items. Prints a table on stdout.

    With --protocol loo on a sequence file: leave-one-out as FAERec/SASRec (last item = test,
    second-to-last = validation, the model is fitted on what precedes both; the test ranks
    from the history up to its target), HR and NDCG @5/10/20, head = the 20% most frequent
    items over all sequences, groups by the target item.

    \b
    Examples:
      l3ae evaluate --dataset ml-1m --model l3ae --baseline ease
      l3ae evaluate --dataset ml-1m --model ease --reg-x 500 --json ease.json
      l3ae evaluate --dataset ml-1m --model l3ae --train-fraction 0.2
      l3ae evaluate --dataset ml-1m --model l3ae --cold-items 0.1 --config best.cfg
      l3ae evaluate --interactions Beauty.txt --format sequences --protocol loo --model ease
    """
    from l3ae import api
    from l3ae.evaluation import format_comparison, format_table

    data, cfg = data_from(kw), config_from(kw)
    res = api.evaluate(data, cfg, regime_from(kw), **cluster_from(kw), baseline=baseline,
                       refit=refit, progress=progress_printer(quiet), quiet=quiet,
                       json_out=json_out)
    d = res["data"]
    click.echo(f"{cfg.model} on {data.name}: {d['users']} users, {d['items']} items, "
               f"{d['train']}/{d['validation']}/{d['test']} train/validation/test; build "
               f"{res['timings']['total']:.1f} s", err=True)
    click.echo(format_table(res))
    if baseline:
        metrics = ("hr@10", "ndcg@10") if d["protocol"] == "loo" else ("recall@20", "ndcg@20")
        click.echo(format_comparison(res, cfg.model, baseline, metrics))
