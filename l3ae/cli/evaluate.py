"""`l3ae evaluate`: split, build on train, Recall/NDCG on validation and test."""

import json

import click

from l3ae import api
from l3ae.cli._app import cli, progress_printer
from l3ae.engine.models import PRESETS, Config
from l3ae.cli._options import (config_from, data_options, embedding_cols, model_options,
                               regime_options, source_from)
from l3ae.io.atomic import atomic_open


@cli.command()
@data_options
@model_options
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
    src, cfg = source_from(kw), config_from(kw)
    source = api.load_source(**src)
    split = api.load_split(source, kw["seed"], kw["train_fraction"], kw["cold_items"],
                           kw["protocol"])
    _, item_ids = api.full_matrix(source)
    E, _ = (api.load_embeddings(source, item_ids, kw["embeddings"], src["dataset"],
                                kw["encoder"], progress=not quiet,
                                **embedding_cols(kw))
            if cfg.needs_text else (None, ""))
    res = api.evaluate(split, cfg, E, item_ids=item_ids, progress=progress_printer(quiet),
                       refit=refit)
    d = res["data"]
    where = src["dataset"] or src["interactions"] or src["dataset_dir"]
    click.echo(f"{cfg.model} on {where}: {d['users']} users, {d['items']} items, "
               f"{d['train']}/{d['validation']}/{d['test']} train/validation/test; build "
               f"{res['timings']['total']:.1f} s", err=True)
    click.echo(api.format_table(res))
    if baseline:
        bcfg = Config.from_preset(baseline, topk=cfg.topk, dtype=cfg.dtype)
        Eb = E if bcfg.needs_text else None
        if bcfg.needs_text and Eb is None:
            Eb, _ = api.load_embeddings(source, item_ids, kw["embeddings"], src["dataset"],
                                        kw["encoder"], progress=not quiet,
                                        **embedding_cols(kw))
        res["baseline"] = api.evaluate(split, bcfg, Eb, item_ids=item_ids, refit=refit)
        metrics = ("hr@10", "ndcg@10") if split.protocol == "loo" else ("recall@20", "ndcg@20")
        click.echo(api.format_comparison(res, cfg.model, baseline, metrics))
    if json_out:
        with atomic_open(json_out) as fh:
            json.dump(res, fh, indent=2)
