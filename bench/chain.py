"""A directed chain of successors, where the order of events matters: `slist` against EASE, each
tuned with its default grid (and the widening rounds), next to the grids before issue 23.

    python bench/chain.py                      # writes bench/results/chain.md and chain.json
    python bench/chain.py --items 300 --users 900 --out /tmp/chain.md
    python bench/chain.py --write /tmp/chain.txt   # only the sequence file, for timing `l3ae tune`

The catalog (seeded): items sit on a ring; a user starts anywhere and at each step moves 1 to
``successors`` places forward with probability ``follow``, else jumps to a uniformly random item.
The successors of the last item are what comes next, and its predecessors were mostly not seen,
so an order-free model (EASE ranks both sides of an item alike) misses half its guesses.
Protocol: `--protocol loo` (DESIGN §6): the last event is the test target, the one before the
validation target; the configs are selected on validation HR@10 and scored on test.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# the default grids before issue 23, for the comparison (slist's then, EASE's without recency)
BEFORE = {"ease": ["reg_x=30,100,300,1000"],
          "slist": ["reg_x=100,400", "alpha=0.5,1", "xi=0,0.1", "recency=1,0.7,0.5"]}
# the hand-picked point of issue 23 on its own chain
HAND = dict(reg_x=10.0, alpha=0.0, window=3, recency=0.5)


def chain_sequences(n_items=2000, n_users=6000, lengths=(10, 50), successors=6, follow=0.7,
                    seed=0):
    """[(L_u,) int64 item codes in time order] of ``n_users`` walks on a directed ring of
    ``n_items``, each of a uniform length in ``lengths`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    for L in rng.integers(lengths[0], lengths[1] + 1, n_users):
        step = rng.integers(1, successors + 1, L)
        jump = rng.random(L) >= follow
        items = np.empty(L, np.int64)
        items[0] = rng.integers(n_items)
        target = rng.integers(0, n_items, L)
        for t in range(1, L):
            items[t] = target[t] if jump[t] else (items[t - 1] + step[t]) % n_items
        out.append(items)
    return out


def write_sequences(path, seqs):
    """A sequence file (`--format sequences`): 'u<user> i<item> …' per line, time order."""
    with open(path, "w") as fh:
        fh.writelines(f"u{u} " + " ".join(f"i{i}" for i in s) + "\n" for u, s in enumerate(seqs))
    return path


def shown(config):
    """The knobs a row of the table shows (those of slist that EASE lacks are 0 there)."""
    return {k: config[k] for k in ("reg_x", "xi", "alpha", "window", "recency")
            if config["model"] == "slist" or k not in ("alpha", "window")}


def tuned(path, model, grids=(), extend=True):
    """{"config", "validation", "test", "rounds", "points", "factorizations", "seconds"} of
    `l3ae tune` (default grid unless ``grids``) then `l3ae evaluate` with the config found."""
    from l3ae import api
    from l3ae.engine.models import Config

    data = api.Data(interactions=str(path), fmt="sequences")
    t = time.perf_counter()
    run = api.tune(data, Config.from_preset(model), grids, regime={"protocol": "loo"},
                   extend=extend, quiet=True, note=lambda line: print(f"  {model}: {line}",
                                                                      file=sys.stderr))
    seconds = time.perf_counter() - t
    cfg = run["best"]["config"]
    res = api.evaluate(data, cfg, regime={"protocol": "loo"}, quiet=True)
    return {"config": shown(cfg.to_dict()),
            "validation": res["validation"]["all"]["hr@10"], "test": res["test"]["all"]["hr@10"],
            "rounds": len(run["rounds"]), "points": len(run["results"]),
            "added": [r["values"] for r in run["rounds"][1:]],
            "factorizations": sum(not r["shared"] for r in run["results"]), "seconds": seconds}


def fixed(path, model, **knobs):
    """The same figures for one config, untuned."""
    from l3ae import api
    from l3ae.engine.models import Config

    data = api.Data(interactions=str(path), fmt="sequences")
    cfg = Config.from_preset(model, **knobs)
    res = api.evaluate(data, cfg, regime={"protocol": "loo"}, quiet=True)
    return {"config": shown(cfg.to_dict()), "validation": res["validation"]["all"]["hr@10"],
            "test": res["test"]["all"]["hr@10"], "rounds": 0, "points": 1, "added": [],
            "factorizations": 1, "seconds": res["timings"]["total"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="write the sequence file here and stop")
    ap.add_argument("--out", default=str(RESULTS / "chain.md"))
    args = ap.parse_args()
    seqs = chain_sequences(args.items, args.users, seed=args.seed)
    if args.write:
        write_sequences(args.write, seqs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = write_sequences(Path(tmp) / "chain.txt", seqs)
        rows = {"EASE, default grid": tuned(path, "ease"),
                "slist, default grid": tuned(path, "slist"),
                "EASE, grid before issue 23": tuned(path, "ease", BEFORE["ease"], extend=False),
                "slist, grid before issue 23": tuned(path, "slist", BEFORE["slist"],
                                                     extend=False),
                "slist, issue 23's hand-picked point": fixed(path, "slist", **HAND)}
    ease = rows["EASE, default grid"]["test"]
    cmd = "python bench/chain.py" + "".join(
        f" --{k} {v}" for k, v in vars(args).items()
        if k in ("items", "users", "seed") and v != ap.get_default(k))
    lines = [f"# A directed chain: slist against EASE, each tuned\n\n`{cmd}` "
             f"({args.users:,} users, {args.items:,} items, "
             f"{sum(len(s) for s in seqs):,} events; `--protocol loo`, selected on validation "
             "HR@10, reported on test). Tune seconds: in-process, `l3ae tune`'s search alone.\n",
             "| model | rounds | points | factorizations | tune s | hyperparameters "
             "| val HR@10 | test HR@10 | vs tuned EASE |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        knobs = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in r["config"].items())
        lines.append(f"| {name} | {r['rounds']} | {r['points']} | {r['factorizations']} "
                     f"| {r['seconds']:.1f} | {knobs} | {r['validation']:.4f} | {r['test']:.4f} "
                     f"| {r['test'] / ease - 1:+.1%} |")
    lines.append("\nWhat the widening rounds added (round: knob values):\n")
    for name, r in rows.items():
        if r["added"]:
            lines.append(f"- {name}: " + "; ".join(
                f"{i}: " + ", ".join(f"{k} {' '.join(f'{v:g}' for v in vs)}"
                                     for k, vs in added.items())
                for i, added in enumerate(r["added"], start=2)))
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"command": cmd, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
