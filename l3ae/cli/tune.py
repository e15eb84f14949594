"""`l3ae tune`: search hyperparameters on the validation split, write the best config."""

import json

import click

from l3ae import api, tune as tuning
from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import (config_from, data_options, embedding_cols, model_options,
                               regime_options, source_from)
from l3ae.io.atomic import atomic_open


def _metric(metric, split):
    metric = metric or ("hr@10" if split.protocol == "loo" else "recall@20")
    kinds = ("hr", "ndcg") if split.protocol == "loo" else ("recall", "ndcg")
    group, _, plain = metric.rpartition(":")
    group = group or "all"
    name, _, k = plain.partition("@")
    if name not in kinds or not k.isdigit() or int(k) < 1 or group not in split.groups():
        raise click.BadParameter(
            f"{metric!r}: use [GROUP:]{kinds[0]}@K or [GROUP:]ndcg@K with this protocol, GROUP "
            f"one of {', '.join(g for g in split.groups() if g != 'all')}",
            param_hint="--metric")
    return metric.removeprefix("all:")


@cli.command()
@data_options
@model_options
@regime_options
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help="Values to try for one knob (repeatable): reg-x, reg-e, reg-f, dropout, xi, "
              "alpha, pull-power, or total (= reg-x + reg-e). Replaces the preset's grid.")
@click.option("--random", "n_random", type=int, default=0, help="Also try N random points "
              "(log-uniform over the grid's knobs).")
@click.option("--metric", help="Validation metric to maximize: recall@K (random protocol) or "
              "hr@K (loo), or ndcg@K; prefix a group to select on it alone (tail:hr@10). "
              "Default: recall@20, or hr@10 with --protocol loo.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Best config (JSON), for `build --config` and `evaluate --config`.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Every point with its validation metrics.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def tune(grids, n_random, metric, out, json_out, quiet, **kw):
    """Search a model's hyperparameters on the validation split and write the best config.

    Work is reused: the factorization P = (G + Dg(a))⁻¹ depends only on the total ridge
    a = Λ + λ_E·w, so all points with the same a (any λ_E split, ξ, λ_F, or the additive α)
    share one factorization; the default L3AE grid is laid out over total = reg-x + reg-e for
    that reason. Phase 1 (depends only on λ_F) is cheap and redone.

    \b
    Examples:
      l3ae tune --dataset ml-1m --model l3ae --out best.cfg
      l3ae tune --dataset ml-1m --model ease --grid reg-x=100,300,1000 --out ease.cfg
      l3ae tune --dataset ml-1m --model l3ae --grid total=300,1000 \\
                --grid reg-e=100,1000 --random 10 --out best.cfg
      l3ae evaluate --dataset ml-1m --config best.cfg
    """
    src, base = source_from(kw), config_from(kw)
    source = api.load_source(**src)
    split = api.load_split(source, kw["seed"], kw["train_fraction"], kw["cold_items"],
                           kw["protocol"])
    metric = _metric(metric, split)
    _, item_ids = api.full_matrix(source)
    grid = tuning.parse_grid(grids) if grids else tuning.GRIDS[base.model]
    configs = tuning.grid_configs(base, grid)
    if n_random:
        configs += tuning.random_configs(base, list(grid), n_random, kw["seed"])
    E, _ = (api.load_embeddings(source, item_ids, kw["embeddings"], src["dataset"],
                                kw["encoder"], progress=not quiet,
                                **embedding_cols(kw))
            if base.needs_text or any(c.needs_text for c in configs) else (None, ""))
    ks = (int(metric.split("@")[1]),)
    results = tuning.sweep(configs, split.train, tuning.validation_scorer(split, ks), E,
                           progress=progress_printer(quiet))
    top = tuning.best(results, metric)
    for r in results:
        if r["metrics"] is None:
            click.echo(f"skipped {r['config'].to_dict()}: {r['error']}", err=True)
    results = [r for r in results if r["metrics"] is not None]
    names = [n for n in ("reg_x", "reg_e", "reg_f", "dropout", "xi", "alpha", "pull_power")
             if len({getattr(r["config"], n) for r in results}) > 1] or ["reg_x"]
    click.echo("  ".join(f"{n:>10}" for n in names) + f"  {metric:>10}  {'seconds':>8}  reused")
    for r in sorted(results, key=lambda r: -r["metrics"][metric]):
        c = r["config"]
        click.echo("  ".join(f"{getattr(c, n):>10.4g}" for n in names)
                   + f"  {r['metrics'][metric]:>10.4f}  {r['seconds']:>8.2f}  "
                   + ("yes" if r["shared"] else "no"))
    with atomic_open(out) as fh:
        json.dump(top["config"].to_dict(), fh, indent=2)
    if json_out:
        with atomic_open(json_out) as fh:
            json.dump([{"config": r["config"].to_dict(), "metrics": r["metrics"],
                        "seconds": r["seconds"], "shared": r["shared"]} for r in results],
                      fh, indent=2)
    n_fact = sum(not r["shared"] for r in results)
    click.echo(f"best {metric} {top['metrics'][metric]:.4f} of {len(results)} points "
               f"({n_fact} factorizations) -> {out}", err=True)
