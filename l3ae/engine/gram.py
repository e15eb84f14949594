"""Gram matrix G = XᵀX of an interaction matrix, dense, from a numba kernel.

X : (m, n) scipy CSR, binary (or weighted: SLIST's stacked matrix). G : (n, n) float32 or
float64, C order. Peak memory: one n×n buffer.
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels


def _csr_csc(X):
    """X's CSR and CSC (indptr, indices int64, data float64 each, or None for binary X),
    sorted: the kernels' form."""
    X = sp.csr_matrix(X)
    X.sort_indices()
    Xc = X.tocsc()
    Xc.sort_indices()
    i64, f64 = np.int64, np.float64
    binary = bool(np.all(X.data == 1))
    return (X.indptr.astype(i64), X.indices.astype(i64), None if binary else X.data.astype(f64),
            Xc.indptr.astype(i64), Xc.indices.astype(i64), None if binary else Xc.data.astype(f64))


def gram_diagonal(X):
    """diag(XᵀX) (n,) float64: column sums of X's squares (counts for binary X)."""
    X = sp.csr_matrix(X)
    return np.asarray(X.multiply(X).sum(axis=0), dtype=np.float64).ravel()


def gram(X, dtype=np.float32, out=None, lower_only=False):
    """G = XᵀX as a dense (n, n) array of ``dtype``.

    out : optional (n, n) C-ordered buffer to fill (overwritten).
    lower_only : fill only the lower triangle (j <= i), which is all a Cholesky reads; the strict
    upper triangle of ``out`` is then left as it was (zeros for a fresh buffer).
    """
    n = X.shape[1]
    if out is None:
        out = np.zeros((n, n), dtype=dtype)
    else:
        if out.shape != (n, n) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous ({n}, {n}) array, got {out.shape}")
        out[...] = 0
    if n == 0:
        return out
    _kernels.gram_lower(*_csr_csc(X), 0, out)
    if not lower_only:
        _kernels.symmetrize_lower(out, 256)
    return out
