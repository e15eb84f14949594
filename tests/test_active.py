"""Items no one interacted with are solved out of the n³ problem: the result must equal the
full solve and a dense float64 reference."""

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.engine.models import Config, active_items, fit_weights
from l3ae.engine.solve import solve_weights

from conftest import dense_ease, random_problem


def with_empty_items(n_empty=7, seed=0):
    X, E = random_problem(m=90, n=30, seed=seed)
    rng = np.random.default_rng(seed)
    X = sp.hstack([X, sp.csr_matrix((X.shape[0], n_empty))]).tocsc()
    order = rng.permutation(X.shape[1])  # empty columns spread through the catalog
    return sp.csr_matrix(X[:, order]), order >= 30


@pytest.mark.parametrize("preset", ["ease", "lae", "edlae", "rlae", "rdlae", "l3ae"])
@pytest.mark.parametrize("topk", [0, 5])
def test_reduced_solve_equals_full_solve(preset, topk):
    X, empty = with_empty_items()
    cfg = Config.from_preset(preset, reg_e=0.0, topk=topk, dtype="float64",
                             reg_x=50.0 if preset == "l3ae" else None,
                             prune="row" if topk else None)  # topk each, as the full solve
    assert np.array_equal(active_items(cfg, np.asarray(X.sum(0)).ravel()),
                          np.flatnonzero(~empty))
    got = fit_weights(cfg, X)
    full = solve_weights(X, reg_x=cfg.reg_x, dropout=cfg.dropout, xi=cfg.xi, topk=topk,
                         dtype=np.float64)
    G, Bf = (sp.csr_matrix(M).toarray() if sp.issparse(M) else M for M in (got.B, full.B))
    assert got.B.shape == (X.shape[1],) * 2 and sp.issparse(got.B) == bool(topk)
    np.testing.assert_allclose(G, Bf, atol=1e-10)
    np.testing.assert_allclose(got.diag, full.diag, atol=1e-10)
    assert not G[empty].any() and not G[:, empty].any()


def test_reduced_ease_matches_dense_reference():
    X, empty = with_empty_items(seed=1)
    lam = 40.0
    ref = dense_ease(X, lam)
    got = fit_weights(Config.from_preset("ease", reg_x=lam, topk=0, dtype="float64"), X).B
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_text_models_keep_every_item(problem):
    X, E = problem
    X = sp.hstack([X, sp.csr_matrix((X.shape[0], 3))]).tocsr()
    pop = np.asarray(X.sum(0)).ravel()
    assert active_items(Config.from_preset("l3ae"), pop) is None
    assert active_items(Config.from_preset("collective"), pop) is None


def test_tune_sweep_reduces_and_matches_fit():
    from l3ae import tune

    X, empty = with_empty_items(seed=2)
    configs = [Config.from_preset("ease", reg_x=lam, topk=0, dtype="float64") for lam in (5, 50)]
    seen = []
    tune.sweep(configs, X, lambda B, cfg: seen.append(B) or {"recall@20": 0.0})
    for cfg, B in zip(configs, seen):
        np.testing.assert_allclose(B, fit_weights(cfg, X).B, atol=1e-10)
        assert B.shape == (X.shape[1],) * 2 and not B[empty].any()
