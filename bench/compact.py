"""Compact models that keep the tail: ways to store B at one model size, against dense B.

For each dataset the model bench/quality.py tuned (L3AE; Yelp, which has no item texts: RLAE as
bench/faerec.py selected it) is fitted once densely (float32) on the train split, then stored
as each route at the size of today's default (row top-K, K = --topk, CSR with float32 values
and int32 column indices: 8 bytes a weight) and scored on test with l3ae's metric code:

- ``dense``      B itself (n² float32): what every route is measured against.
- ``row``        the K largest |B_ij| of each row (``--prune row``; the default until the global
                 selection below).
- ``global``     the n·K largest |B_ij| of the whole B, at most 2K a row (``--prune global``,
                 the default since this bench): rows of popular items keep more.
- ``row+col``    the K − K/5 largest of each row ∪ the K/5 largest of each column, so every
                 item keeps its strongest incoming weights (route b of issue 13).
- ``budget``     row i keeps k_i ∝ (1 + c_i)^½ of its largest (c: train count), about n·K in all
                 (``--prune row --budget 0.5``): rows of items in many histories, which score
                 most users, get more (route c).
- ``lowrank``    text models: B = R + λ_E·(P W E K)·(E/δ)ᵀ, the rank-d semantic term kept
                 exactly as two n×d float32 factors and the rest R pruned to K − d per row
                 (same bytes; route a). P is a float64 inverse made here, independently.

Random split (ML, Amazon): Recall@20/50, all and tail (the 80% least popular by train count);
ML-1M, whose split is drawn here, on ``--seeds`` splits (each line a split; the ratios to dense
are averaged in the summary). The Amazon sets ship their split.
Leave-one-out (Yelp): HR@10/20, all and tail. Also the model size in MB and the scoring
kernel's users/s on the validation users (the stored routes only: a low-rank part would need its own
kernel, one GEMM per batch of users, not built unless the figures pick it).

    python bench/compact.py                          # every dataset (~10 min on 2 cores)
    python bench/compact.py --datasets ml-1m arts    # a subset

Writes bench/results/compact.md (and .json) with the command that made it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality import DATASETS, SHARED  # noqa: E402

from l3ae import api  # noqa: E402
from l3ae.engine.models import Config, fit_weights, row_budgets_of, terms  # noqa: E402
from l3ae.engine.prune import prune_topk  # noqa: E402
from l3ae.engine.score import topn  # noqa: E402
from l3ae.evaluation import score  # noqa: E402
from l3ae.io.atomic import atomic_open  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ALL = ["ml-1m", "games", "arts", "movies", "home", "sports", "yelp"]
YELP = dict(interactions=os.path.join(SHARED, "faerec", "Yelp.txt"), fmt="sequences")
# Yelp: bench/faerec.py's selection on validation HR@10 (bench/results/faerec.md)
YELP_CONFIG = dict(model="rlae", reg_x=800.0, xi=0.1)


def tuned_config(ds):
    """The L3AE point bench/quality.py selected for ``ds`` at full data."""
    for name in ("quality.json", "quality-large.json"):
        with open(os.path.join(HERE, "results", name)) as fh:
            for r in json.load(fh):
                if r["dataset"] == ds and r["model"] == "L3AE" and r["regime"] == "train 1":
                    return Config.from_dict(r["config"])
    raise SystemExit(f"no tuned L3AE config for {ds} in bench/results/quality*.json")


def rows_of(B, keep):
    """CSR of dense B (n, n) at the positions of CSR ``keep``, diagonal dropped."""
    keep = sp.csr_matrix(keep)
    r = np.repeat(np.arange(keep.shape[0]), np.diff(keep.indptr))
    out = sp.csr_matrix((B[r, keep.indices], (r, keep.indices)), shape=B.shape)
    out.setdiag(0)
    out.eliminate_zeros()
    return out


def row_col(B, K):
    kc = K // 5
    rows = prune_topk(B, K - kc)
    cols = prune_topk(np.ascontiguousarray(B.T), kc).T
    return rows_of(B, rows + cols)


def budget(B, K, popularity):
    """The engine's own route (l3ae.engine.prune): --prune row --budget 0.5."""
    cfg = Config(model="ease", topk=K, prune="row", budget=0.5)
    return prune_topk(B, K, budgets=row_budgets_of(cfg, popularity))


def lowrank(cfg, X, E, B, K):
    """(R pruned to K − d per row, L (n, d), V (n, d)): B ≈ R + L Vᵀ with L Vᵀ exact."""
    from l3ae.engine.semantic import semantic_factors

    t = terms(cfg, np.asarray(X.sum(axis=0)).ravel())
    G = (X.T @ X).toarray().astype(np.float64)
    G.flat[:: len(G) + 1] += t.reg_x + t.reg_e * t.w
    P = np.linalg.inv(G)
    del G
    Ed = np.asarray(E, np.float64)
    fac = semantic_factors(Ed, cfg.reg_f)
    L = t.reg_e * (P @ (t.w[:, None] * Ed) @ fac.K)
    del P
    V = Ed / fac.delta[:, None]
    R = B - (L @ V.T).astype(np.float32)
    return prune_topk(R, max(K - E.shape[1], 0)), L.astype(np.float32), V.astype(np.float32)


def evaluate(split, B, protocol):
    ks = (10, 20) if protocol == "loo" else (20, 50)
    kind = "hr" if protocol == "loo" else "recall"
    te = score(B, split, ks, which=("test",))["test"]
    return {f"{g}:{kind}@{k}": te[g][f"{kind}@{k}"] for g in ("all", "tail") for k in ks}


def users_per_s(split, B):
    users = split.validation  # the scoring kernel alone, on every user with a history
    topn(users[:100], B, 20)  # compiled
    t = time.perf_counter()
    topn(users, B, 20, mask=users)
    return users.shape[0] / (time.perf_counter() - t)


def run(ds, K, seed=0, preset=False):
    t0 = time.perf_counter()
    if ds == "yelp":
        data, cfg = api.Data(**YELP), Config.from_preset(**YELP_CONFIG, topk=0)
        protocol = "loo"
    else:
        data, protocol = api.Data(**DATASETS[ds]), "random"
        cfg = (Config.from_preset("l3ae", topk=0) if preset
               else tuned_config(ds).replace(topk=0))
    source = data.load()
    split = api.load_split(source, protocol=protocol, seed=seed)
    E, _ = data.vectors(source, cfg, progress=False)
    X = split.train
    B = fit_weights(cfg, X, E).B
    np.fill_diagonal(B, 0)
    n = len(B)
    pop = np.asarray(X.sum(axis=0)).ravel()
    routes = {"dense": (B, n * n * 4), "row": (prune_topk(B, K), n * K * 8),
              "global": (prune_topk(B, K, whole=True), None),
              "row+col": (row_col(B, K), None), "budget": (budget(B, K, pop), None)}
    if cfg.needs_text:
        R, L, V = lowrank(cfg, X, E, B, K)
        full = R.toarray() + L @ V.T
        np.fill_diagonal(full, 0)
        routes["lowrank"] = (full, R.nnz * 8 + 2 * L.size * 4)
    out = []
    for name, (Bx, size) in routes.items():
        size = size if size is not None else Bx.nnz * 8
        m = evaluate(split, Bx, protocol)
        ups = users_per_s(split, Bx) if name != "lowrank" else None
        nnz = (np.diff(Bx.indptr) if sp.issparse(Bx) and name != "lowrank"
               else np.full(n, n - 1))  # the weights a history item makes scoring read
        read = float((split.validation @ nnz).mean())
        out.append({"dataset": ds, "seed": seed, "items": n, "route": name, "model": cfg.model,
                    "config": cfg.to_dict(), "mb": size / 1e6, "users_per_s": ups, "read": read, **m})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    print(f"{ds}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def table(rows, K):
    lines = []
    for ds, seed in dict.fromkeys((r["dataset"], r["seed"]) for r in rows):
        rs = [r for r in rows if r["dataset"] == ds and r["seed"] == seed]
        dense = next(r for r in rs if r["route"] == "dense")
        keys = [k for k in dense if ":" in k]
        split = f", split seed {seed}" if ds == "ml-1m" else ""
        lines += [f"\n**{ds}** ({dense['items']:,} items, {dense['model']}{split}; ratios to "
                  "dense)\n",
                  "| route | MB | " + " | ".join(keys) + " | weights read a user | "
                  "scoring users/s |", "|---" * (len(keys) + 4) + "|"]
        for r in rs:
            cells = [f"{r[k]:.4f}" + ("" if r is dense else f" ({r[k] / dense[k]:.3f})")
                     for k in keys]
            ups = f"{r['users_per_s']:,.0f}" if r["users_per_s"] else "–"
            lines.append(f"| {r['route']} | {r['mb']:.1f} | " + " | ".join(cells)
                         + f" | {r['read']:,.0f} | {ups} |")
    return "\n".join(lines)


def summary(rows, routes=("row", "global", "budget")):
    """Per dataset and route: ratios to dense (mean over splits) of all and tail @20 (HR@10
    for Yelp), and the weights scoring reads a user, relative to ``row``."""
    lines = ["| dataset | splits | " + " | ".join(
        f"{r}: all / tail / reads" for r in routes) + " |", "|---" * (len(routes) + 2) + "|"]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        rs = [r for r in rows if r["dataset"] == ds]
        seeds = sorted({r["seed"] for r in rs})
        k_all, k_tail = (("all:hr@10", "tail:hr@10") if ds == "yelp"
                         else ("all:recall@20", "tail:recall@20"))
        cells = []
        for route in routes:
            ra, rt, rd = [], [], []
            for seed in seeds:
                by = {r["route"]: r for r in rs if r["seed"] == seed}
                ra.append(by[route][k_all] / by["dense"][k_all])
                rt.append(by[route][k_tail] / by["dense"][k_tail])
                rd.append(by[route]["read"] / by["row"]["read"])
            cells.append(f"{np.mean(ra):.3f} / {np.mean(rt):.3f} / {np.mean(rd):.2f}×")
        lines.append(f"| {ds} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=ALL, choices=ALL)
    ap.add_argument("--topk", type=int, default=500, help="K: the size every route gets")
    ap.add_argument("--preset", action="store_true", help="the l3ae preset's own "
                    "hyperparameters instead of the tuned point (Yelp keeps its RLAE)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                    help="ML-1M's random splits (the other sets ship theirs)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "compact"))
    args = ap.parse_args()
    rows = []
    for ds in args.datasets:
        for seed in (args.seeds if ds == "ml-1m" else [0]):
            rows += run(ds, args.topk, seed, args.preset)
    md = (f"# Compact models at one size\n\nCommand: `python bench/compact.py "
          f"{' '.join(sys.argv[1:])}` (2 cores). Every route at the bytes of row top-{args.topk} "
          "(float32 + int32 per weight), the dense float32 B as the reference"
          + (", the l3ae preset's own hyperparameters" if args.preset else ", tuned points")
          + ".\n\n"
          "## Summary: ratios to dense @20 (Yelp: HR@10), and the weights scoring reads a "
          "user against row top-K\n\n" + summary(rows) + "\n\n## Per dataset\n"
          + table(rows, args.topk) + "\n")
    print(md)
    with atomic_open(args.out + ".md") as fh:
        fh.write(md)
    with atomic_open(args.out + ".json") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
