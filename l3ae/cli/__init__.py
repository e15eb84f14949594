"""The ``l3ae`` command: each subcommand parses, calls one library function, reports.

Each command imports :mod:`l3ae.api` when it runs, not at the top: ``l3ae --help`` and the
parsing of flags load click and the presets' table, not numba's kernels, h5py or the solvers.
"""

import os

# OpenBLAS's idle worker threads spin for a while after each call; in a build the numba top-k
# selection runs right after each GEMM and shares the cores with them (1.8× slower, measured
# in bench/results/reference.md). A short timeout (2^12 cycles) lets them sleep: B's weights
# 1.7 → 1.1 s at n = 8000, potrf+potri ~2% slower. Read once, when OpenBLAS loads: the command
# sets it before numpy is imported; a value in the environment wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")

from l3ae.cli import (add_items, build, embed, evaluate, info, recommend,  # noqa: E402,F401
                      tune)  # (register)
from l3ae.cli._app import cli  # noqa: E402


def main():
    cli(prog_name="l3ae")
