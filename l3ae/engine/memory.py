"""Sizes and the memory plan: where P = (G + Dg(a))⁻¹ is computed (DESIGN §3).

In memory when P's one n×n buffer fits the budget and n ≤ LAPACK_MAX_N; otherwise out of core
on T×T tiles (:mod:`l3ae.engine.tiled`), T the largest that keeps STRIPS strips of N×T
(N = n rounded up to whole tiles) within the budget. Sizes are bytes (int); "8G", "500M",
"1.5GiB" are read with :func:`parse_size` (K/M/G/T are powers of 1024).
"""

import math
import os
import re

from l3ae.errors import ConfigError

_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
MIN_TILE = 128
STRIPS = 4  # strips held at once by the tiled solve (see l3ae.engine.tiled, "Memory")
# Largest n of one multi-threaded LAPACK call on an n×n matrix. scipy's bundled OpenBLAS
# (0.3.30) gives each thread a fixed 32 MiB buffer; a 2-thread ssyrk with a 448-column panel,
# which spotrf issues, copies ~0.72·n·448 floats into it and segfaults from n ≈ 25.8k
# (bench/openblas_limit.py: ssyrk ran at 25,700 and crashed at 26,000; spotrf ran at 25,000 and
# crashed at 27,000; one thread, or a 128-column panel up to 40,000, ran). 20,000 keeps a 22%
# margin: above it even an in-memory build runs the tiled solve, whose tiles are at most this.
LAPACK_MAX_N = 20000


def parse_size(text):
    """Bytes from "8G", "500M", "1.5g", "3GiB", "123456" (K/M/G/T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.I)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"cannot read the memory size {text!r}: use e.g. 8G, 500M or 1.5G")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(nbytes):
    """"1.5 GiB", "500.0 MiB", "12 B": the largest unit that is at most ``nbytes``."""
    for unit in ("T", "G", "M", "K"):
        if nbytes >= _UNITS[unit]:
            return f"{nbytes / _UNITS[unit]:.1f} {unit}iB"
    return f"{nbytes} B"


def current_rss():
    """Resident set size of this process now, in bytes (Linux; else the peak so far)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _page_size()
    except (OSError, IndexError, ValueError):
        import resource  # POSIX only: imported where the Linux path is unavailable

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _page_size():
    return os.sysconf("SC_PAGE_SIZE")


def _pad(n, T):
    """N: n rounded up to whole tiles of T."""
    return -(-n // T) * T


def plan(n, *, itemsize, nnz, d=0, topk=500, prune="row", max_memory=None, base=None,
         tile=None):
    """Where P is computed: ("memory", None, peak) or ("tiles", T, peak), peak in bytes.

    n items, itemsize of the solve's dtype (4 or 8), nnz of X, d embedding columns, topk kept
    weights per row (0: a dense (n, n) B; ``prune`` "global" holds 2·topk a row until the end),
    max_memory the budget in bytes (None: unlimited).
    The estimate: the process now (``base``, default :func:`current_rss`) + the n×n buffer or
    STRIPS strips of N×T + X as int64 CSR and CSC (the Gram kernels) + the pruner's held entries
    (int32 and a value each) beside the pruned B (n·k entries, int64 and a value) + a few n×d
    blocks + phase 1's two d×d float64 + slack. ``tile`` forces the tiled path with that tile
    size (tests, benchmarks).
    """
    base = current_rss() if base is None else base
    k = min(topk, max(n - 1, 0)) if topk else n
    held = min((2 if prune == "global" else 1) * k, max(n - 1, 0)) if topk else 0
    fixed = (base + 16 * nnz + 16 * n + n * held * (4 + itemsize) + n * k * (8 + itemsize)
             + 6 * n * d * itemsize
             + 2 * d * d * 8 + (64 << 20))  # 2·d² float64: phase 1's EᵀE and its factor
    in_memory = fixed + n * n * itemsize + (16 << 20)
    if tile is not None:
        if tile < 1:
            raise ConfigError(f"tile must be >= 1, got {tile}")
        tile = min(tile, max(n, 1))
        return "tiles", tile, fixed + STRIPS * _pad(n, tile) * tile * itemsize
    if max_memory is None or in_memory <= max_memory:
        if n <= LAPACK_MAX_N:
            return "memory", None, in_memory
        # one LAPACK call on the whole n×n buffer is unsafe here (see LAPACK_MAX_N): the same
        # solve on tiles, within what the in-memory path would have used (and 80% of the RAM)
        if not topk:
            raise ConfigError(f"a dense B (--topk 0) is limited to {LAPACK_MAX_N} items (one "
                              f"LAPACK call on the n×n buffer); keep the top k weights")
        ram = _page_size() * os.sysconf("SC_PHYS_PAGES")
        max_memory = min(in_memory, int(0.8 * ram) if max_memory is None else max_memory)
    if not topk:
        raise ConfigError(f"a dense B (--topk 0, or auto under 4,000 items) needs an n×n "
                          f"buffer ({format_size(in_memory)})"
                          f" > --max-memory {format_size(max_memory)}: keep the top k weights")
    room = (max_memory - fixed) / (STRIPS * itemsize)  # T · N ≤ room, N ≈ n + T
    t_max = min(int((-n + math.sqrt(n * n + 4 * max(room, 0))) / 2), LAPACK_MAX_N)
    if t_max < MIN_TILE:
        need = fixed + STRIPS * (n + MIN_TILE) * MIN_TILE * itemsize
        raise ConfigError(f"--max-memory {format_size(max_memory)} is too small for {n} items: "
                          f"the tiled solve needs about {format_size(need)} (the process "
                          f"already holds {format_size(base)})")
    nt = -(-n // t_max)
    while True:  # balance the tiles (less padding), rounded up to a multiple of 32
        T = min(t_max, -(-(-(-n // nt)) // 32) * 32)
        if T * nt >= n:
            break
        nt += 1
    return "tiles", T, fixed + STRIPS * _pad(n, T) * T * itemsize
