"""Start-up cost of the commands that do little work: `l3ae --help` and `l3ae info MODEL`.

Each command runs as its own process, alternately with the same command of another revision
of the package (``--against REV``: checked out with ``git worktree`` into a temporary folder
and put first on PYTHONPATH), so the two share the machine's state; wall time and the process's
peak RSS (``ru_maxrss`` of the finished child) are taken per run, and medians and the median of
the pairwise ratios are printed. The model is a small EASE build of the packaged MovieLens-100K
made here, with the other revision (whose model format both read).

    python bench/startup.py --against 8640c51 --runs 9

Writes bench/results/startup.md with the command that made it.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def once(argv, pythonpath):
    """(wall seconds, peak RSS MiB) of one run of ``python -m l3ae argv``."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "l3ae", *argv], env=env,
                         cwd=tempfile.gettempdir(),  # -m puts the cwd first on sys.path
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"l3ae {' '.join(argv)} failed under {pythonpath}")
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the revision to compare with")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "startup.md"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="l3ae-bench-startup-")
    old = os.path.join(work, "old")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", old, args.against],
                   check=True, capture_output=True)
    model = os.path.join(work, "m.h5")
    subprocess.run([sys.executable, "-m", "l3ae", "build", "--dataset", "ml-100k", "--model",
                    "ease", "--out", model], check=True, capture_output=True, cwd=work,
                   env={**os.environ, "PYTHONPATH": old})  # a format both revisions read
    rows = []
    try:
        for argv in (["--help"], ["info", model]):
            for _ in range(2):  # warm the page cache and the bytecode of both
                once(argv, ROOT), once(argv, old)
            new_runs, old_runs = [], []
            for _ in range(args.runs):
                new_runs.append(once(argv, ROOT))
                old_runs.append(once(argv, old))
            n, o = np.array(new_runs), np.array(old_runs)
            rows.append((" ".join(argv).replace(model, "MODEL"), np.median(o[:, 0]),
                         np.median(n[:, 0]), np.median(n[:, 0] / o[:, 0]),
                         np.median(o[:, 1]), np.median(n[:, 1])))
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old],
                       capture_output=True)
    lines = ["# Start-up of the light commands", "",
             f"Command: `python bench/startup.py {' '.join(sys.argv[1:])}` (each run its own "
             f"process, alternating with revision {args.against}; medians of {args.runs} runs "
             "each; the model: EASE on the packaged MovieLens-100K, 1,447 items, dense B).", "",
             f"| command | wall {args.against} | wall now | ratio (median of pairs) | "
             f"peak RSS {args.against} | peak RSS now |", "|---|---|---|---|---|---|"]
    lines += [f"| `l3ae {c}` | {wo:.3f} s | {wn:.3f} s | {r:.2f}× | {mo:.0f} MiB | {mn:.0f} MiB |"
              for c, wo, wn, r, mo, mn in rows]
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
