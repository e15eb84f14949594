"""Where scipy's bundled OpenBLAS crashes: the root cause behind LAPACK_MAX_N (l3ae.engine.memory).

OpenBLAS gives each thread a fixed work buffer (32 MiB in scipy's wheel). A multi-threaded ssyrk
whose panel has k columns copies about 0.72·n·k floats of its n-row operand into it; spotrf's
blocked algorithm issues such ssyrk calls with k = 448, so both overflow at the same n and crash
the process (SIGSEGV, no error). Each case below runs in its own process:

    python bench/openblas_limit.py                    # the cases of bench/results/openblas.md
    python bench/openblas_limit.py --case ssyrk 26000 2 448

Needs threadpoolctl (not an l3ae dependency: `pip install threadpoolctl`) for the kernel name and
the thread limit. Writes bench/results/openblas.md.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [("spotrf", 25000, 2, 0), ("spotrf", 27000, 2, 0), ("spotrf", 27000, 1, 0),
         ("ssyrk", 25700, 2, 448), ("ssyrk", 26000, 2, 448), ("ssyrk", 27000, 1, 448),
         ("ssyrk", 27000, 2, 128), ("ssyrk", 40000, 2, 128)]


def case(kind, n, threads, k):
    from scipy.linalg import blas, lapack
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        t = time.perf_counter()
        if kind == "spotrf":
            A = np.full((n, n), 1e-3, np.float32, order="F")
            A.flat[:: n + 1] += 1.0
            lapack.spotrf(A, lower=1, overwrite_a=1, clean=0)
        else:
            a = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32, order="F")
            blas.ssyrk(1.0, a, lower=1)
        return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--case", nargs=4, metavar=("KIND", "N", "THREADS", "K"))
    args = ap.parse_args()
    if args.case:
        kind, n, threads, k = args.case[0], *map(int, args.case[1:])
        print(f"{case(kind, n, threads, k):.1f}")
        return
    from threadpoolctl import threadpool_info

    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so that it is listed)

    libs = [f"{x['prefix']} {x['version']} ({x['architecture']} kernels, {x['num_threads']} "
            "threads)" for x in threadpool_info() if x["internal_api"] == "openblas"]
    lines = ["# scipy's OpenBLAS: where one call crashes", "",
             "Command: `python bench/openblas_limit.py`. Libraries: " + "; ".join(libs), "",
             "| call | n | threads | k | result |", "|---|---|---|---|---|"]
    for kind, n, threads, k in CASES:
        p = subprocess.run([sys.executable, __file__, "--case", kind, str(n), str(threads),
                            str(k)], capture_output=True, text=True)
        res = (f"ran, {p.stdout.strip()} s" if p.returncode == 0 else
               f"crashed (signal {-p.returncode})" if p.returncode < 0 else
               f"failed: {p.stderr.strip().splitlines()[-1]}")
        lines.append(f"| {kind} | {n:,} | {threads} | {k or '(spotrf)'} | {res} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(HERE, "results", "openblas.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
