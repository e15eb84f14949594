"""Popularity compensation: B Dg((1 + c)^-β), against a dense float64 EASE reference."""

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae import tune
from l3ae.engine.models import Config, fit_weights
from l3ae.model import Recommender

from conftest import dense_ease, random_problem


def reference(X, lam, beta):
    return dense_ease(X, lam) * (1.0 + X.toarray().sum(0))[None, :] ** -beta


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("topk", [0, 8])
def test_debias_scales_columns(beta, topk):
    X, _ = random_problem(seed=4)
    prune = "row" if topk else None  # topk per row, so that the count below holds
    got = fit_weights(Config.from_preset("ease", reg_x=30.0, debias=beta, topk=topk,
                                         prune=prune, dtype="float64"), X).B
    ref = reference(X, 30.0, beta)
    if topk:
        got = got.toarray()
        kept = got != 0
        assert np.all(kept.sum(1) <= topk)
        np.testing.assert_allclose(got[kept], ref[kept], rtol=1e-9)
        # pruning looks at B before compensation: the kept set is that of β = 0
        plain = fit_weights(Config.from_preset("ease", reg_x=30.0, topk=topk, prune=prune,
                                               dtype="float64"), X).B.toarray()
        assert np.array_equal(kept, plain != 0)
    else:
        np.testing.assert_allclose(got, ref, atol=1e-10)


def test_debias_lifts_tail_items_in_lists():
    X, _ = random_problem(m=200, n=40, seed=5)
    pop = np.asarray(X.sum(0)).ravel()
    tail = pop <= np.quantile(pop, 0.5)
    share = []
    for beta in (0.0, 1.0):
        rec = Recommender("ease", reg_x=30.0, debias=beta, topk=0).fit(X)
        top, _ = rec.recommend(X, N=5)
        share.append(tail[top[top >= 0]].mean())
    assert share[1] > share[0]


def test_sweep_shares_b_across_debias_and_matches_fit():
    X, _ = random_problem(seed=6)
    X = sp.csr_matrix(X)
    configs = [Config.from_preset("ease", reg_x=30.0, debias=b, topk=0, dtype="float64")
               for b in (0.0, 0.5)]
    seen = []
    res = tune.sweep(configs, X, lambda B, cfg: seen.append(B) or {"recall@20": 0.0})
    assert [r["shared"] for r in res] == [False, True]
    for cfg, B in zip(configs, seen):
        np.testing.assert_allclose(B, fit_weights(cfg, X).B, atol=1e-12)


@pytest.mark.parametrize("topk", [0, 6])
def test_fold_in_compensates_like_a_build(topk):
    """A build compensates after pruning; a fold-in into a compensated model must give the
    compensated fold-in of the plain model (whose fold-in is tested against a rebuild)."""
    X, E = random_problem(m=100, n=30, seed=7)
    X = sp.csr_matrix(X)
    kw = dict(reg_x=5.0, reg_e=20.0, reg_f=0.5, topk=topk, dtype="float64")
    E_new = np.random.default_rng(0).standard_normal((3, E.shape[1]))
    plain = Recommender("l3ae", **kw).fit(X, E, foldable=True).add_items(["a", "b", "c"], E_new)
    comp = Recommender("l3ae", debias=0.5, **kw).fit(X, E, foldable=True)
    comp.add_items(["a", "b", "c"], E_new)
    dense = (lambda B: B.toarray() if sp.issparse(B) else B)
    want = dense(plain.B_) * (1.0 + plain.popularity_)[None, :] ** -0.5
    np.testing.assert_allclose(dense(comp.B_), want, atol=1e-12)
    assert comp.popularity_[-3:].tolist() == [0, 0, 0]
