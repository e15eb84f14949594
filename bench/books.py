"""One Books-size exact build on this machine, killed mid-solve and resumed (issue 12, part 8).

A synthetic catalog with Amazon-book's shape (the LightGCN/RLMRec split: 52,643 users × 91,599
items, ~2.98M interactions; bench/synth.py's power-law ``catalog``) is written as a CSV, then
built the way an ops team would, by the command line, single process:

    l3ae build --interactions books.csv --model ease --max-memory 8G --workdir W --out books.h5

The build is SIGKILLed once the inverse is --kill-at of the way through (read from its progress
line, on a pseudo-terminal), then the same line is rerun with --resume. Reported: wall time of
both runs, peak RSS of each (wait4), the tile file's size, the solve's GFLOP/s per phase against
a 4096³ sgemm measured in this process just before, and the model's agreement with an exact
float64 reference on sampled columns: for EASE, B[:, j] = −P[:, j] / P_jj (j ≠ i), and P[:, j]
solves (XᵀX + λI) p = e_j, found by conjugate gradients on X alone. A second uninterrupted
1.5 h build to compare against would double the run; the reference is the exact answer instead.
Per sampled column j (head, torso and tail items): the largest error of a stored weight relative
to its row's largest weight, and the top-20 / top-500 membership (is j among row i's 20 / 500
strongest?) of the model against the reference, over all rows i.

    python bench/books.py                  # ~1.5 h on 2 cores: run it alone on the machine
    python bench/books.py --items 20000 --users 11500 --nnz-per-user 57 --max-memory 1G  # minutes
"""

import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
GIB = 2 ** 30
REG = 500.0  # the ease preset's λ_X


def write_catalog(path, n_items, n_users, per_user, seed):
    """The catalog as a user_id,item_id CSV; (X csr, nnz). mean_len is set so that the merged
    histories come out at ~per_user interactions per user."""
    from synth import catalog

    X, _ = catalog(n_items, n_users=n_users, d=2, mean_len=per_user * 69 / 56.6, seed=seed)
    X = sp.csr_matrix(X)
    u = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    with open(path, "w") as fh:
        fh.write("user_id,item_id\n")
        for s in range(0, len(u), 1 << 20):
            np.savetxt(fh, np.column_stack([u[s:s + (1 << 20)], X.indices[s:s + (1 << 20)]]),
                       fmt="%d", delimiter=",")
    return X


def sgemm_rate():
    from scale import gemm_rate

    return gemm_rate()


def run(cmd, log, kill_at=None):
    """Run ``cmd`` with stderr on a pseudo-terminal (so that it draws its progress line), copy
    that to ``log``; SIGKILL it when the inverse's progress reaches ``kill_at`` (a fraction).
    Returns (wall s, peak RSS GiB, exit status, killed, the text it printed)."""
    master, slave = pty.openpty()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stderr=slave, stdout=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    text, killed = [], False
    pat = re.compile(r"inverse\s+(\d+)/(\d+)")
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        while True:
            r, _, _ = select.select([master], [], [], 1.0)
            if r:
                try:
                    chunk = os.read(master, 65536).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk:
                    break
                text.append(chunk)
                fh.write(chunk)
                fh.flush()
                m = pat.findall(chunk)
                if kill_at is not None and m and not killed:
                    done, total = map(int, m[-1])
                    if done >= kill_at * total:
                        os.kill(p.pid, signal.SIGKILL)
                        killed = True
                        fh.write(f"\n[bench: SIGKILL at inverse {done}/{total}]\n")
            elif p.poll() is not None:
                break
    _, status, ru = os.wait4(p.pid, 0)
    os.close(master)
    return time.perf_counter() - t0, ru.ru_maxrss / 2 ** 20, status, killed, "".join(text)


def last_rate(text, phase):
    rates = re.findall(phase + r"\s+\d+/\d+ \(\d+%\) (\d+) GFLOP/s", text)
    return float(rates[-1]) if rates else float("nan")


def exact_columns(X, reg, cols, rtol=1e-10):
    """P[:, j] for j in cols, float64, by Jacobi-preconditioned CG on (XᵀX + reg·I) p = e_j."""
    X = sp.csr_matrix(X, dtype=np.float64)
    Xt = X.T.tocsr()
    n = X.shape[1]
    A = spla.LinearOperator((n, n), matvec=lambda v: Xt @ (X @ v) + reg * v, dtype=np.float64)
    d = np.asarray(X.multiply(X).sum(0)).ravel() + reg
    M = spla.LinearOperator((n, n), matvec=lambda v: v / d, dtype=np.float64)
    out = []
    for j in cols:
        e = np.zeros(n)
        e[j] = 1.0
        p, info = spla.cg(A, e, rtol=rtol, atol=0.0, M=M, maxiter=5000)
        if info:
            raise RuntimeError(f"CG did not converge for column {j}")
        out.append(p)
    return out


def agreement(B, X, reg, n_cols, seed):
    """Model B (csr, pruned rows) against the exact B[:, j] for sampled columns (see above)."""
    n = B.shape[0]
    counts = np.diff(sp.csc_matrix(X).indptr)
    order = np.argsort(-counts, kind="stable")
    rng = np.random.default_rng(seed)
    thirds = np.array_split(order, 3)  # head, torso, tail by train count
    cols = np.concatenate([rng.choice(t, n_cols // 3, replace=False) for t in thirds])
    absB = sp.csr_matrix(B)
    absB.data = np.abs(absB.data)
    rowmax = np.asarray(absB.max(axis=1).todense()).ravel()
    kth = {}
    for k in (20, 500):
        t = np.zeros(n)
        for i in range(n):
            v = absB.data[absB.indptr[i]:absB.indptr[i + 1]]
            if len(v) >= k:
                t[i] = np.partition(v, len(v) - k)[len(v) - k]
        kth[k] = t
    Bc = sp.csc_matrix(B)
    errs, agree = [], {20: [0, 0], 500: [0, 0]}
    t0 = time.perf_counter()
    for j, p in zip(cols, exact_columns(X, reg, cols)):
        ref = -p / p[j]
        ref[j] = 0.0
        rows = Bc.indices[Bc.indptr[j]:Bc.indptr[j + 1]]
        vals = Bc.data[Bc.indptr[j]:Bc.indptr[j + 1]]
        ok = rowmax[rows] > 0
        errs.append(np.max(np.abs(vals[ok] - ref[rows][ok]) / rowmax[rows][ok], initial=0.0))
        for k in (20, 500):
            model = np.zeros(n, bool)
            model[rows] = np.abs(vals) >= kth[k][rows]
            truth = np.abs(ref) >= kth[k] * (1 + 1e-6)
            near = np.abs(np.abs(ref) - kth[k]) <= 1e-5 * np.maximum(rowmax, 1e-30)  # ties
            both, either = (model & truth)[~near].sum(), (model | truth)[~near].sum()
            agree[k][0] += both
            agree[k][1] += either
    return cols, counts[cols], max(errs), {k: a / max(b, 1) for k, (a, b) in agree.items()}, \
        time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=91599)
    ap.add_argument("--users", type=int, default=52643)
    ap.add_argument("--nnz-per-user", type=float, default=2984108 / 52643,
                    help="Amazon-book: 2,984,108 interactions over 52,643 users")
    ap.add_argument("--max-memory", default="8G")
    ap.add_argument("--kill-at", type=float, default=0.3,
                    help="SIGKILL when the inverse is this far (0: no kill)")
    ap.add_argument("--columns", type=int, default=30, help="sampled columns checked exactly")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="l3ae-books-")
    os.makedirs(work, exist_ok=True)
    csv, out, log = (os.path.join(work, f) for f in ("books.csv", "books.h5", "books.log"))
    print(f"# workdir {work}", flush=True)
    X = write_catalog(csv, args.items, args.users, args.nnz_per_user, args.seed)
    m, n = X.shape
    print(f"# synthetic catalog: {m} users × {n} items, {X.nnz} interactions "
          f"({os.path.getsize(csv) / 2 ** 20:.0f} MiB CSV)", flush=True)
    rate = sgemm_rate()
    print(f"# sgemm 4096³ in this process: {rate:.0f} GFLOP/s", flush=True)
    l3ae = os.path.join(os.path.dirname(sys.executable), "l3ae")
    cmd = [l3ae, "build", "--interactions", csv, "--model", "ease", "--max-memory",
           args.max_memory, "--workdir", work, "--out", out]
    wall1, rss1, st1, killed, text1 = run(cmd, log, kill_at=args.kill_at or None)
    tiles = os.path.join(work, "books.h5.tiles.h5")
    disk = os.path.getsize(tiles) / 2 ** 30 if os.path.exists(tiles) else float("nan")
    print(f"run 1: {wall1:.0f} s, peak RSS {rss1:.2f} GiB, "
          f"{'SIGKILLed in the inverse' if killed else f'exit status {st1}'}; "
          f"cholesky {last_rate(text1, 'cholesky'):.0f} GFLOP/s, inverse so far "
          f"{last_rate(text1, 'inverse'):.0f} GFLOP/s; tile file {disk:.2f} GiB", flush=True)
    wall2, rss2, st2, _, text2 = (0.0, 0.0, 0, False, "")
    if killed:
        wall2, rss2, st2, _, text2 = run(cmd + ["--resume"], log)
        print(f"run 2 (--resume): {wall2:.0f} s, peak RSS {rss2:.2f} GiB, exit status {st2}; "
              f"inverse {last_rate(text2, 'inverse'):.0f} GFLOP/s", flush=True)
    if (st2 if killed else st1) != 0 or not os.path.exists(out):
        print("the build failed; see " + log)
        return 1
    final = [ln for ln in (text2 or text1).splitlines() if "ease:" in ln]
    print("final line: " + (final[-1].strip() if final else "?"))
    print(f"total wall {wall1 + wall2:.0f} s ({(wall1 + wall2) / 3600:.2f} h), peak RSS "
          f"{max(rss1, rss2):.2f} GiB (budget {args.max_memory}), tile file {disk:.2f} GiB")
    tim = dict(re.findall(r"(\w+) ([\d.]+)", final[-1].split("s (", 1)[1])) if final else {}
    for ph in ("cholesky", "inverse"):
        if ph + "_gflops" in tim:
            print(f"  {ph} (last run) {float(tim[ph + '_gflops']):.0f} GFLOP/s")
    for name, r in (("cholesky", last_rate(text1, "cholesky")),
                    ("inverse", last_rate(text2 or text1, "inverse"))):
        print(f"  {name}: {r:.0f} GFLOP/s = {r / rate:.0%} of this run's sgemm")
    from l3ae.io.model_file import read_model

    model = read_model(out)
    ids = np.array([int(s) for s in model["item_ids"]])  # model order -> the CSV's item ids
    B = sp.coo_matrix(model["B"])
    B = sp.csr_matrix((B.data, (ids[B.row], ids[B.col])), shape=(n, n))
    cols, cnt, err, agree, secs = agreement(B, X, REG, args.columns, args.seed)
    print(f"exact float64 reference (CG) on {len(cols)} columns (train counts "
          f"{cnt.min()}..{cnt.max()}; {secs:.0f} s): largest stored-weight error "
          f"{err:.2e} of its row's largest weight; top-20 membership agreement "
          f"{agree[20]:.4f}, top-500 {agree[500]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
