import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.engine.metrics import head_items, ranking_metrics, split_interactions


def test_recall_ndcg_hand_example():
    # user 0: truth {1, 4}, ranked [1, 2, 4] -> hits at ranks 1 and 3
    # user 1: truth {0},    ranked [3, 0, 2] -> hit at rank 2
    # user 2: no truth -> not averaged
    top = np.array([[1, 2, 4], [3, 0, 2], [0, 1, 2]])
    truth = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
    r = ranking_metrics(top, truth, ks=(1, 3))
    assert r["users"] == 2
    assert r["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert r["recall@3"] == pytest.approx((2 / 2 + 1) / 2)
    ndcg0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    ndcg1 = (1 / np.log2(3)) / 1
    assert r["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert r["ndcg@1"] == pytest.approx((1 + 0) / 2)
    # restricted to items {0, 1}: user 0 truth {1} hit at 1, user 1 truth {0} hit at 2
    g = ranking_metrics(top, truth, ks=(1, 3), item_mask=np.array([1, 1, 0, 0, 0], bool))
    assert g["recall@1"] == pytest.approx(0.5) and g["recall@3"] == pytest.approx(1.0)


def test_recall_uses_full_truth_size_and_pads():
    top = np.array([[0, -1]])
    truth = sp.csr_matrix(np.array([[1, 1, 1, 0]]))
    r = ranking_metrics(top, truth, ks=(2,))
    assert r["recall@2"] == pytest.approx(1 / 3)
    assert r["ndcg@2"] == pytest.approx(1 / (1 + 1 / np.log2(3)))


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
