"""Recall@K and NDCG@K against hand-computed examples."""

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.engine.metrics import ranking_metrics


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
