"""The random protocol's data: per-user 8:1:1 split and the head items."""

import numpy as np

from l3ae.evaluation import head_items, split_interactions


def test_split_is_seeded_disjoint_and_8_1_1():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = np.concatenate([rng.choice(100, 20, replace=False) for _ in range(50)])
    parts = split_interactions(users, items, (50, 100), seed=3)
    again = split_interactions(users, items, (50, 100), seed=3)
    other = split_interactions(users, items, (50, 100), seed=4)
    assert all((a != b).nnz == 0 for a, b in zip(parts, again))
    assert (parts[0] != other[0]).nnz > 0
    tr, va, te = parts
    assert tr.nnz + va.nnz + te.nnz == 1000
    assert tr.multiply(va).nnz == tr.multiply(te).nnz == va.multiply(te).nnz == 0
    np.testing.assert_array_equal(np.diff(tr.indptr), 16)
    np.testing.assert_array_equal(np.diff(va.indptr), 2)


def test_head_items_top_fifth():
    head = head_items(np.array([5, 1, 9, 0, 3, 3, 7, 2, 8, 4]))
    assert head.sum() == 2 and head[2] and head[8]
