"""Batch recommend at speed: users/s and peak RSS of top-N lists for 100k and 1M users.

A synthetic catalog: n items (default 20,000) with power-law popularity (∝ rank^-0.8), users
with 10–20 distinct items each, drawn in proportion to popularity, written as a user-grouped
``user_id,item_id`` CSV. The model is a pruned B with about topk nonzeros per row (default
200), shared out as a build's per-row budgets do (``--budget``: rows of popular items longer,
mean topk; default 0: topk each), at random columns (drawn by popularity, so popular items collect more incoming weights) with
normal values: the shape and density of a real top-200 model, not its values — the speed of
scoring does not depend on them. Per number of users, each in a fresh process (peak RSS =
ru_maxrss of that process, via wait4):

  e2e     ``l3ae recommend model.h5 --interactions users.csv --all -n 20 --out recs.csv``,
          wall time from launch to exit (includes start-up, model load, reading, writing);
  kernel  the scoring alone: l3ae.engine.score.topn on the same users' histories, in chunks
          of 8192 generated in memory (generation not timed);
  dense   numpy on the same chunks: X_chunk @ B_dense (scipy CSR × dense float32), history
          masked to -inf, argpartition top-N, then sorted; its lists are checked against the
          kernel's on the first chunk (ties apart, they must agree).

    python bench/recommend.py                       # 100k and 1M users (the lead's run)
    python bench/recommend.py --users 20000         # a quick check that it works
    python bench/recommend.py --users 100000 --modes e2e kernel

Prints a markdown table and writes it to bench/results/recommend.md (--md to change).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 8192


def popularity(n, seed):
    p = 1.0 / np.arange(1, n + 1) ** 0.8
    p = p[np.random.default_rng(seed).permutation(n)]
    return p / p.sum()


def users_chunk(c, n, pop, seed, lo=10, hi=20):
    """Histories of users c·CHUNK … (c+1)·CHUNK − 1: (lengths (k,), items (sum,)) int64, each
    user's items distinct, drawn by popularity; the same for every mode (seeded per chunk)."""
    rng = np.random.default_rng([seed, c])
    want = rng.integers(lo, hi + 1, CHUNK)
    draws = rng.choice(n, size=(CHUNK, 2 * hi), p=pop)
    lens, items = np.empty(CHUNK, np.int64), []
    for u in range(CHUNK):  # the first `want` distinct draws of the row
        _, first = np.unique(draws[u], return_index=True)
        row = draws[u][np.sort(first)][:want[u]]
        lens[u] = len(row)
        items.append(row)
    return lens, np.concatenate(items)


def chunks(m, n, pop, seed):
    for c in range((m + CHUNK - 1) // CHUNK):
        lens, items = users_chunk(c, n, pop, seed)
        k = min(CHUNK, m - c * CHUNK)
        yield c, lens[:k], items[:lens[:k].sum()]


def lengths_like(path, counts, topk):
    """(n,) int64 row lengths of mean about topk shaped as a real model's: the item at
    popularity quantile q gets topk × (the real model's row length at its quantile q / its
    mean), so popular rows are as much longer as a global selection made them."""
    from l3ae.io.model_file import read_model

    real = read_model(path)
    B, pop = real["B"], np.asarray(real["popularity"])
    rel = (np.diff(B.indptr) / (B.nnz / B.shape[0]))[np.argsort(-pop, kind="stable")]
    rank = np.empty(len(counts), np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    ks = rel[(rank * len(rel)) // len(counts)] * topk
    return np.minimum(np.rint(ks), len(counts) - 1).astype(np.int64)


def write_inputs(folder, m, n, topk, seed, budget=0.0, like=None):
    """model.h5 (pruned random B) and users.csv (grouped by user) in folder."""
    from l3ae.engine.models import Config, row_budgets_of
    from l3ae.io.model_file import write_model

    pop = popularity(n, seed)
    tag = os.path.basename(like) if like else budget
    model = os.path.join(folder, f"model-{n}-{topk}-{tag}.h5")
    if not os.path.exists(model):
        rng = np.random.default_rng(seed + 1)
        cfg = Config.from_preset("ease", topk=topk, prune="row", budget=budget)
        counts = np.round(pop * 1e6).astype(np.int64)
        # rows as long as a build's: its per-row budgets (l3ae.engine.prune), popular rows longer
        ks = row_budgets_of(cfg, counts) if like is None else lengths_like(like, counts, topk)
        ks = np.full(n, topk) if ks is None else ks
        cols = rng.choice(n, size=int(ks.sum()), p=pop)
        B = sp.csr_matrix((rng.standard_normal(len(cols)).astype(np.float32),
                           (np.repeat(np.arange(n), ks), cols)), shape=(n, n))
        B.sum_duplicates()
        write_model(model, [f"i{j}" for j in range(n)], B, np.zeros(n, np.float32), counts,
                    cfg.to_dict(), {}, "synthetic")
    inter = os.path.join(folder, f"users-{m}-{n}.csv")
    if not os.path.exists(inter):
        with open(inter + ".tmp", "w") as fh:
            fh.write("user_id,item_id\n")
            for c, lens, items in chunks(m, n, pop, seed):
                users = np.repeat(np.arange(c * CHUNK, c * CHUNK + len(lens)), lens)
                fh.write("".join(f"u{u},i{i}\n" for u, i in zip(users.tolist(), items.tolist())))
        os.replace(inter + ".tmp", inter)
    return model, inter


def child(mode, m, n, N, seed, model, inter, out):
    """One measurement in this process: {"seconds", "users"} (+ "agree" for dense)."""
    if mode == "e2e":  # the command itself, in a process of its own below this one
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "l3ae", "recommend", model, "--interactions",
                            inter, "--all", "-n", str(N), "--out", out, "-q"],
                           stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise SystemExit(f"l3ae recommend failed: {r.stderr}")
        return {"seconds": time.perf_counter() - t, "users": m}
    from l3ae.engine.score import topn
    from l3ae.model import Recommender

    B = Recommender.load(model).B_
    Bd = B.toarray() if mode == "dense" else None
    pop, secs, agree = popularity(n, seed), 0.0, None
    topn(sp.csr_matrix((1, n), dtype=np.float32), B, N)  # compile / load the numba cache
    for c, lens, items in chunks(m, n, pop, seed):
        X = sp.csr_matrix((np.ones(len(items), np.float32), items,
                           np.concatenate([[0], np.cumsum(lens)])), shape=(len(lens), n))
        t = time.perf_counter()
        if mode == "kernel":
            topn(X, B, N)
        else:
            top = dense_topn(X, Bd, N)
        secs += time.perf_counter() - t
        if mode == "dense" and c == 0:
            ref = topn(X, B, N)[0]
            agree = float((top == ref).all(axis=1).mean())
    return {"seconds": secs, "users": m, "agree": agree}


def dense_topn(X, Bd, N):
    """numpy top-N: S = X @ B_dense, seen items to -inf, argpartition, sort the N."""
    S = np.asarray(X @ Bd)
    S[X.nonzero()] = -np.inf
    part = np.argpartition(-S, N - 1, axis=1)[:, :N]
    vals = np.take_along_axis(S, part, 1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, 1)


def measure(mode, m, args, model, inter, folder):
    """Run one mode for m users in a fresh process: its result plus peak RSS (GiB)."""
    out = os.path.join(folder, f"recs-{m}.csv")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--users", str(m),
           "--items", str(args.items), "-n", str(args.n), "--seed", str(args.seed),
           "--model", model, "--inter", inter, "--out", out]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    data = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{mode} at {m} users failed (status {status})")
    res = json.loads(data)
    peak = usage.ru_maxrss
    if mode == "e2e":  # the command ran one level further down: its own peak is the one
        peak = res["peak_kib"]
    res["peak_gib"] = peak / 2**20
    if mode == "e2e" and os.path.exists(out):
        os.unlink(out)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--topk", type=int, default=200)
    ap.add_argument("--budget", type=float, default=0.0, help="rows shared out as `l3ae build "
                    "--prune row --budget` does (0: topk each)")
    ap.add_argument("--lengths-like", metavar="MODEL", help="rows as long (relative to their "
                    "mean, by popularity quantile) as those of this real model.h5, e.g. one "
                    "built with the default --prune global")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=["e2e", "kernel", "dense"],
                    choices=["e2e", "kernel", "dense"])
    ap.add_argument("--workdir", help="Keep inputs here (default: a temporary folder).")
    ap.add_argument("--md", default=os.path.join(HERE, "results", "recommend.md"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--inter", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, args.users[0], args.items, args.n, args.seed, args.model,
                    args.inter, args.out)
        res["peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps(res))
        return
    folder = args.workdir or tempfile.mkdtemp(prefix="l3ae-bench-recommend-")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for m in args.users:
        model, inter = write_inputs(folder, m, args.items, args.topk, args.seed, args.budget,
                                    args.lengths_like)
        res = {mode: measure(mode, m, args, model, inter, folder) for mode in args.modes}
        rows.append((m, res))
        print(row_text(m, res), flush=True)
    text = table(rows, args)
    print(text)
    os.makedirs(os.path.dirname(args.md), exist_ok=True)
    with open(args.md, "w") as fh:
        fh.write(text)


def row_text(m, res):
    cells = [f"{m:,}"]
    for mode in ("e2e", "kernel", "dense"):
        r = res.get(mode)
        cells += ["–", "–"] if r is None else [f"{r['users'] / r['seconds']:,.0f}",
                                               f"{r['peak_gib']:.2f}"]
    k, d = res.get("kernel"), res.get("dense")
    ratio = f"{d['seconds'] / k['seconds']:.1f}×" if k and d else "–"
    agree = f"{d['agree']:.3f}" if d and d.get("agree") is not None else "–"
    return "| " + " | ".join(cells + [ratio, agree]) + " |"


def table(rows, args):
    head = (f"Batch recommend, top-{args.n}, n = {args.items:,} items, B pruned to top-"
            f"{args.topk} per row (random sparse CSR of that shape), 10–20 items per user, "
            f"{os.cpu_count()} cores. users/s and peak RSS (GiB) per mode, each run in a fresh "
            "process. e2e: `l3ae recommend --all` from CSV in to CSV out, wall time from launch. "
            "kernel: topn alone. dense: X @ B_dense + argpartition in numpy. kernel/dense: "
            "speed-up of the kernel over dense numpy; agree: share of identical top-N lists "
            "(first chunk).\n\n")
    if args.lengths_like:
        head = head.replace("(random sparse CSR of that shape)", "(random sparse CSR; rows as "
                            f"long, by popularity quantile, as those of {args.lengths_like}, "
                            f"mean {args.topk})")
    if args.budget:
        head = head.replace("(random sparse CSR of that shape)", "(random sparse CSR; rows "
                            f"shared out as --prune row --budget {args.budget} does)")
    head += ("| users | e2e users/s | e2e GiB | kernel users/s | kernel GiB | dense users/s | "
             "dense GiB | kernel/dense | agree |\n|" + "---|" * 9 + "\n")
    return head + "\n".join(row_text(m, res) for m, res in rows) + "\n"


if __name__ == "__main__":
    main()
