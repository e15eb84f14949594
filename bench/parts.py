"""The fixed costs of a build, part by part, each against a peer in the same run.

- start-up: a fresh `python -c "import l3ae.cli"` (wall time and RSS), then numba's first
  kernel call in it (time and RSS after): what every `l3ae` command pays before any data;
- reading: the 1.1M-row ratings CSV of bench/reference.py at n = 8,000, by `read_interactions`
  (its numba scan) and by the same function with the scan turned off (the csv module);
- selecting: B-sized rows (8,000 × 8,000 float32, seeded normals) pruned to 500 a row
  (`--prune row`) and to the 500·n largest (`--prune global`, at most 1,000 a row), against
  numpy's argpartition per row block on the same rows.

Times are medians of --repeat runs (after one warm-up for the in-process parts).

    python bench/parts.py            # writes bench/results/parts.md
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

START = """
import resource, time
t = time.perf_counter()
import l3ae.cli
t_imp = time.perf_counter() - t
rss_imp = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy as np
from l3ae.engine import _kernels
t = time.perf_counter()
_kernels.compact_rows(np.zeros(1, np.int32), np.zeros(1, np.float32), np.zeros(2, np.int64),
                      np.zeros(1, np.int64), np.float32(0))
t_nb = time.perf_counter() - t
rss_nb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps([t_imp, rss_imp, t_nb, rss_nb]))
"""


def timed(f, repeat):
    f()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def start_up(repeat):
    runs = [json.loads(subprocess.run([sys.executable, "-c", "import json" + START],
                                      capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)]
    return [float(np.median(c)) for c in zip(*runs)]


def reading(repeat):
    from reference import write_files
    from synth import synthetic

    from l3ae.io import delimited
    from l3ae.io.readers import read_interactions

    folder = tempfile.mkdtemp(prefix="l3ae-bench-parts-")
    X, E = synthetic(8000, seed=0)
    write_files(X, E, folder)
    path = os.path.join(folder, "ratings.csv")
    scan = timed(lambda: read_interactions(path), repeat)
    kept = delimited.read_table

    def refuse(*a, **k):
        raise delimited.NotStreamable("off")

    delimited.read_table = refuse
    try:
        general = timed(lambda: read_interactions(path), repeat)
    finally:
        delimited.read_table = kept
    return X.nnz, scan, general


def selecting(repeat, n=8000, k=500, block=512):
    from l3ae.engine.prune import RowPruner

    B = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)

    def ours(whole):
        pr = RowPruner(n, k, np.float32, whole=whole)
        for r0 in range(0, n, block):
            pr.add(B[r0:r0 + block], r0)
        return pr.result()

    def peer():  # the k largest |B_ij| of each row block, columns sorted, diagonal skipped
        for r0 in range(0, n, block):
            a = np.abs(B[r0:r0 + block])
            a[np.arange(len(a)), r0 + np.arange(len(a))] = -1
            np.sort(np.argpartition(-a, k, axis=1)[:, :k], axis=1)

    return timed(lambda: ours(False), repeat), timed(lambda: ours(True), repeat), \
        timed(peer, repeat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--md", default=os.path.join(HERE, "results", "parts.md"))
    args = ap.parse_args()
    t_imp, rss_imp, t_nb, rss_nb = start_up(args.repeat)
    nnz, scan, general = reading(args.repeat)
    row, whole, peer = selecting(args.repeat)
    md = (f"# The fixed costs of a build\n\n`python bench/parts.py {' '.join(sys.argv[1:])}` "
          f"({os.cpu_count()} cores; medians of {args.repeat})\n\n"
          "| part | l3ae | peer | ratio |\n|---|---|---|---|\n"
          f"| `import l3ae.cli` in a fresh process | {t_imp:.2f} s, {rss_imp:.0f} MB | – | – |\n"
          f"| numba's first kernel call after it | {t_nb:.2f} s, {rss_nb:.0f} MB after | – | – |\n"
          f"| read {nnz:,} rows of ratings CSV | {scan:.2f} s (numba scan) | {general:.2f} s "
          f"(csv module) | {general / scan:.1f}× |\n"
          f"| 500 a row of 8,000 × 8,000 (`--prune row`) | {row:.2f} s | {peer:.2f} s (numpy "
          f"argpartition) | {peer / row:.1f}× |\n"
          f"| 500·n largest, ≤ 1,000 a row (`--prune global`) | {whole:.2f} s | {peer:.2f} s "
          f"(numpy, per row) | {peer / whole:.1f}× |\n")
    print(md)
    with open(args.md, "w") as fh:
        fh.write(md)


if __name__ == "__main__":
    main()
