"""Phase 1 and phase 2 against independent dense float64 references and the KKT conditions."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_problem
from scipy.optimize import lsq_linear

from l3ae.engine import semantic_correlation, solve_weights
from l3ae.engine.gram import gram
from l3ae.engine.models import Config, fit_weights, pull_weights
from l3ae.errors import ConfigError


def ref_semantic(E, reg_f):
    """C column by column: min ||f_j − F c||² + λ_F||c||² s.t. c_j = 0, via its KKT system."""
    F = E.T
    n = F.shape[1]
    H = F.T @ F + reg_f * np.eye(n)
    C = np.zeros((n, n))
    for j in range(n):
        K = np.zeros((n + 1, n + 1))
        K[:n, :n], K[n, j], K[j, n] = H, 1, 1
        rhs = np.concatenate([F.T @ F[:, j], [0.0]])
        C[:, j] = np.linalg.solve(K, rhs)[:n]
    return C


def ref_weights(X, lam, reg_e=0.0, w=None, C=None, xi=0.0, constraint="equality"):
    """B column by column by constrained least squares (np.linalg.solve on the KKT system)."""
    X = X.toarray()
    G = X.T @ X
    n = G.shape[0]
    w = np.ones(n) if w is None else w
    C = np.zeros((n, n)) if C is None else C
    A = G + np.diag(lam) + reg_e * np.diag(w)
    B = np.zeros((n, n))
    for j in range(n):
        rhs = G[:, j] + reg_e * w * C[:, j]
        b = np.linalg.solve(A, rhs)
        if constraint == "equality" or b[j] > xi:
            K = np.zeros((n + 1, n + 1))
            K[:n, :n], K[n, j], K[j, n] = A, 1, 1
            b = np.linalg.solve(K, np.concatenate([rhs, [xi]]))[:n]
        B[:, j] = b
    return B


def ref_of(X, E, kw):
    """The dense float64 reference B for keyword arguments of solve_weights (reg_x, dropout,
    reg_e, reg_f, xi)."""
    pop = np.asarray(X.sum(axis=0)).ravel()
    p = kw.get("dropout", 0.0)
    lam = kw["reg_x"] + p / (1 - p) * pop
    reg_e, xi = kw.get("reg_e", 0.0), kw.get("xi", 0.0)
    C = ref_semantic(E, kw["reg_f"]) if reg_e else None
    return ref_weights(X, lam, reg_e, None, C, xi, "equality" if xi == 0 else "inequality")


def kkt(X, B, lam, reg_e, w, C):
    """R = A B − G − λ_E W C: zero off the diagonal; diag(R) = −μ."""
    G = (X.T @ X).toarray()
    A = G + np.diag(lam + reg_e * w)
    return A @ B - G - reg_e * np.diag(w) @ C


def test_gram_matches_sparse_product(problem):
    X, _ = problem
    for dtype in (np.float32, np.float64):
        G = gram(X, dtype=dtype)
        assert G.dtype == dtype
        np.testing.assert_array_equal(G, (X.T @ X).toarray())


def test_gram_empty_and_single():
    assert gram(sp.csr_matrix((3, 0))).shape == (0, 0)
    np.testing.assert_array_equal(gram(sp.csr_matrix(np.ones((3, 1)))), [[3.0]])


@pytest.mark.parametrize("reg_f", [0.3, 5.0])
def test_woodbury_semantic_equals_direct(problem, reg_f):
    _, E = problem
    C = semantic_correlation(E, reg_f)
    np.testing.assert_allclose(C, ref_semantic(E, reg_f), atol=1e-10)
    # the direct n×n form of DESIGN §2
    Q = np.linalg.inv(E @ E.T + reg_f * np.eye(len(E)))
    Cd = -Q / np.diag(Q)[None, :]
    np.fill_diagonal(Cd, 0)
    np.testing.assert_allclose(C, Cd, atol=1e-10)
    assert semantic_correlation(E.astype(np.float32), reg_f).dtype == np.float32


CASES = [  # (name, kwargs of solve_weights)
    ("ease", dict(reg_x=5.0)),
    ("lae", dict(reg_x=5.0, xi=1.0)),
    ("edlae", dict(reg_x=2.0, dropout=0.3)),
    ("dlae", dict(reg_x=2.0, dropout=0.3, xi=1.0)),
    ("rlae", dict(reg_x=5.0, xi=0.05)),
    ("rdlae", dict(reg_x=2.0, dropout=0.25, xi=0.05)),
    ("l3ae", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5)),
    ("l3ae_xi", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5, xi=0.02)),
    ("l3ae_dropout", dict(reg_x=1.0, reg_e=3.0, reg_f=0.5, dropout=0.2)),
    ("l3ae_adaptive", dict(reg_x=0.5, reg_e=3.0, reg_f=0.5, w="adaptive")),
    ("l3ae_eq_xi", dict(reg_x=2.0, reg_e=3.0, reg_f=0.5, xi=0.02, constraint="equality")),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_weights_match_dense_reference_and_kkt(problem, name, kw):
    X, E = problem
    kw = dict(kw)
    G = (X.T @ X).toarray()
    pop = np.diag(G)
    w = pull_weights(pop, "adaptive", 0.5) if kw.pop("w", None) == "adaptive" else np.ones(len(pop))
    p = kw.get("dropout", 0.0)
    lam = kw["reg_x"] + p / (1 - p) * pop
    reg_e, xi = kw.get("reg_e", 0.0), kw.get("xi", 0.0)
    constraint = kw.get("constraint") or ("equality" if xi == 0 else "inequality")
    C = ref_semantic(E, kw["reg_f"]) if reg_e else np.zeros((len(pop),) * 2)
    ref = ref_weights(X, lam, reg_e, w, C, xi, constraint)
    got = solve_weights(X, E=E, w=w, topk=0, dtype=np.float64, **kw)
    np.testing.assert_allclose(got.B, ref, atol=1e-9, rtol=1e-8)
    np.testing.assert_allclose(got.diag, np.diag(ref), atol=1e-9)
    # optimality: stationarity off the diagonal, sign and complementarity on it
    R = kkt(X, got.B, lam, reg_e, w, C)
    off = R - np.diag(np.diag(R))
    assert np.abs(off).max() < 1e-8
    mu = -np.diag(R)
    d = np.diag(got.B)
    if constraint == "equality":
        np.testing.assert_allclose(d, xi, atol=1e-10)
    else:
        assert np.all(d <= xi + 1e-10)
        assert np.all(mu >= -1e-8)
        assert np.abs(mu * (d - xi)).max() < 1e-8


def ref_bounded_lsq(X, lam, reg_e, w, C, xi, constraint):
    """B column by column as a stacked least-squares problem, another route than the KKT system
    above: min ||[X; Dg(Λ)^½; (λ_E W)^½] b − [x_j; 0; (λ_E W)^½ c_j]||², with b_j ≤ ξ by scipy's
    bounded solver (inequality) or b_j = ξ eliminated (equality). Needs Λ > 0."""
    X = X.toarray()
    n = X.shape[1]
    A = np.vstack([X, np.diag(np.sqrt(lam)), np.diag(np.sqrt(reg_e * w))])
    B = np.zeros((n, n))
    for j in range(n):
        y = np.concatenate([X[:, j], np.zeros(n), np.sqrt(reg_e * w) * C[:, j]])
        if constraint == "inequality":
            ub = np.full(n, np.inf)
            ub[j] = xi
            B[:, j] = lsq_linear(A, y, bounds=(-np.inf, ub), method="bvls", tol=1e-14).x
        else:
            rest = np.arange(n) != j
            B[rest, j] = np.linalg.lstsq(A[:, rest], y - xi * A[:, j], rcond=None)[0]
            B[j, j] = xi
    return B


def test_inequality_differs_from_equality_with_semantic_pull():
    """DESIGN: with λ_E > 0, "≤ 0" and "= 0" differ where (PWC)_jj is negative enough.

    Items 0 and 1 have the same interactions, and item 0's embedding is item 1's twice over
    (d > n: nearly orthogonal to the rest), so C_10 ≈ 1.6 (2, shrunk by λ_F). The pull draws
    b_10 above 1, which alone over-predicts x_0 = x_1, and the fit answers with b_00 < 0: the
    bound b_00 ≤ 0 is slack there (the inequality keeps b_00 < 0, the equality forces 0) and
    binding at every other item (the same columns).
    """
    rng = np.random.default_rng(1)
    X, _ = random_problem(m=120, n=20, seed=1)
    X = X.tolil()
    X[:, 0] = X[:, 1]
    X = X.tocsr()
    E = rng.standard_normal((20, 32))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    E[0] = 2 * E[1]
    n, reg_x, reg_e, reg_f = 20, 1.0, 20.0, 0.1
    lam, w, C = np.full(n, reg_x), np.ones(n), ref_semantic(E, reg_f)
    kw = dict(reg_x=reg_x, reg_e=reg_e, reg_f=reg_f, topk=0, dtype=np.float64, E=E)
    eq = solve_weights(X, constraint="equality", **kw).B
    ineq = solve_weights(X, constraint="inequality", **kw).B
    np.testing.assert_allclose(eq, ref_bounded_lsq(X, lam, reg_e, w, C, 0.0, "equality"),
                               atol=1e-9)
    np.testing.assert_allclose(ineq, ref_bounded_lsq(X, lam, reg_e, w, C, 0.0, "inequality"),
                               atol=1e-9)
    free = np.diag(ref_bounded_lsq(X, lam, reg_e, w, C, np.inf, "inequality"))  # no bound
    # the closed form's reading of it: b_jj = 1 − a_j P_jj + λ_E (PWC)_jj, P by dense solve
    P = np.linalg.solve((X.T @ X).toarray() + np.diag(lam + reg_e * w), np.eye(n))
    np.testing.assert_allclose(free, 1 - (lam + reg_e * w) * np.diag(P)
                               + reg_e * np.diag(P @ np.diag(w) @ C), atol=1e-9)
    assert free[0] < -0.1 and np.all(free[1:] > 0.1)  # slack at item 0 only
    assert ineq[0, 0] == pytest.approx(free[0]) and eq[0, 0] == pytest.approx(0, abs=1e-12)
    assert np.abs(eq[:, 0] - ineq[:, 0]).max() > 0.1
    np.testing.assert_allclose(ineq[:, 1:], eq[:, 1:], atol=1e-10)  # binding: the same columns


@pytest.mark.parametrize("model", ["ease", "edlae", "rdlae", "l3ae", "text", "additive",
                                   "collective"])
def test_float32_agrees_with_float64(problem, model):
    X, E = problem
    over = dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5) if model == "l3ae" else {}
    if model in ("ease", "edlae", "rdlae", "additive", "collective"):
        over = dict(reg_x=5.0)
    c64 = Config.from_preset(model, topk=0, dtype="float64", **over)
    b64 = fit_weights(c64, X, E).B
    b32 = fit_weights(c64.replace(dtype="float32"), X, E.astype(np.float32)).B
    assert b32.dtype == np.float32 and b64.dtype == np.float64
    scale = np.abs(b64).max()
    assert np.abs(b32 - b64).max() <= 5e-4 * max(scale, 1.0)


def test_fusion_baselines_match_reference(problem):
    X, E = problem
    G = (X.T @ X).toarray()
    n = G.shape[0]
    alpha = 0.7
    # collective: EASE on [X; αFᵀ] (Gram G + α² E Eᵀ)
    Gc = G + alpha ** 2 * E @ E.T
    P = np.linalg.inv(Gc + 5.0 * np.eye(n))
    ref_c = np.eye(n) - P / np.diag(P)
    got = fit_weights(Config.from_preset("collective", reg_x=5.0, alpha=alpha, topk=0,
                                         dtype="float64"), X, E).B
    np.testing.assert_allclose(got, ref_c, atol=1e-10)
    # additive: (1−α)·EASE + α·C
    P = np.linalg.inv(G + 5.0 * np.eye(n))
    ease = np.eye(n) - P / np.diag(P)
    ref_a = (1 - alpha) * ease + alpha * ref_semantic(E, 0.5)
    got = fit_weights(Config.from_preset("additive", reg_x=5.0, reg_f=0.5, alpha=alpha, topk=0,
                                         dtype="float64"), X, E).B
    np.testing.assert_allclose(got, ref_a, atol=1e-9)
    # text-only: B = C
    got = fit_weights(Config.from_preset("text", reg_f=0.5, topk=0, dtype="float64"), X, E).B
    np.testing.assert_allclose(got, ref_semantic(E, 0.5), atol=1e-10)


def test_pruned_equals_dense_topk(problem):
    X, E = problem
    kw = dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5, E=E, dtype=np.float64)
    dense = solve_weights(X, topk=0, **kw).B
    pruned = solve_weights(X, topk=7, block=9, **kw).B
    assert pruned.indptr.dtype == np.int64
    for i in range(dense.shape[0]):
        row = np.abs(dense[i])
        row[i] = -np.inf
        want = set(np.argsort(-row, kind="stable")[:7])
        got = pruned.indices[pruned.indptr[i]:pruned.indptr[i + 1]]
        assert set(got) == want
        np.testing.assert_allclose(pruned[i, list(got)].toarray().ravel(), dense[i, list(got)])


def test_nonpositive_total_ridge_is_a_config_error():
    X, E = random_problem(seed=2)
    with pytest.raises(ConfigError, match="total ridge"):
        solve_weights(X, reg_x=-5.0, reg_e=2.0, reg_f=1.0, E=E, topk=0)
    with pytest.raises(ConfigError, match="needs item embeddings"):
        solve_weights(X, reg_x=1.0, reg_e=2.0)


def test_zero_ridge_on_an_unseen_item_is_refused():
    # G + Dg(a) with a > 0 is always SPD (G is PSD), so a <= 0 is refused before factorizing
    X = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ConfigError, match="item 'x'.*2 items"):
        solve_weights(X, reg_x=0.0, item_ids=["x", "y"])


def test_one_factorization_serves_a_sweep_at_fixed_total_ridge(problem):
    """P depends only on a = λ_X + λ_E: weights for several (λ_X, λ_E, ξ) from one P."""
    from l3ae.engine.solve import factorize, weights_from_inverse

    X, E = problem
    inv = factorize(X, reg_x=1.0, reg_e=3.0, dtype=np.float64)
    P0 = inv.P.copy()
    for reg_e, xi in ((3.0, 0.0), (1.0, 0.0), (2.0, 0.05)):
        got = weights_from_inverse(inv, reg_e=reg_e, xi=xi, E=E, reg_f=0.5, topk=0)
        want = solve_weights(X, reg_x=4.0 - reg_e, reg_e=reg_e, xi=xi, E=E, reg_f=0.5, topk=0,
                             dtype=np.float64)
        np.testing.assert_allclose(got.B, want.B, atol=1e-10)
    np.testing.assert_array_equal(inv.P, P0)  # not overwritten unless asked
