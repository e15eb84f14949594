"""Bring your own data: the cost of wide vectors, and batch recommend from Parquet.

1. Build time against the embedding width. One seeded synthetic catalog (bench/synth.py
   ``catalog``: n = 8000 items, 5n users, power-law popularity and history lengths), its
   vectors at d = 384, 1024 and 4096 (cluster centre plus noise, L2-normalized; the same X for
   every d) written as Parquet (a fixed-size-list float32 column, the layout LLM pipelines
   export), then L3AE (λ_X = −20, λ_E = 60, λ_F = 10, top-500, float32) built through the
   library's own path (``api.load_embeddings`` reads the Parquet file, ``api.build``), each d
   in a fresh process. Reported: the read, each phase (gram, factorize, phase 1 = "semantic":
   EᵀE, its Cholesky factor and Y = E R⁻ᵀ, in float64; weights = P·W·Y plus B's rows, both
   n²·d), the total, phase 1's share of it, the total against d = 384, and peak RSS.
   Target (issue 14): d = 4096 adds ≤ 15% to the d = 384 build time.

2. ``l3ae recommend --all`` from Parquet against CSV: bench/recommend.py's inputs (n = 20,000
   items, B pruned to 200 per row, 10–20 items per user, grouped by user) for each number of
   users, the CSV converted to Parquet (pyarrow, row groups of ~64k rows); the command run from
   each, CSV out, in a fresh process: users/s (wall time from launch) and peak RSS (ru_maxrss of
   the command's process). Target: Parquet at least as fast as CSV, memory flat in users.

    python bench/embeddings.py                                   # the lead's run (idle machine)
    python bench/embeddings.py --n 1000 --dims 32 128 --users 5000 --items 2000   # a check
    python bench/embeddings.py --parts build

Prints markdown tables and writes them to bench/results/embeddings.md (--md to change).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

REG_X, REG_E, REG_F, TOPK = -20.0, 60.0, 10.0, 500


# -------------------------------------------------------------------------- 1. build vs d
def write_catalog(folder, n, dims, seed):
    """interactions.csv (grouped by user) and vectors-{d}.parquet for each d, once."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synth import catalog

    inter = os.path.join(folder, f"inter-{n}.csv")
    files = {}
    for d in dims:
        path = os.path.join(folder, f"vectors-{n}-{d}.parquet")
        files[d] = path
        if os.path.exists(path) and os.path.exists(inter):
            continue
        X, E = catalog(n, d=d, seed=seed)  # X depends on the seed only: the same for every d
        if not os.path.exists(inter):
            X = X.tocoo()
            order = np.lexsort((X.col, X.row))
            with open(inter + ".tmp", "w") as fh:
                fh.write("user_id,item_id\n")
                fh.write("".join(f"u{u},i{i}\n" for u, i in zip(X.row[order].tolist(),
                                                                 X.col[order].tolist())))
            os.replace(inter + ".tmp", inter)
        col = pa.FixedSizeListArray.from_arrays(pa.array(E.ravel(), pa.float32()), d)
        ids = pa.array([f"i{j}" for j in range(n)])
        order = np.random.default_rng(seed).permutation(n)  # rows in another order than X's
        pq.write_table(pa.table({"item_id": ids.take(pa.array(order)),
                                 "embedding": col.take(pa.array(order))}), path + ".tmp")
        os.replace(path + ".tmp", path)
    return inter, files


def child_build(inter, vectors):
    """One build in this process: timings (s) and the vectors' width."""
    from l3ae import api
    from l3ae.engine.models import Config

    t0 = time.perf_counter()
    source = api.Data(interactions=inter).load()
    _, item_ids = api.full_matrix(source)
    t = time.perf_counter()
    E, _ = api.load_embeddings(source, item_ids, vectors)
    t_read = time.perf_counter() - t
    cfg = Config.from_preset("l3ae", reg_x=REG_X, reg_e=REG_E, reg_f=REG_F, topk=TOPK)
    X, _ = api.full_matrix(source)
    from l3ae.model import Recommender

    rec = Recommender(cfg).fit(X, E, item_ids=item_ids)
    return {"d": int(E.shape[1]), "read": t_read, "load": t - t0, **rec.timings_}


def build_rows(args, folder):
    # inputs are made in a child: a forked process's peak RSS starts at its parent's
    made, _ = run_child(["--child", "prepare-build", "--workdir", folder, "--n", str(args.n),
                         "--seed", str(args.seed), "--dims", *map(str, args.dims)])
    inter, files = made["inter"], {int(d): f for d, f in made["files"].items()}
    run_child(["--child", "build", "--inter", inter, "--vectors", files[args.dims[0]]])  # warm
    rows = []  # the numba cache up: the first timed build compiles nothing
    for d in args.dims:
        res, peak = run_child(["--child", "build", "--inter", inter, "--vectors", files[d]])
        res["peak_gib"] = peak
        rows.append(res)
        print(build_row(res, rows[0]), flush=True)
    return rows


def build_row(r, base):
    share = r["semantic"] / r["total"]
    added = (r["total"] / base["total"] - 1) if r is not base else 0.0
    cells = [f"{r['d']:,}", f"{r['read']:.2f}", f"{r['gram']:.2f}", f"{r['factorize']:.2f}",
             f"{r['semantic']:.2f}", f"{r['weights']:.2f}", f"{r['total']:.2f}",
             f"{100 * share:.0f}%", "–" if r is base else f"{100 * added:+.0f}%",
             f"{r['peak_gib']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def build_table(rows, args):
    head = (f"Build time against the embedding width: L3AE (λ_X = {REG_X:g}, λ_E = {REG_E:g}, "
            f"λ_F = {REG_F:g}, top-{TOPK}, float32), n = {args.n:,} synthetic items "
            f"(bench/synth.py, {5 * args.n:,} users, the same X for every d), vectors read from "
            f"Parquet, each build in a fresh process, {os.cpu_count()} cores. Seconds per phase: "
            "semantic = phase 1 (EᵀE, its Cholesky factor, Y = E R⁻ᵀ; float64), weights = "
            "P·W·Y and B's rows (n²·d each) and pruning; share = phase 1 / total; "
            "vs first = total against the first width.\n\n")
    head += ("| d | read | gram | factorize | phase 1 | weights | total | phase 1 share | "
             "vs first | peak GiB |\n|" + "---|" * 10 + "\n")
    return head + "\n".join(build_row(r, rows[0]) for r in rows) + "\n"


# ----------------------------------------------------------- 2. recommend: Parquet vs CSV
def to_parquet(csv, path):
    """The CSV's rows as Parquet, streamed (row groups of ~64k rows)."""
    import pyarrow as pa
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    if os.path.exists(path):
        return path
    opts = pc.ConvertOptions(column_types={"user_id": pa.string(), "item_id": pa.string()})
    reader = pc.open_csv(csv, convert_options=opts)
    with pq.ParquetWriter(path + ".tmp", reader.schema) as w:
        for batch in reader:
            w.write_batch(batch, row_group_size=1 << 16)
    os.replace(path + ".tmp", path)
    return path


def recommend_rows(args, folder):
    rows = []
    for m in args.users:
        (model, csv, pqf), _ = run_child(["--child", "prepare-recommend", "--workdir", folder,
                                          "--users", str(m), "--items", str(args.items),
                                          "--topk", str(args.topk), "--seed", str(args.seed)])
        res = {"users": m}
        for name, src in (("csv", csv), ("parquet", pqf)):
            out = os.path.join(folder, f"recs-{m}-{name}.csv")
            cmd = [sys.executable, "-m", "l3ae", "recommend", model, "--interactions", src,
                   "--all", "-n", str(args.topn), "--out", out, "-q"]
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
            err = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if status:
                raise SystemExit(f"l3ae recommend failed: {err.decode()}")
            res[name] = {"rate": m / (time.perf_counter() - t), "peak_gib": usage.ru_maxrss / 2**20}
            if b"reading the whole file" in err:
                raise SystemExit(f"{src} was not streamed: {err.decode()}")
        same = open(os.path.join(folder, f"recs-{m}-csv.csv"), "rb").read() == open(
            os.path.join(folder, f"recs-{m}-parquet.csv"), "rb").read()
        res["same"] = same
        for name in ("csv", "parquet"):
            os.unlink(os.path.join(folder, f"recs-{m}-{name}.csv"))
        rows.append(res)
        print(recommend_row(res), flush=True)
    return rows


def recommend_row(r):
    c, p = r["csv"], r["parquet"]
    return (f"| {r['users']:,} | {c['rate']:,.0f} | {c['peak_gib']:.2f} | {p['rate']:,.0f} | "
            f"{p['peak_gib']:.2f} | {p['rate'] / c['rate']:.2f}× | "
            f"{'yes' if r['same'] else 'NO'} |")


def recommend_table(rows, args):
    head = (f"`l3ae recommend --all`, top-{args.topn}, from CSV and from Parquet (the same rows, "
            f"grouped by user), CSV out; n = {args.items:,} items, B pruned to top-{args.topk} "
            f"per row (bench/recommend.py's inputs), 10–20 items per user, {os.cpu_count()} "
            "cores; users/s from launch to exit and peak RSS of the command, each in a fresh "
            "process; same = identical output files.\n\n")
    head += ("| users | CSV users/s | CSV GiB | Parquet users/s | Parquet GiB | Parquet/CSV | "
             "same |\n|" + "---|" * 7 + "\n")
    return head + "\n".join(recommend_row(r) for r in rows) + "\n"


# ----------------------------------------------------------------------------------- main
def run_child(extra):
    """Run this script as a child with ``extra`` args: (its JSON result, its peak RSS GiB)."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *extra],
                            stdout=subprocess.PIPE)
    data = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"child {extra} failed (status {status})")
    return json.loads(data), usage.ru_maxrss / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["build", "recommend"],
                    choices=["build", "recommend"])
    ap.add_argument("--n", type=int, default=8000, help="Items of the build part.")
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 1024, 4096])
    ap.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--items", type=int, default=20_000, help="Items of the recommend part.")
    ap.add_argument("--topk", type=int, default=200)
    ap.add_argument("--topn", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="Keep inputs here (default: a temporary folder).")
    ap.add_argument("--md", default=os.path.join(HERE, "results", "embeddings.md"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--inter", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "build":
        print(json.dumps(child_build(args.inter, args.vectors)))
        return
    if args.child == "prepare-build":
        inter, files = write_catalog(args.workdir, args.n, args.dims, args.seed)
        print(json.dumps({"inter": inter, "files": files}))
        return
    if args.child == "prepare-recommend":
        import recommend as rb

        model, csv = rb.write_inputs(args.workdir, args.users[0], args.items, args.topk,
                                     args.seed)
        print(json.dumps([model, csv, to_parquet(csv, csv[:-4] + ".parquet")]))
        return
    folder = args.workdir or tempfile.mkdtemp(prefix="l3ae-bench-embeddings-")
    os.makedirs(folder, exist_ok=True)
    text = ""
    if "build" in args.parts:
        text += build_table(build_rows(args, folder), args) + "\n"
    if "recommend" in args.parts:
        text += recommend_table(recommend_rows(args, folder), args)
    print(text)
    os.makedirs(os.path.dirname(args.md), exist_ok=True)
    with open(args.md, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
