"""Sizes and the memory plan: what --max-memory reads, where P is computed, the tile size."""

import pytest

from l3ae.engine import memory
from l3ae.errors import ConfigError


def test_parse_and_format_size():
    assert memory.parse_size("8G") == 8 * 2 ** 30
    assert memory.parse_size("500m") == 500 * 2 ** 20
    assert memory.parse_size("1.5GiB") == 3 * 2 ** 29
    assert memory.parse_size("123456") == 123456
    for bad in ("", "abc", "0", "-1G", "8X", "G8", "1.2.3G"):
        with pytest.raises(ConfigError, match="memory size"):
            memory.parse_size(bad)
    assert memory.format_size(3 * 2 ** 29) == "1.5 GiB"
    assert memory.format_size(500 * 2 ** 20) == "500.0 MiB"
    assert memory.format_size(1023) == "1023 B"


def test_plan_in_memory_when_it_fits_else_tiles_that_fit():
    G = 2 ** 30
    kw = dict(itemsize=4, nnz=5_000_000, d=384, topk=500, base=300 << 20)
    assert memory.plan(15_000, max_memory=None, **kw)[0] == "memory"
    where, _, need = memory.plan(15_000, max_memory=2 * G, **kw)
    assert where == "memory" and need < 2 * G
    where, T, need = memory.plan(40_000, max_memory=3 * G, **kw)
    assert where == "tiles" and need <= 3 * G and T % 32 == 0 and 1000 < T < 10_000
    where, T, need = memory.plan(100_000, max_memory=12 * G, **kw)
    assert where == "tiles" and need <= 12 * G
    with pytest.raises(ConfigError, match="too small for 100000 items"):
        memory.plan(100_000, max_memory=1 * G, **kw)
    with pytest.raises(ConfigError, match="--topk 0"):
        memory.plan(40_000, max_memory=3 * G, **dict(kw, topk=0))


def test_plan_never_hands_lapack_more_than_its_safe_size():
    where, T, _ = memory.plan(memory.LAPACK_MAX_N, itemsize=4, nnz=10, base=0)
    assert where == "memory"
    where, T, _ = memory.plan(40000, itemsize=4, nnz=10, base=0)  # no budget: still tiles
    assert where == "tiles" and T <= memory.LAPACK_MAX_N
    where, T, _ = memory.plan(100000, itemsize=4, nnz=10, base=0, max_memory=10 ** 12)
    assert where == "tiles" and T <= memory.LAPACK_MAX_N
    with pytest.raises(ConfigError, match="dense B"):
        memory.plan(40000, itemsize=4, nnz=10, base=0, topk=0)


def test_plan_counts_phase_1s_d_by_d_blocks():
    kw = dict(itemsize=4, nnz=10_000, topk=100, base=0)
    narrow = memory.plan(5_000, d=0, **kw)[2]
    wide = memory.plan(5_000, d=4096, **kw)[2]
    # 6 n×d blocks of the solve's dtype, and EᵀE plus its factor in float64
    assert wide - narrow == 6 * 5_000 * 4096 * 4 + 2 * 4096 * 4096 * 8


def test_the_global_selection_plans_for_its_held_candidates():
    """It holds 2·topk entries a row (int32 column and a value) until every row is made."""
    kw = dict(itemsize=4, nnz=10_000, d=0, topk=500, base=0)
    _, _, row = memory.plan(8000, prune="row", **kw)
    _, _, whole = memory.plan(8000, prune="global", **kw)
    assert whole - row == 8000 * 500 * (4 + 4)
    _, _, dense = memory.plan(8000, prune="global", **dict(kw, topk=0))
    _, _, dense_row = memory.plan(8000, prune="row", **dict(kw, topk=0))
    assert dense == dense_row  # nothing is held for a dense B
