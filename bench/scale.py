"""Scaling of the exact build: in memory vs out of core (--max-memory), synthetic and real.

For each n: a seeded synthetic catalog (bench/synth.py ``catalog``: power-law popularity,
power-law history lengths, embeddings clustered with co-consumption; 5n users, d = 384), then
L3AE (λ_X = −20, λ_E = 60, λ_F = 10, top-500, float32) built
  - in memory (one n×n buffer), when it fits this machine's RAM,
  - out of core with a memory budget (default: 3G at 40k, 12G at 100k, else the in-memory
    run's peak RSS minus half of the n×n buffer), tiles in a temporary folder,
  - and, for n ≤ 8000, the reference pipeline of bench/reference.py (dense float64, np.linalg.inv).
Each build runs in its own process (peak RSS = ru_maxrss of that process; "data" = RSS after
loading X and E, before the build). Reported per run: wall time per phase, the solve's achieved
rate n³ / factorize-time (potrf + inverse = n³ flops) against an fp32 GEMM (4096³ sgemm, best of
3) measured in the same process just before the build, peak RSS, the tile file's size, and the
agreement of its top-20 lists with the in-memory build.

    python bench/scale.py --sizes 5000 10000          # a few minutes
    python bench/scale.py                             # 5k, 10k, 20k, 40k
    python bench/scale.py --full                      # + 100k (12G budget; in memory skipped)
    python bench/scale.py --sizes 40000 --max-memory 3G --modes tiles
    python bench/scale.py --faerec --sizes            # FAERec Beauty: EASE, in memory and 6G
    python bench/scale.py --faerec Yelp --sizes --max-memory 1G   # the small one (11k items)

--faerec: FAERec's Amazon Beauty sequences (../shared/datasets/faerec/Beauty.txt, one line per
user: user item item …), leave-one-out (last item = test), EASE (λ = 100) built exactly in
memory and with --max-memory 6G; HR@10 / NDCG@10 over all items with the user's other items
masked, so the two builds can be compared on quality too.
--cornac PYTHON: also Cornac's EASE (dense float64 Gram, np.linalg.inv, dense B: ~24·n² bytes)
run by that interpreter (a separate venv with cornac==3.0.1) where it fits in RAM, beside l3ae's
EASE (λ = 100, in memory) on the same data: wall, peak RSS and top-20 agreement. SANSA is not
run (it needs Debian's libsuitesparse-dev and a scikit-sparse build).
Projections for sizes not run: factorize ≈ n³ / (the tiled solve's rate at the largest n run),
weights ≈ measured weights time × (n / n_run)² (both O(n²d) and O(n²) parts scale as n² at
fixed d); disk = n²/2 × 4 bytes.
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
sys.path.insert(0, HERE)

REG_X, REG_E, REG_F, TOPK, TOPN, EVAL_USERS = -20.0, 60.0, 10.0, 500, 20, 2000
BUDGETS = {40000: "3G", 100000: "12G"}
FAEREC = os.path.join(HERE, "..", "..", "shared", "datasets", "faerec")
GIB = 2 ** 30


def rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def gemm_rate():
    """fp32 GEMM GFLOP/s on this machine now: 4096³ sgemm, best of 3."""
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((4096, 4096), dtype=np.float32))
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        blas.sgemm(1.0, a, a)
        best = min(best, time.perf_counter() - t)
    return 2 * 4096 ** 3 / best / 1e9


# -- data ---------------------------------------------------------------------------------------
def read_sequences(path):
    """FAERec's sequence file: (X (m, n) CSR without each user's last item, test items (m,))."""
    rows, cols, test = [], [], []
    with open(path) as fh:
        for u, line in enumerate(fh):
            items = [int(t) - 1 for t in line.split()[1:]]
            rows.extend([u] * (len(items) - 1))
            cols.extend(items[:-1])
            test.append(items[-1])
    m, n = len(test), max(max(cols), max(test)) + 1
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(m, n))
    X.sum_duplicates()
    X.data[:] = 1
    return X, np.array(test)


def save_data(kind, n, folder, seed=0):
    """Write X (npz) [and E (npy)] once per size; workers load them (no generator in their RSS)."""
    if kind != "synthetic":
        X, test = read_sequences(os.path.join(FAEREC, f"{kind}.txt"))
        np.save(os.path.join(folder, "test.npy"), test)
        E = None
    else:
        from synth import catalog

        X, E = catalog(n, seed=seed)
        np.save(os.path.join(folder, "E.npy"), E)
    sp.save_npz(os.path.join(folder, "X.npz"), X, compressed=False)
    return X.shape, X.nnz


# -- one build per process ----------------------------------------------------------------------
CORNAC = """
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
import cornac
from cornac.models import EASE
folder, out, lam = sys.argv[1], sys.argv[2], float(sys.argv[3])
X = sp.load_npz(folder + "/X.npz").tocsr()
u, i = X.nonzero()
ds = cornac.data.Dataset.from_uir(list(zip(u.astype(str), i.astype(str), np.ones(len(u)))),
                                  seed=0)
data_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
t = time.perf_counter()
m = EASE(lamb=lam, posB=False, verbose=False).fit(ds)
wall = time.perf_counter() - t
# back to our item order; top-20 for the first users, seen items masked
order = np.array([ds.iid_map[str(j)] for j in range(X.shape[1])])
B = m.B[np.ix_(order, order)]
S = X[:%d] @ B
S[X[:%d].toarray() > 0] = -np.inf
np.save(out, np.argsort(-S, axis=1, kind="stable")[:, :20])
json.dump({"wall": wall, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
           "data_rss": data_rss, "gemm": float("nan"), "timings": {"total": wall}},
          sys.stdout)
""" % (EVAL_USERS, EVAL_USERS)
EASE_REG = 100.0


def worker(kind, mode, budget, folder, out):
    from l3ae.engine import solve_weights, topn

    X = sp.load_npz(os.path.join(folder, "X.npz")).tocsr()
    E = np.load(os.path.join(folder, "E.npy")) if os.path.exists(
        os.path.join(folder, "E.npy")) else None
    data_rss = rss_gib()
    rate = gemm_rate()
    n = X.shape[1]
    model = (dict(reg_x=EASE_REG) if E is None or mode == "ease"
             else dict(reg_x=REG_X, reg_e=REG_E, reg_f=REG_F, E=E))
    t = time.perf_counter()
    if mode == "reference":
        from reference import run_reference

        B, secs, tim = run_reference(X, E)
        tim = {"total": secs}
    else:
        with tempfile.TemporaryDirectory(dir=folder) as work:
            w = solve_weights(X, topk=0 if mode == "ease" else TOPK,  # the peer keeps all
                              dtype=np.float32, workdir=work,
                              max_memory=budget if mode == "tiles" else None, **model)
        B, tim = w.B, w.timings
    wall = time.perf_counter() - t
    res = {"wall": wall, "rss": rss_gib(), "data_rss": data_rss, "gemm": rate, "timings": tim,
           "n": n}
    if kind != "synthetic":
        test = np.load(os.path.join(folder, "test.npy"))
        users = np.flatnonzero(np.diff(X.indptr) > 0)
        top, _ = topn(X[users], B, 10)
        hit = top == test[users][:, None]
        res["hr@10"] = float(hit.any(axis=1).mean())
        res["ndcg@10"] = float((hit / np.log2(np.arange(2, 12))).sum(axis=1).mean())
    else:
        top, _ = topn(X[:EVAL_USERS], B, TOPN)
    np.save(out, top)
    json.dump(res, sys.stdout)


def run_worker(kind, mode, budget, folder, python=None):
    out = os.path.join(folder, f"top_{mode}.npy")
    cmd = [sys.executable, __file__, "--worker", kind, mode, budget or "-", folder, out]
    if mode == "cornac":
        cmd = [python, "-c", CORNAC, folder, out, str(EASE_REG)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    r = json.loads(p.stdout)
    r["top"] = out
    return r


# -- report ---------------------------------------------------------------------------------------
HEAD = (f"{'n':>7} {'run':<14} {'budget':>6} {'tile':>5} {'wall s':>8} {'gram':>6} "
        f"{'factor':>8} {'weights':>7} {'GFLOP/s':>8} {'% GEMM':>6} {'peak GiB':>8} "
        f"{'data':>5} {'disk GiB':>8} {'io wait':>7} {'top-20 =':>8}")


def _dur(s):
    return (f"{s / 86400:.1f} days" if s > 2 * 86400 else f"{s / 3600:.1f} h" if s > 3600
            else f"{s / 60:.0f} min")


def _num(v, width, digits=1):
    return f"{v:>{width}.{digits}f}" if v is not None and np.isfinite(v) else f"{'-':>{width}}"


def row(n, name, budget, r, base_top=None):
    if "error" in r:
        return f"{n:>7} {name:<14} {budget or '':>6}  failed: {r['error']}"
    t = r["timings"]
    fac = t.get("factorize")
    rate = n ** 3 / fac / 1e9 if fac else float("nan")
    agree = ""
    if base_top is not None and base_top != r["top"]:
        a, b = np.load(base_top), np.load(r["top"])
        agree = f"{100 * np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]):.2f}%"
    cells = [f"{n:>7}", f"{name:<14}", f"{budget or '-':>6}", f"{int(t.get('tile', 0)) or '-':>5}",
             f"{r['wall']:>8.1f}", _num(t.get('gram'), 6), _num(fac, 8),
             _num(t.get('weights'), 7), _num(rate, 8, 0),
             f"{_num(100 * rate / r['gemm'], 5, 0)}%", f"{r['rss']:>8.2f}",
             f"{r['data_rss']:>5.2f}", f"{t.get('disk_gib', 0):>8.2f}",
             f"{t.get('io_wait', 0):>7.1f}", f"{agree:>8}"]
    line = " ".join(cells)
    if "hr@10" in r:
        line += f"  HR@10 {r['hr@10']:.4f} NDCG@10 {r['ndcg@10']:.4f}"
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000, 10000, 20000, 40000])
    ap.add_argument("--full", action="store_true", help="also n = 100000 (12G budget)")
    ap.add_argument("--max-memory", help="budget of every out-of-core run (default: per size)")
    ap.add_argument("--modes", nargs="+", default=["memory", "tiles", "reference"],
                    choices=["memory", "tiles", "reference"])
    ap.add_argument("--faerec", nargs="?", const="Beauty", metavar="NAME",
                    help="a FAERec catalog (Beauty, Food, Yelp; default Beauty), in memory and 6G")
    ap.add_argument("--cornac", metavar="PYTHON",
                    help="interpreter of a venv with cornac: run its EASE where it fits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="folder for data and tile files (default: "
                    "a temporary folder; needs n²/2 × 4 bytes free)")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, mode, budget, folder, out = args.worker
        return worker(kind, mode, None if budget == "-" else budget, folder, out)
    sizes = list(args.sizes) + ([100000] if args.full else [])
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"L3AE build, d=384, λ_X={REG_X}, λ_E={REG_E}, λ_F={REG_F}, top-{TOPK}, float32; "
          f"{os.cpu_count()} cores, {ram / GIB:.0f} GiB RAM")
    print(HEAD)
    results = []
    jobs = [("synthetic", n) for n in sizes] + ([(args.faerec, None)] if args.faerec else [])
    for kind, n in jobs:
        with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
            shape, nnz = save_data(kind, n, folder, args.seed)
            n = shape[1]
            label = f"{kind} {shape[0]} users × {n} items, {nnz} interactions"
            print(f"# {label}", flush=True)
            modes = [m for m in args.modes if m != "reference" or n <= 8000]
            res = {}
            for mode in ("memory", "tiles", "reference"):
                if mode not in modes:
                    continue
                budget = None
                if mode == "memory" and n * n * 4 > 0.8 * ram:
                    print(f"{n:>7} {'memory':<14} {'':>6}  skipped: the n×n buffer "
                          f"({n * n * 4 / GIB:.0f} GiB) does not fit this machine")
                    continue
                if mode == "tiles":
                    budget = args.max_memory or ("6G" if kind != "synthetic" else BUDGETS.get(n))
                    if budget is None and "memory" in res and "rss" in res["memory"]:
                        budget = f"{res['memory']['rss'] - n * n * 2 / GIB:.2f}G"
                    budget = budget or "3G"
                res[mode] = r = run_worker(kind, mode, budget, folder)
                base = res.get("memory", {}).get("top")
                print(row(n, mode if mode != "tiles" else "out of core", budget, r, base),
                      flush=True)
                results.append((kind, n, mode, budget, r))
            if args.cornac and kind == "synthetic" and 24 * n * n < 0.7 * ram:
                ours = run_worker(kind, "ease", None, folder)
                print(row(n, "l3ae EASE", None, ours), flush=True)
                peer = run_worker(kind, "cornac", None, folder, args.cornac)
                print(row(n, "cornac EASE", None, peer, ours.get("top")), flush=True)
    # projections from the largest tiled run: factor n³/rate, weights ∝ n², disk n²/2·4 B
    tiled = [(n, r) for kind, n, mode, _, r in results
             if kind == "synthetic" and mode == "tiles" and "timings" in r]
    if tiled:
        n0, r0 = max(tiled, key=lambda x: x[0])
        rate = n0 ** 3 / r0["timings"]["factorize"]
        wt = r0["timings"]["weights"] + r0["timings"].get("gram", 0)
        print(f"\nprojection from the out-of-core run at n={n0} ({rate / 1e9:.0f} GFLOP/s "
              f"solve; weights+gram {wt:.0f} s scaled by (n/{n0})²):")
        for n in (100000, 200000, 1000000):
            fac, rest = n ** 3 / rate, wt * (n / n0) ** 2
            print(f"  n={n:>8}: factorize ≈ {_dur(fac)}, weights ≈ {_dur(rest)}, "
                  f"disk ≈ {n * n * 2 / 1e9:.0f} GB (float32 lower tiles)")


if __name__ == "__main__":
    main()
