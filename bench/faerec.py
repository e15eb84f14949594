"""Closed-form models on FAERec's own data and protocol, beside FAERec's published results.

    python bench/faerec.py                      # Yelp, Food, Beauty; writes bench/results/faerec.md
    python bench/faerec.py --datasets Yelp --grid small --out /tmp/yelp.md
    python bench/faerec.py --models EASE SLIST --out bench/results/faerec-slist.md
    python bench/faerec.py --grid default --out bench/results/faerec-default.md  # l3ae tune's grids

Protocol (l3ae --protocol loo, as FAERec's code): per user the last item is the test target and
the second-to-last the validation target; models are fitted on what precedes the validation
target (FAERec's SASRec trains on the same prefix) and the test ranks from the history up to its
target; full ranking, known items masked; HR/NDCG@5/10/20; head = the 20% most frequent items
over all sequences, groups by the target item.

Each dataset runs in a subprocess of its own (so that its peak RSS is its own) and makes one sweep
(l3ae.tune.sweep: one factorization per total ridge, shared by every model and point that has
it). Every point is scored on validation and test; per model, the test figures reported are those
of the point with the best validation HR@10 ("overall"), and of the point with the best
validation tail HR@10 ("tail-selected"), and of the point with the best validation tail HR@10
among those within 90% of the model's best validation HR@10 ("balanced"). Then the overall validation-best point is fitted again
on train + validation and scored on test ("refit", as `l3ae evaluate --refit`: each test target
predicted by a model trained on everything before it). "build s" is the wall time of the chosen
point's factorization and weights (the solve of that point's group, scoring excluded), peak RSS
is the whole dataset run's. Text-free data: L3AE's phase 1 has nothing to embed, and its phase 2
with λ_E = 0 is the relaxed family below.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faerec"
RESULTS = Path(__file__).resolve().parent / "results"

# FAERec with the SASRec backbone, test (its released logs; ../shared/datasets/faerec/README.md)
FAEREC = {
    "Beauty": {"hr@10": 0.0642, "ndcg@10": 0.0372, "hr@20": 0.0853, "head:hr@10": 0.0648,
               "tail:hr@10": 0.0633, "tail:hr@20": 0.0809},
    "Food": {"hr@10": 0.0776, "ndcg@10": 0.0446, "hr@20": 0.1018, "head:hr@10": 0.0811,
             "tail:hr@10": 0.0718, "tail:hr@20": 0.0911},
    "Yelp": {"hr@10": 0.0461, "ndcg@10": 0.0225, "hr@20": 0.0752, "head:hr@10": 0.0610,
             "tail:hr@10": 0.0090, "tail:hr@20": 0.0163},
}
FAEREC_GPU_SECONDS = {"Beauty": 1458}

# (preset, {knob: values}); RLAE shares EASE's factorizations, RDLAE shares EDLAE's, and the
# scoring knobs (recency, debias) share B itself. One factorization: Yelp ~10 s, Food ~4 min,
# Beauty ~13 min on this machine, hence three grid sizes.
SCORING = {"recency": [1.0, 0.7], "debias": [0.0, 0.25, 0.5]}
SLIST_SCORING = {"xi": [0.0, 0.1], "recency": [1.0, 0.7, 0.5], "debias": [0.0, 0.25]}


def _grid(lams, xis, edlae_lams, dropouts, slist):
    return {
        "EASE": ("ease", dict(reg_x=lams, **SCORING)),
        "RLAE": ("rlae", dict(reg_x=lams, xi=xis, **SCORING)),
        "EDLAE": ("edlae", dict(reg_x=edlae_lams, dropout=dropouts, **SCORING)),
        "RDLAE": ("rdlae", dict(reg_x=edlae_lams, dropout=dropouts, xi=xis, **SCORING)),
        # order-aware (issue 16): every (λ, α, window, decay) is a factorization of its own;
        # SLIS (α = 1, no order: EASE's solve, relaxed) is its order-free baseline in one run
        "SLIS": ("slist", dict(reg_x=slist["reg_x"], alpha=[1.0], **SLIST_SCORING)),
        "SLIST": ("slist", dict(**slist, **SLIST_SCORING)),
    }


GRIDS = {
    "full": _grid([50, 100, 200, 400, 800], [0.1, 0.3], [10, 50], [0.1, 0.25, 0.5],
                  dict(reg_x=[100, 400], alpha=[0.2, 0.5, 0.8], window=[5], decay=[0.5])),
    "medium": _grid([60, 200], [0.1, 0.3], [20], [0.25],
                    dict(reg_x=[100], alpha=[0.5], window=[5], decay=[0.3, 0.5])),
    "small": _grid([100], [0.2], [20], [0.25],
                   dict(reg_x=[100], alpha=[0.5], window=[5], decay=[0.5])),
}
# "default": each model with `l3ae tune`'s own grid (l3ae.tune.default_grid, ordered data) and
# its widening rounds, plus the tail knob debias; SLIS is slist's α = 1 part. One sweep holds
# every model's first round (shared factorizations), then each model widens on its own.
TUNE_DEFAULTS = {"EASE": "ease", "RLAE": "rlae", "EDLAE": "edlae", "RDLAE": "rdlae",
                 "SLIS": "slist", "SLIST": "slist"}
GRIDS["default"] = {}  # filled from l3ae.tune in run_one (this module loads without l3ae)
DEFAULT_GRID = {"Yelp": "full", "Food": "medium", "Beauty": "small"}
COLUMNS = ["hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "head:hr@10",
           "tail:hr@10", "tail:hr@20"]


def flat(res):
    """{"hr@10": …, "tail:hr@10": …} of one split's {group: metrics}."""
    return {(k if g == "all" else f"{g}:{k}"): v for g, r in res.items() for k, v in r.items()
            if k != "users"}


def run_one(name, grid, topk, models=None):
    """Sweep every model of the grid on one dataset; print a JSON line of the results."""
    import itertools

    import numpy as np

    from l3ae import api, tune
    from l3ae.engine.models import Config, fit_weights
    from l3ae.evaluation import score

    t0 = time.perf_counter()
    source = api.Data(interactions=DATA / f"{name}.txt", fmt="sequences").load()
    split = api.load_split(source, protocol="loo")
    configs, owner, searches = [], [], {}
    if grid == "default":
        for label, preset in TUNE_DEFAULTS.items():
            if models and label not in models:
                continue
            g = [{**d, "debias": SCORING["debias"]} for d in tune.default_grid(preset, True)
                 if label != "SLIS" or d["alpha"] == [1.0]]
            base = Config.from_preset(preset, topk=topk)
            cs = tune.grid_configs(base, g)
            searches[label] = (base, cs, tune.grid_names(g))
            configs += cs
            owner += [label] * len(cs)
    for label, (preset, knobs) in GRIDS[grid].items():
        if models and label not in models:
            continue
        for values in itertools.product(*knobs.values()):
            configs.append(Config.from_preset(preset, topk=topk, **dict(zip(knobs, values))))
            owner.append(label)
    load = time.perf_counter() - t0

    scoring_s = {}  # config -> seconds of its scoring, taken off its point's build time

    def scorer(B, cfg):
        t = time.perf_counter()
        res = score(B, split, recency=cfg.recency)
        scoring_s[cfg] = time.perf_counter() - t
        # "hr@10": what l3ae.tune.search selects on (validation)
        return {"validation": flat(res["validation"]), "test": flat(res["test"]),
                "hr@10": flat(res["validation"])["hr@10"]}

    def progress(*a):
        print(f"  {name}: {a[1]}/{a[2]} points", file=sys.stderr, flush=True)

    results = tune.sweep(configs, split.train, scorer, sequences=split.sequences["train"],
                         progress=progress)
    for label, (base, cs, names) in searches.items():  # the widening rounds, model by model
        first = [r for r, o in zip(results, owner) if o == label]
        found = tune.search(base, cs, names, split.train, scorer, "hr@10", first=first,
                            sequences=split.sequences["train"], progress=progress,
                            note=lambda line, label=label: print(f"  {name} {label}: {line}",
                                                    file=sys.stderr, flush=True))
        results += found["results"][len(first):]
        owner += [label] * (len(found["results"]) - len(first))
    # a point's build time is that of the point that solved its group (the unshared one)
    pop = np.asarray(split.train.sum(axis=0)).ravel()
    key = tune._factorization
    solved = {key(r["config"], pop): r["seconds"] - scoring_s.get(r["config"], 0.0)
              for r in results if not r["shared"]}
    build_s = [solved.get(key(r["config"], pop), r["seconds"]) for r in results]
    out = {"dataset": name, "users": split.train.shape[0], "items": split.train.shape[1],
           "train": int(split.train.nnz), "load_s": load, "points": []}
    for r, label, b in zip(results, owner, build_s):
        if r["metrics"] is None:
            continue
        out["points"].append({"model": label, "config": r["config"].to_dict(), "build_s": b,
                              "factorized": not r["shared"], **r["metrics"]})
    # the validation-best point, fitted again on train + validation for the test ("refit":
    # each test target predicted from everything before it, as l3ae evaluate --refit)
    best = max(out["points"], key=lambda p: p["validation"]["hr@10"])
    cfg = Config(**best["config"])
    t = time.perf_counter()
    B = fit_weights(cfg, split.known, sequences=split.sequences["known"]).B
    refit_s = time.perf_counter() - t
    test = flat(score(B, split, which=("test",), recency=cfg.recency)["test"])
    out["refit"] = {"model": best["model"], "config": best["config"], "build_s": refit_s,
                    "test": test}
    out["wall_s"] = time.perf_counter() - t0
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


def knobs_of(cfg):
    keys = ("reg_x", "dropout", "xi", "alpha", "window", "decay", "recency", "debias")
    text = ", ".join(f"{k}={cfg[k]:g}" for k in keys if k in cfg and
                     ((cfg[k] != 1.0 if k in ("recency", "decay") else cfg[k]) or k == "reg_x"
                      or (k == "alpha" and cfg["model"] == "slist")))
    return text + (", targets=following" if cfg.get("targets") == "following" else "")


def table(runs):
    lines = ["| dataset | model | selected on | hyperparameters | " + " | ".join(COLUMNS)
             + " | build s | peak RSS |", "|" + "---|" * (len(COLUMNS) + 6)]
    summary = []
    for run in runs:
        name = run["dataset"]
        ref = FAEREC[name]
        gpu = FAEREC_GPU_SECONDS.get(name)
        lines.append(f"| {name} | FAERec (SASRec, GPU) | published | | "
                     + " | ".join(f"{ref[c]:.4f}" if c in ref else "" for c in COLUMNS)
                     + f" | {gpu if gpu else ''} | |")
        best_all, best_tail = None, None
        for model in dict.fromkeys(p["model"] for p in run["points"]):
            pts = [p for p in run["points"] if p["model"] == model]
            top = max(q["validation"]["hr@10"] for q in pts)
            near = [q for q in pts if q["validation"]["hr@10"] >= 0.9 * top]
            for sel, key, among in (("val HR@10", "hr@10", pts),
                                    ("val tail HR@10", "tail:hr@10", pts),
                                    ("val tail HR@10, HR@10 ≥ 90% of best", "tail:hr@10", near)):
                p = max(among, key=lambda q: q["validation"][key])
                t = p["test"]
                lines.append(f"| {name} | {model} | {sel} | {knobs_of(p['config'])} | "
                             + " | ".join(f"{t[c]:.4f}" for c in COLUMNS)
                             + f" | {p['build_s']:.0f} | {run['peak_rss_gib']:.1f} GiB |")
                if key == "hr@10" and (best_all is None or t["hr@10"] > best_all[1]["hr@10"]):
                    best_all = (model, t, sel)
                if best_tail is None or t["tail:hr@10"] > best_tail[1]["tail:hr@10"]:
                    best_tail = (model, t, sel)
        r = run["refit"]
        lines.append(f"| {name} | {r['model']} refit on train+validation | val HR@10 | "
                     f"{knobs_of(r['config'])} | "
                     + " | ".join(f"{r['test'][c]:.4f}" for c in COLUMNS)
                     + f" | {r['build_s']:.0f} | {run['peak_rss_gib']:.1f} GiB |")
        for t, label in ((r["test"], f"{r['model']} refit"),):
            if t["hr@10"] > best_all[1]["hr@10"]:
                best_all = (label, t, "val HR@10")
            if t["tail:hr@10"] > best_tail[1]["tail:hr@10"]:
                best_tail = (label, t, "val HR@10")
        ratio = _slist_cost(run)
        summary.append(
            f"- **{name}** ({run['users']:,} users, {run['items']:,} items): best overall "
            f"{best_all[0]} test HR@10 {best_all[1]['hr@10']:.4f} vs FAERec {ref['hr@10']:.4f} "
            f"({100 * (best_all[1]['hr@10'] / ref['hr@10'] - 1):+.0f}%); best tail "
            f"{best_tail[0]} ({best_tail[2]}) tail HR@10 {best_tail[1]['tail:hr@10']:.4f} vs "
            f"{ref['tail:hr@10']:.4f} ({100 * (best_tail[1]['tail:hr@10'] / ref['tail:hr@10'] - 1):+.0f}%); "
            f"whole run {run['wall_s'] / 60:.1f} min, peak RSS {run['peak_rss_gib']:.1f} GiB"
            + ratio)
    return "\n".join(lines), "\n".join(summary)


def _slist_cost(run):
    """"; SLIST build / SLIS build …": each SLIST factorization against the median of the
    run's SLIS ones (α = 1: EASE's solve on the same items; the cost does not depend on λ)."""
    import statistics

    solved = {}
    for p in run["points"]:
        if p["factorized"] and p["model"] in ("SLIS", "SLIST"):
            solved.setdefault(p["model"], []).append(p["build_s"])
    if "SLIS" not in solved or "SLIST" not in solved:
        return ""
    base = statistics.median(solved["SLIS"])
    r = [s / base for s in solved["SLIST"]]
    return (f"; SLIST build / SLIS (EASE's solve) build: {min(r):.2f}–{max(r):.2f}× "
            f"({len(r)} SLIST factorizations, {min(solved['SLIST']):.0f}–"
            f"{max(solved['SLIST']):.0f} s, SLIS {base:.0f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["Yelp", "Food", "Beauty"])
    ap.add_argument("--grid", choices=sorted(GRIDS), help=f"default: {DEFAULT_GRID}")
    ap.add_argument("--topk", type=int, default=500)
    ap.add_argument("--models", nargs="+", choices=list(GRIDS["full"]),
                    help="only these models of the grid (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "faerec.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return run_one(args.one, args.grid or "full", args.topk, args.models)
    runs = []
    for name in args.datasets:
        grid = args.grid or DEFAULT_GRID[name]
        print(f"{name}: grid {grid}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--grid", grid,
                               "--topk", str(args.topk)]
                              + (["--models", *args.models] if args.models else []),
                              stdout=subprocess.PIPE, text=True, check=True,
                              env=dict(os.environ))
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        Path(args.out).with_suffix(".json").write_text(json.dumps(runs, indent=1))
    body, summary = table(runs)
    models = f" --models {' '.join(args.models)}" if args.models else ""
    text = (f"# FAERec's data and protocol\n\nCommand: `python bench/faerec.py "
            f"--datasets {' '.join(args.datasets)}{models}` (topk {args.topk}; grids in the "
            "script).\n"
            f"Test figures; each model's point chosen on validation.\n\n{summary}\n\n{body}\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
