"""Is a compact model's tail ratio a loss or noise? A paired bootstrap over test users.

bench/compact.py reports one ratio per dataset (tail Recall@20 of a pruned B over the dense B,
one shipped split). This script fits the same tuned L3AE densely, prunes it as the build does
(``global``, the default, and ``row``), and for each user of the tail group computes recall@20
under both, then resamples the users (paired: the same users for both models) to put a 95%
interval on the ratio; it also counts the hits each route loses and gains against dense, and
how much of the dense B's incoming weight mass of the tail items the route keeps.

    python bench/tail_noise.py                    # games
    python bench/tail_noise.py --datasets games arts --resamples 2000

Writes bench/results/tail-noise.md with the command that made it.
"""

import argparse
import os
import sys

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compact import tuned_config  # noqa: E402
from quality import DATASETS  # noqa: E402

from l3ae import api  # noqa: E402
from l3ae.engine.models import fit_weights  # noqa: E402
from l3ae.engine.prune import prune_topk  # noqa: E402
from l3ae.engine.score import topn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def per_user_recall(split, B, k=20):
    """(users,) recall@k of the tail group's test users (those with a tail test item), and
    (users, k) hits."""
    tail = split.groups()["tail"]
    _, truth, _, mask = next(t for t in split.targets() if t[0] == "test")
    truth = sp.csr_matrix(truth @ sp.diags(np.asarray(tail, np.float32)))
    truth.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    top, _ = topn(split.history("test"), B, N=k, mask=mask)  # as l3ae's metric code ranks
    top = top[users]
    hit = np.zeros(top.shape, bool)
    for r, u in enumerate(users):
        hit[r] = np.isin(top[r], truth.indices[truth.indptr[u]:truth.indptr[u + 1]])
    return hit.sum(1) / np.diff(truth.indptr)[users], hit, users


def bootstrap(a, b, resamples, seed=0):
    """(ratio of means b/a, 2.5% and 97.5% quantiles) over paired resamples of the users."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (resamples, len(a)))
    ratios = b[idx].mean(1) / a[idx].mean(1)
    return b.mean() / a.mean(), *np.quantile(ratios, [0.025, 0.975])


def run(ds, K, resamples):
    data = api.Data(**DATASETS[ds])
    cfg = tuned_config(ds).replace(topk=0)
    source = data.load()
    split = api.load_split(source, protocol="random", seed=0)
    E, _ = data.vectors(source, cfg, progress=False)
    B = fit_weights(cfg, split.train, E).B
    np.fill_diagonal(B, 0)
    tail = split.groups()["tail"]
    dense, dense_hit, users = per_user_recall(split, B)
    mass = np.abs(B[:, tail]).sum()
    rows = []
    for name, Bp in (("global", prune_topk(B, K, whole=True)), ("row", prune_topk(B, K))):
        got, hit, _ = per_user_recall(split, Bp)
        ratio, lo, hi = bootstrap(dense, got, resamples)
        kept = np.abs(Bp[:, np.flatnonzero(tail)]).sum() / mass
        lost = int((dense_hit.sum(1) > hit.sum(1)).sum())
        gained = int((dense_hit.sum(1) < hit.sum(1)).sum())
        rows.append((ds, name, len(users), int(dense_hit.sum()), int(hit.sum()), lost, gained,
                     ratio, lo, hi, kept))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["games"])
    ap.add_argument("--topk", type=int, default=500)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "tail-noise.md"))
    args = ap.parse_args()
    rows = [r for ds in args.datasets for r in run(ds, args.topk, args.resamples)]
    lines = ["# Tail Recall@20 of a pruned B against the dense B: a paired bootstrap", "",
             f"Command: `python bench/tail_noise.py {' '.join(sys.argv[1:])}` (tuned L3AE of "
             f"bench/results/quality.json, K = {args.topk}, {args.resamples} resamples of the "
             "tail group's test users).", "",
             "| dataset | route | tail users | dense hits | route hits | users losing hits | "
             "users gaining hits | ratio | 95% interval | tail in-weight mass kept |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {d} | {n} | {u:,} | {dh:,} | {h:,} | {lo_} | {ga} | {r:.3f} | "
              f"{lo:.3f}–{hi:.3f} | {k:.3f} |"
              for d, n, u, dh, h, lo_, ga, r, lo, hi, k in rows]
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
