"""Adding items without a rebuild: time of `l3ae add-items` beside the build it saves.

A seeded synthetic catalog of n + k items (bench/synth.py ``catalog``: 5 users per item, d = 384);
the last k items become "new": their interactions are dropped, their embeddings kept. L3AE
(λ_X = −20, λ_E = 60, λ_F = 10, top-500, float32, as bench/scale.py) is built on the n old items
with --foldable (in this process: wall and peak RSS), then `python -m l3ae add-items` folds the k
new items in a child process (wall of the command, its peak RSS, and the fold-in itself as the
model's ``add-items`` timing).

--compare also builds the rebuild (X with zero columns for the new items) and reports how far
the folded model is from it: new rows and columns (exact up to float32 rounding) and the old–old
block (kept as built; the rebuild shifts it through the text factors), plus the agreement of
the two models' top-20 lists for the first users.

    python bench/fold.py                      # n = 20000, k = 100 (a few minutes: the build)
    python bench/fold.py --n 2000 --compare   # seconds
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

REG_X, REG_E, REG_F, TOPK, EVAL_USERS = -20.0, 60.0, 10.0, 500, 2000


def rss_gib(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 2 ** 20


def model(topk):
    from l3ae.model import Recommender

    return Recommender("l3ae", reg_x=REG_X, reg_e=REG_E, reg_f=REG_F, topk=topk)


def compare(folded, rebuilt, X, n):
    """Distances between the folded and the rebuilt B (both CSR, n + k items): max |Δ| / max |B|
    over the entries both keep, per block, and how many entries only one of them keeps (the
    top-k boundary moves where the old–old weights shift)."""
    from l3ae.engine.score import topn

    A, R = folded.B_.tocsr(), rebuilt.B_.tocsr()
    scale = abs(R.data).max()
    out = {}
    for name, rows, cols in (("new rows", slice(n, None), slice(None)),
                             ("new columns of old rows", slice(None, n), slice(n, None)),
                             ("old-old block", slice(None, n), slice(None, n))):
        a, r = A[rows, cols], R[rows, cols]
        both = (a != 0).multiply(r != 0)
        diff = abs(a.multiply(both) - r.multiply(both))
        only = (a != 0).sum() + (r != 0).sum() - 2 * both.sum()
        out[name] = f"{diff.max() / scale:.2g} on {both.sum()} entries, {only} kept by one only"
    m = min(X.shape[0], EVAL_USERS)
    Xn = sp.hstack([X[:m], sp.csr_matrix((m, A.shape[0] - n))]).tocsr()
    ta, tr = topn(Xn, A, 20)[0], topn(Xn, R, 20)[0]
    out["top-20 agreement"] = f"{np.mean([len(set(a) & set(b)) / 20 for a, b in zip(ta, tr)]):.4f}"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="items in the built model")
    ap.add_argument("--new", type=int, default=100, help="items folded in")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--topk", type=int, default=TOPK)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true", help="also rebuild and compare")
    args = ap.parse_args()
    from synth import catalog

    from l3ae.io.embeddings import text_hash, write_embeddings
    from l3ae.io.model_file import read_model

    n, k = args.n, args.new
    X, E = catalog(n + k, d=args.d, seed=args.seed)
    X_old, E_old = X[:, :n].tocsr(), E[:n]
    ids = [f"i{j}" for j in range(n + k)]
    print(f"catalog: {n} + {k} items, {X.shape[0]} users, {X_old.nnz} interactions, d = {args.d}",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        rec = model(args.topk).fit(X_old, E_old, item_ids=ids[:n], foldable=True)
        t_build = time.perf_counter() - t
        rec.save(os.path.join(tmp, "m.h5"))
        print(f"build --foldable: {t_build:.1f} s, peak RSS {rss_gib():.2f} GiB, file "
              f"{os.path.getsize(os.path.join(tmp, 'm.h5')) / 2 ** 20:.0f} MiB", flush=True)
        write_embeddings(os.path.join(tmp, "new.h5"), ids[n:], E[n:], [text_hash(i) for i in
                                                                          ids[n:]])
        with open(os.path.join(tmp, "new.csv"), "w") as fh:
            fh.write("item_id\n" + "".join(f"{i}\n" for i in ids[n:]))
        cmd = [sys.executable, "-m", "l3ae", "add-items", os.path.join(tmp, "m.h5"), "--items",
               os.path.join(tmp, "new.csv"), "--embeddings", os.path.join(tmp, "new.h5"),
               "--out", os.path.join(tmp, "m2.h5"), "-q"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        t_cmd = time.perf_counter() - t
        fold = read_model(os.path.join(tmp, "m2.h5"))["timings"]["add-items"]
        print(f"add-items {k} items: {t_cmd:.2f} s for the command (load, fold, write), "
              f"{fold:.2f} s the fold-in itself, peak RSS {rss_gib(resource.RUSAGE_CHILDREN):.2f} "
              f"GiB; the build: {t_build:.1f} s ({t_build / t_cmd:.0f}× longer)", flush=True)
        if args.compare:
            folded = type(rec).load(os.path.join(tmp, "m2.h5"))
            t = time.perf_counter()
            rebuilt = model(args.topk).fit(sp.hstack([X_old, sp.csr_matrix((X.shape[0], k))])
                                           .tocsr(), E, item_ids=ids)
            print(f"rebuild: {time.perf_counter() - t:.1f} s")
            print("folded vs rebuilt (max |Δ| / max |B| on the entries both keep):")
            for name, v in compare(folded, rebuilt, X_old, n).items():
                print(f"  {name}: {v}")


if __name__ == "__main__":
    main()
