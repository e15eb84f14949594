"""Shared test data. Tests marked ``slow`` (subprocesses, SIGKILL, encoder builds) run by
default, as in CI; ``pytest -m "not slow"`` leaves them out while iterating."""

import numpy as np
import pytest
import scipy.sparse as sp


def random_problem(m=120, n=40, d=8, density=0.15, seed=0):
    """Binary X (m, n) CSR with every item seen at least once, and clustered E (n, d)."""
    rng = np.random.default_rng(seed)
    dense = rng.random((m, n)) < density
    dense[rng.integers(0, m, n), np.arange(n)] = True
    X = sp.csr_matrix(dense.astype(np.float64))
    E = rng.standard_normal((n, d)) + 2 * rng.standard_normal((4, d))[rng.integers(0, 4, n)]
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return X, E


def dense_ease(X, lam):
    """EASE's B (n, n) float64 by np.linalg.solve: I − P Dg(1/diag P), P = (XᵀX + λI)⁻¹."""
    Xd = X.toarray() if sp.issparse(X) else np.asarray(X, np.float64)
    n = Xd.shape[1]
    P = np.linalg.solve(Xd.T @ Xd + lam * np.eye(n), np.eye(n))
    return np.eye(n) - P / np.diag(P)


def dense_l3ae(X, E, reg_x, reg_e, reg_f):
    """L3AE's B (diag(B) = 0) in dense float64: C from the direct n×n form of phase 1
    (Q = (EEᵀ + λ_F I)⁻¹, C = −Q Dg(1/diag Q), zero diagonal), then
    B = P(G + λ_E C) − P Dg(μ) with P = (G + (λ_X + λ_E) I)⁻¹ and μ making diag(B) = 0."""
    Xd = X.toarray()
    n = Xd.shape[1]
    E = np.asarray(E, np.float64)
    Q = np.linalg.inv(E @ E.T + reg_f * np.eye(n))
    C = -Q / np.diag(Q)[None, :]
    np.fill_diagonal(C, 0)
    G = Xd.T @ Xd
    P = np.linalg.inv(G + (reg_x + reg_e) * np.eye(n))
    B0 = P @ (G + reg_e * C)
    return B0 - P * (np.diag(B0) / np.diag(P))[None, :]


def write_sequences(path, seqs, user="", item=""):
    """A sequence file: line u is ``{user}u {item}i …`` for seqs[u] (a list of items)."""
    path.write_text("".join(f"{user}{u} " + " ".join(f"{item}{i}" for i in s) + "\n"
                            for u, s in enumerate(seqs)))
    return path


def write_ratings(path, users, items, per_user, seed=0):
    """A user_id,item_id CSV: each of ``users`` users has ``per_user`` distinct random items."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id"] + [f"u{u},i{i}" for u in range(users)
                                  for i in rng.choice(items, per_user, replace=False)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def problem():
    return random_problem()
