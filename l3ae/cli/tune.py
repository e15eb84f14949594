"""`l3ae tune`: search hyperparameters on the validation split, write the best config."""

import click

from l3ae.cli._app import cli, progress_printer
from l3ae.cli._options import (cluster_from, cluster_options, config_from, data_from,
                               data_options, model_options, regime_from, regime_options)


@cli.command()
@data_options
@model_options
@cluster_options
@regime_options
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help="Values to try for one knob (repeatable): reg-x, reg-e, reg-f, dropout, xi, "
              "alpha, pull-power, window, decay, recency, debias, or total (= reg-x + reg-e); "
              "words for targets and pull. Every combination is tried; replaces the preset's "
              "grid.")
@click.option("--extend/--no-extend", default=True, show_default=True,
              help="When the best point sits on the lowest or highest value of a numeric knob, "
              "try one step past it (the grid's own step) in another round, up to 4 "
              "more, while that improves; never past a knob's range "
              "(dropout < 1, alpha and xi in [0, 1], recency in (0, 1]), never topk. "
              "--no-extend: one round, and name the knob to widen.")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=0,
              help="Also try N random points (log-uniform over the grid's knobs; a random "
              "best point is widened as any other, from the values tried).")
@click.option("--metric", help="Validation metric to maximize: recall@K (random protocol) or "
              "hr@K (loo), or ndcg@K; prefix a group to select on it alone (tail:hr@10). "
              "Default: recall@20, or hr@10 with --protocol loo.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Best config (JSON), for `build --config` and `evaluate --config`.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="The search: every value searched per knob (\"grid\"), the rounds with "
              "the values each added, what is still on an edge, and every point with its "
              "round and validation metrics.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr (rounds and edges "
              "are still told).")
def tune(grids, n_random, metric, out, json_out, quiet, extend, **kw):
    """Search a model's hyperparameters on the validation split and write the best config.

    Work is reused: the factorization P = (G + Dg(a))⁻¹ depends only on the total ridge
    a = Λ + λ_E·w, so all points with the same a (any λ_E split, ξ, λ_F, or the additive α)
    share one factorization; the default L3AE grid is laid out over total = reg-x + reg-e for
    that reason. Phase 1 (depends only on λ_F) is cheap and redone. On ordered histories
    (--protocol loo) the preset's grid also tries --recency (it shares B).

    A best point on the edge of a knob's values is widened: each later round moves that knob
    one step past the edge (the other knobs held at the best point), reported on stderr; the
    --json file records every value searched, round by round.

    \b
    Examples:
      l3ae tune --dataset ml-1m --model l3ae --out best.cfg
      l3ae tune --dataset ml-1m --model ease --grid reg-x=100,300,1000 --out ease.cfg
      l3ae tune --interactions seqs.txt --format sequences --protocol loo \\
                --model slist --out slist.cfg --json search.json
      l3ae tune --dataset ml-1m --model l3ae --grid total=300,1000 \\
                --grid reg-e=100,1000 --random 10 --out best.cfg
      l3ae evaluate --dataset ml-1m --config best.cfg
    """
    from l3ae import api

    data, base = data_from(kw), config_from(kw)
    run = api.tune(data, base, grids, n_random, metric, regime_from(kw), **cluster_from(kw),
                   out=out, json_out=json_out, progress=progress_printer(quiet), quiet=quiet,
                   extend=extend, note=lambda line: click.echo(line, err=True))
    metric, top = run["metric"], run["best"]
    for r in run["results"]:
        if r["metrics"] is None:
            click.echo(f"skipped {r['config'].to_dict()}: {r['error']}", err=True)
    results = [r for r in run["results"] if r["metrics"] is not None]
    names = [n for n in ("reg_x", "reg_e", "reg_f", "dropout", "xi", "alpha", "pull_power",
                         "window", "decay", "targets", "recency", "debias", "topk", "prune",
                         "budget")
             if len({getattr(r["config"], n) for r in results}) > 1] or ["reg_x"]
    click.echo("  ".join(f"{n:>10}" for n in names)
               + f"  {metric:>10}  {'seconds':>8}  reused  round")
    for r in sorted(results, key=lambda r: -r["metrics"][metric]):
        c = r["config"]
        click.echo("  ".join(f"{_cell(getattr(c, n)):>10}" for n in names)
                   + f"  {r['metrics'][metric]:>10.4f}  {r['seconds']:>8.2f}  "
                   + f"{'yes' if r['shared'] else 'no':>6}  {r['round']:>5}")
    n_fact = sum(not r["shared"] for r in results)
    rounds = len(run["rounds"])
    click.echo(f"best {metric} {top['metrics'][metric]:.4f} of {len(results)} points "
               f"({n_fact} factorizations, {rounds} round{'s' * (rounds > 1)}) -> {out}",
               err=True)


def _cell(v):
    return "-" if v is None else v if isinstance(v, str) else f"{v:.4g}"
