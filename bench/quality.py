"""Quality on real data: every model tuned on validation, scored on test, per regime.

Datasets: MovieLens-1M / 100K (packaged, rating >= 4, per-user random 8:1:1) and the Amazon sets
in ../shared/datasets (easyrec-amazon18/* with their own split; amazon18-games-16k per-user
random 8:1:1). Regimes: train fractions (each user's train interactions subsampled) and cold
items (a fraction of items removed from train: text-only). Each model's grid is searched on
validation Recall@20 (one sweep over all models, so equal total ridges share a factorization);
the test metrics of the chosen point are reported. 

    python bench/quality.py                                  # everything (long)
    python bench/quality.py --datasets ml-100k --fractions 1 # quick
    python bench/quality.py --plot                           # also bench/results/quality.png
    python bench/quality.py --tune-defaults --out bench/results/quality-tuned  # l3ae tune's grids

Writes bench/results/quality.md (and .json) with the command that made it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from l3ae import api, tune
from l3ae.engine.metrics import ranking_metrics
from l3ae.engine.models import Config
from l3ae.engine.score import topn
from l3ae.evaluation import apply_regime, score

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                      "datasets")
DATASETS = {
    "ml-100k": dict(dataset="ml-100k"), "ml-1m": dict(dataset="ml-1m"),
    "games": dict(dataset_dir=f"{SHARED}/easyrec-amazon18/games"),
    "arts": dict(dataset_dir=f"{SHARED}/easyrec-amazon18/arts"),
    "movies": dict(dataset_dir=f"{SHARED}/easyrec-amazon18/movies"),
    "home": dict(dataset_dir=f"{SHARED}/easyrec-amazon18/home"),
    "sports": dict(dataset_dir=f"{SHARED}/easyrec-amazon18/sports"),
    "games16k": dict(dataset_dir=f"{SHARED}/amazon18-games-16k"),
}
T = [10.0, 30.0, 100.0, 300.0, 1000.0]
# label -> (preset, grid); grids share totals so one factorization serves many models
MODELS = {
    "EASE": ("ease", {"reg_x": T}),
    "LAE": ("lae", {"reg_x": T}),
    "EDLAE": ("edlae", {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5]}),
    "RLAE": ("rlae", {"reg_x": T, "xi": [0.1]}),
    "RDLAE": ("rdlae", {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5], "xi": [0.1]}),
    "text": ("text", {"reg_f": [1.0, 10.0, 100.0]}),
    "collective": ("collective", {"reg_x": [30.0, 300.0], "alpha": [0.5, 2.0]}),
    "additive": ("additive", {"reg_x": T, "alpha": [0.2], "reg_f": [10.0]}),
    "L3AE": ("l3ae", {"total": T, "reg_e": [100.0, 300.0, 1000.0, 3000.0], "reg_f": [10.0]}),
    "L3AE+xi": ("l3ae", {"total": [30.0, 100.0, 300.0], "reg_e": [300.0, 1000.0],
                         "reg_f": [10.0], "xi": [0.05, 0.2]}),
    "L3AE+adaptive": ("l3ae", {"reg_x": [10.0, 100.0], "reg_e": [100.0, 1000.0],
                               "reg_f": [10.0], "pull_power": [0.5]}),
}
SPARSE_MODELS = ["EASE", "EDLAE", "RDLAE", "text", "L3AE", "L3AE+adaptive"]
# --tune-defaults: these labels take `l3ae tune`'s own grid (l3ae.tune.default_grid) and its
# widening rounds; the variants without a preset of their own keep the grids above
TUNE_DEFAULTS = {"EASE", "LAE", "EDLAE", "RLAE", "RDLAE", "text", "collective", "additive",
                 "L3AE"}


def grid_for(label, defaults=False):
    """(base Config without topk, grid) of a label: MODELS', or with ``defaults`` tune's."""
    preset, grid = MODELS[label]
    base = Config.from_preset(preset)
    if label == "L3AE+adaptive":
        base = base.replace(pull="adaptive")
    return base, (tune.default_grid(preset) if defaults and label in TUNE_DEFAULTS else grid)


def configs_for(label, topk, defaults=False):
    base, grid = grid_for(label, defaults)
    return tune.grid_configs(base.replace(topk=topk), grid)


def popularity_scores(split, ks):
    """The most popular unseen train items for everyone, scored like the models."""
    pop = np.asarray(split.train.sum(axis=0)).ravel()
    order = np.argsort(-pop, kind="stable")
    N = max(ks)
    out = {}
    for name, truth, _, mask in split.targets():
        top = np.empty((mask.shape[0], N), np.int64)
        for u in range(mask.shape[0]):
            seen = set(mask.indices[mask.indptr[u]:mask.indptr[u + 1]].tolist())
            top[u] = [i for i in order[:N + len(seen)] if i not in seen][:N]
        out[name] = {g: ranking_metrics(top, truth, ks, msk) for g, msk in split.groups().items()}
    return out


def run(args):
    rows, detail = [], {}
    for ds in args.datasets:
        t0 = time.perf_counter()
        source = api.Data(**DATASETS[ds]).load()
        _, item_ids = api.full_matrix(source)
        E, _ = api.load_embeddings(source, item_ids, dataset=DATASETS[ds].get("dataset"),
                                   progress=False)
        base = api.load_split(source, seed=args.seed)
        regimes = [("frac", f) for f in args.fractions] + [("cold", c) for c in args.cold]
        for kind, value in regimes:
            split = (apply_regime(base, train_fraction=value, seed=args.seed) if kind == "frac"
                     else apply_regime(base, cold_items=value, seed=args.seed))
            labels = list(MODELS) if (kind == "frac" and value == 1.0) else SPARSE_MODELS
            labels = [m for m in labels if not args.models or m in args.models]
            configs, owner = [], []
            for label in labels:
                cs = configs_for(label, args.topk, args.tune_defaults)
                configs += cs
                owner += [label] * len(cs)
            ks = (20,)

            def scorer(B, cfg):
                res = score(B, split, ks, recency=cfg.recency)
                # "recall@20": what l3ae.tune.search selects on (validation)
                return {**res, "recall@20": res["validation"]["all"]["recall@20"]}

            t = time.perf_counter()
            res = tune.sweep(configs, split.train, scorer, E)
            for label in labels if args.tune_defaults else []:  # widening, model by model
                base, grid = grid_for(label, True)
                cs = [c for c, o in zip(configs, owner) if o == label]
                first = [r for r, o in zip(res, owner) if o == label]
                found = tune.search(base.replace(topk=args.topk), cs, tune.grid_names(grid),
                                    split.train, scorer, "recall@20", first=first, E=E,
                                    note=lambda line, label=label: print(f"{ds} {label}: {line}",
                                                            file=sys.stderr, flush=True))
                res += found["results"][len(first):]
                owner += [label] * (len(found["results"]) - len(first))
            secs = time.perf_counter() - t
            regime = f"train {value:g}" if kind == "frac" else f"cold {value:g}"
            for label in labels:
                mine = [r for r, o in zip(res, owner) if o == label and r["metrics"]]
                if not mine:
                    continue
                best = max(mine, key=lambda r: r["metrics"]["validation"]["all"]["recall@20"])
                rows.append((ds, regime, label, best))
                if kind == "cold" and label.startswith("L3AE"):
                    # a catalog that must serve new items tunes for them: select on validation
                    # Recall@20 of the cold items instead (still never looking at test)
                    cb = max(mine, key=lambda r: r["metrics"]["validation"]["cold"]["recall@20"])
                    rows.append((ds, regime, label + " (cold-tuned)", cb))
            pop = popularity_scores(split, ks)
            rows.append((ds, regime, "popularity", {"metrics": pop, "config": None}))
            print(f"{ds:<9} {regime:<10} {len(configs)} points, "
                  f"{sum(not r['shared'] for r in res)} factorizations, {secs:.0f} s",
                  file=sys.stderr, flush=True)
        detail[ds] = {"items": len(item_ids), "seconds": time.perf_counter() - t0}
        if args.partial:
            args.partial(rows, detail)
    return rows, detail


def records(rows):
    """JSON-able rows: {"dataset", "regime", "model", "config": dict | None, "metrics"}."""
    return [{"dataset": d, "regime": g, "model": m, "config": None if r["config"] is None
             else r["config"].to_dict(), "metrics": r["metrics"]} for d, g, m, r in rows]


def _short(cfg):
    if cfg is None:
        return ""
    keys = ("reg_f",) if cfg["model"] == "text" else ("reg_x", "reg_e", "reg_f", "dropout", "xi",
                                                      "alpha")
    return " ".join(f"{k}={cfg[k]:g}" for k in keys
                    if cfg[k] or (k == "reg_x" and cfg["model"] != "text"))


def table(recs):
    lines = ["| dataset | regime | model | R@20 | N@20 | tail R@20 | tail N@20 | cold R@20 | "
             "val R@20 | config |", "|" + "---|" * 10]
    for r in recs:
        te, va = r["metrics"]["test"], r["metrics"]["validation"]
        cold = te.get("cold", {}).get("recall@20")
        lines.append(f"| {r['dataset']} | {r['regime']} | {r['model']} | "
                     f"{te['all']['recall@20']:.4f} | {te['all']['ndcg@20']:.4f} | "
                     f"{te['tail']['recall@20']:.4f} | {te['tail']['ndcg@20']:.4f} | "
                     f"{'' if cold is None else f'{cold:.4f}'} | "
                     f"{va['all']['recall@20']:.4f} | {_short(r['config'])} |")
    return "\n".join(lines)


def summary(recs, a="L3AE", b="EASE"):
    """Model a against b per dataset and regime: test R@20 / N@20 / tail R@20 and the change."""
    def pct(x, y):
        return f"{100 * (x - y) / y:+.0f}%" if y > 0 else "n/a"

    lines = [f"| dataset | regime | {a} R@20 | {b} R@20 | Δ | {a} N@20 | {b} N@20 | Δ | "
             f"{a} tail R@20 | {b} tail R@20 | Δ |", "|" + "---|" * 11]
    index = {(r["dataset"], r["regime"], r["model"]): r["metrics"]["test"] for r in recs}
    for (ds, regime, model), ta in index.items():
        tb = index.get((ds, regime, b))
        if model != a or tb is None:
            continue
        cells = []
        for g, m in (("all", "recall@20"), ("all", "ndcg@20"), ("tail", "recall@20")):
            cells += [f"{ta[g][m]:.4f}", f"{tb[g][m]:.4f}", pct(ta[g][m], tb[g][m])]
        lines.append(f"| {ds} | {regime} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(recs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dss = list(dict.fromkeys(r["dataset"] for r in recs))
    fig, axes = plt.subplots(1, len(dss), figsize=(3.6 * len(dss), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        for label in SPARSE_MODELS + ["popularity"]:
            pts = sorted((float(r["regime"].split()[1]), r["metrics"]["test"]["all"]["recall@20"])
                         for r in recs if r["dataset"] == ds and r["model"] == label
                         and r["regime"].startswith("train"))
            if len(pts) > 1:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_title(ds)
        ax.set_xlabel("train fraction")
        ax.set_ylabel("test Recall@20")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.5, 0.2])
    ap.add_argument("--cold", nargs="*", type=float, default=[0.1])
    ap.add_argument("--models", nargs="*", choices=list(MODELS))
    ap.add_argument("--topk", type=lambda v: v if v == "auto" else int(v), default="auto",
                    help="as l3ae's --topk (default auto: 500, dense under 4,000 items)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune-defaults", action="store_true",
                    help="tune each preset with `l3ae tune`'s default grid and its widening "
                    "rounds (l3ae.tune.GRIDS) instead of the grids in this script")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "quality"))
    ap.add_argument("--plot", action="store_true", help="write OUT.png (needs matplotlib)")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite OUT.md (and OUT.png with --plot) from OUT.json")
    args = ap.parse_args()
    if args.render:
        with open(args.out + ".json") as fh:
            recs = json.load(fh)
        with open(args.out + ".md") as fh:
            cmd = next((ln.strip("`\n") for ln in fh if ln.startswith("`python")), "")
        _write_md(args.out, cmd, recs, {})
        if args.plot:
            plot(recs, args.out + ".png")
        return
    cmd = "python bench/quality.py " + " ".join(sys.argv[1:])
    args.partial = lambda rows, detail: write(args, cmd, rows, detail)
    rows, detail = run(args)
    print(table(records(rows)))
    if args.plot:
        plot(records(rows), args.out + ".png")


def write(args, cmd, rows, detail):
    """Results so far (called after each dataset, so a long run leaves partial results)."""
    recs = records(rows)
    _write_md(args.out, cmd, recs, detail)
    with open(args.out + ".json", "w") as fh:
        json.dump(recs, fh, indent=1)


def _write_md(out, cmd, recs, detail):
    timing = ("\n\nSeconds per dataset (all regimes): " + ", ".join(
        f"{k} {v['seconds']:.0f} s ({v['items']} items)" for k, v in detail.items())
        if detail else "")
    with open(out + ".md", "w") as fh:
        fh.write(f"# Quality: tuned on validation Recall@20, reported on test\n\n`{cmd}`\n\n"
                 f"## L3AE against EASE\n\n{summary(recs)}\n\n## Every model\n\n"
                 f"{table(recs)}{timing}\n")


if __name__ == "__main__":
    main()
