"""One contract every preset passes (after implicit's and LensKit's model test suites)."""

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.engine import topn
from l3ae.engine.models import PRESETS
from l3ae.model import Recommender

OVERRIDES = {"l3ae": dict(reg_x=-0.5, reg_e=2.0, reg_f=0.5)}


def checkerboard(blocks=3, size=6, users_per_block=8, seed=0):
    """Users of block b consumed every item of block b but one (the withheld item, per user)."""
    rng = np.random.default_rng(seed)
    n = blocks * size
    rows, withheld = [], []
    for b in range(blocks):
        for u in range(users_per_block):
            items = np.arange(b * size, (b + 1) * size)
            out = items[u % size]
            rows.append(np.setdiff1d(items, [out]))
            withheld.append(out)
    X = sp.lil_matrix((len(rows), n))
    for u, items in enumerate(rows):
        X[u, items] = 1
    E = np.zeros((n, blocks + 2))
    E[np.arange(n), np.arange(n) // size] = 1
    E[:, blocks:] = 0.1 * rng.standard_normal((n, 2))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return X.tocsr(), E, np.array(withheld)


@pytest.mark.parametrize("model", list(PRESETS))
def test_contract(model, tmp_path):
    X, E, withheld = checkerboard()
    kw = dict(OVERRIDES.get(model, {}))
    seqs = (X.indptr.astype(np.int64), X.indices.astype(np.int64))  # slist's: items in order
    rec = Recommender(model, topk=8, dtype="float32", **kw).fit(X, E.astype(np.float32),
                                                                 sequences=seqs)
    top, scores = rec.recommend(X, N=3)
    # the withheld item of the user's own block comes first
    np.testing.assert_array_equal(top[:, 0], withheld)
    # seen items are never returned
    for u in range(X.shape[0]):
        assert not set(top[u]) & set(X[u].indices)
    # batch equals per-user
    for u in (0, 9, 20):
        t1, s1 = rec.recommend(X[u], N=3)
        np.testing.assert_array_equal(t1[0], top[u])
        np.testing.assert_allclose(s1[0], scores[u], rtol=1e-6)
    # float32 kept; scores sorted
    assert rec.B_.dtype == np.float32 and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0)
    # save -> load round-trips exactly
    rec.save(tmp_path / "m.h5")
    back = Recommender.load(tmp_path / "m.h5")
    assert (back.B_ != rec.B_).nnz == 0 and back.B_.dtype == np.float32
    assert back.config_ == rec.config_ and back.item_ids_ == rec.item_ids_
    np.testing.assert_array_equal(back.recommend(X, N=3)[0], top)


def test_dense_and_pruned_agree_on_top1():
    X, E, withheld = checkerboard()
    dense = Recommender("ease", reg_x=1.0, topk=0).fit(X)
    assert isinstance(dense.B_, np.ndarray)
    np.testing.assert_array_equal(dense.recommend(X, N=1)[0][:, 0], withheld)


def test_topn_matches_numpy_reference():
    rng = np.random.default_rng(5)
    X = sp.csr_matrix((rng.random((50, 30)) < 0.2).astype(np.float32))
    B = rng.standard_normal((30, 30)).astype(np.float32)
    allowed = rng.random(30) < 0.8
    for Bm in (B, sp.csr_matrix(B)):
        top, sc = topn(X, Bm, N=5, allowed=allowed)
        S = X.toarray() @ B
        S[X.toarray() > 0] = -np.inf
        S[:, ~allowed] = -np.inf
        ref = np.argsort(-S, axis=1, kind="stable")[:, :5]
        np.testing.assert_allclose(sc, np.take_along_axis(S, ref, 1), rtol=1e-5)
        np.testing.assert_array_equal(top, ref)
