"""BLAS/LAPACK kernels against NumPy float64: each tile task, pure unless told to overwrite,
and the in-memory potrf + potri."""

import numpy as np
import pytest

from l3ae.engine import blas
from l3ae.errors import NotPositiveDefiniteError


def spd(n, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    return (M @ M.T + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 5e-4)])
def test_tile_tasks_match_numpy_and_keep_their_inputs(dtype, tol):
    rng = np.random.default_rng(1)
    A = spd(12, dtype=dtype)
    A0 = A.copy()
    L = blas.potrf(A)
    np.testing.assert_array_equal(A, A0)  # pure unless overwrite
    assert L.dtype == dtype and np.all(np.triu(L, 1) == 0)
    np.testing.assert_allclose(L, np.linalg.cholesky(A0.astype(np.float64)), rtol=tol, atol=tol)
    B = rng.standard_normal((30, 12)).astype(dtype)
    B0 = B.copy()
    np.testing.assert_allclose(blas.trsm_lt(L, B) @ L.T, B0, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.trsm_right(L, B, alpha=-2.0) @ L, -2 * B0, rtol=tol,
                               atol=tol * 10)
    np.testing.assert_array_equal(B, B0)
    C = rng.standard_normal((30, 7)).astype(dtype)
    a, b = rng.standard_normal((30, 5)).astype(dtype), rng.standard_normal((7, 5)).astype(dtype)
    np.testing.assert_allclose(blas.gemm(C, a, b, tb=True), C - a @ b.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.gemm(C[:5], a, C, 0.5, 2.0, ta=True),
                               2 * C[:5] + 0.5 * a.T @ C, rtol=tol, atol=tol)
    out = blas.gemm(C, a, b, tb=True, overwrite=True)
    assert out is C
    S = blas.syrk(A0, B[:12])
    np.testing.assert_allclose(np.tril(S), np.tril(A0 - B0[:12] @ B0[:12].T), rtol=tol, atol=tol)
    np.testing.assert_array_equal(np.triu(S, 1), np.triu(A0, 1))  # upper triangle untouched
    # P_jj = L⁻ᵀ (I + Z) L⁻¹
    Z = (lambda m: m @ m.T)(rng.standard_normal((12, 12))).astype(dtype)
    Li = np.linalg.inv(L.astype(np.float64))
    np.testing.assert_allclose(blas.diag_inverse(L, Z), Li.T @ (np.eye(12) + Z) @ Li,
                               rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(blas.potri(L), Li.T @ Li, rtol=tol * 10, atol=tol)


def test_symm_strip_sums_to_the_symmetric_product():
    T, nt = 4, 5
    P = spd(T * nt, seed=2)
    R = np.random.default_rng(3).standard_normal((T * nt, 3))
    for i0 in range(nt):
        out = np.zeros((T * (nt - i0), 3))
        for k in range(i0, nt):
            strip = np.ascontiguousarray(P[k * T:, k * T:(k + 1) * T])
            blas.symm_strip(out, strip, R[i0 * T:], k, i0, overwrite=True)
        np.testing.assert_allclose(out, P[i0 * T:, i0 * T:] @ R[i0 * T:], atol=1e-10)


def test_potrf_names_the_failing_item():
    A = np.diag([1.0, 2.0, -1.0])
    with pytest.raises(NotPositiveDefiniteError, match="item 'z' \\(#12\\).*--reg-x"):
        blas.potrf(A, row0=10, item_ids=[str(i) for i in range(12)] + ["z"])


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 5e-4)])
def test_cholesky_inverse_in_place_and_not_spd(dtype, tol):
    A = spd(30, seed=3)
    buf = A.astype(dtype)
    out = blas.cholesky_inverse(buf)
    assert out is buf and out.dtype == dtype
    np.testing.assert_allclose(np.tril(buf), np.tril(np.linalg.inv(A)), atol=tol * np.abs(
        np.linalg.inv(A)).max())
    assert blas.cholesky_inverse(np.empty((0, 0), dtype)).shape == (0, 0)
    with pytest.raises(NotPositiveDefiniteError, match="item 'b'"):
        blas.cholesky_inverse(np.array([[1.0, 0], [0, -1.0]]), item_ids=["a", "b"])
