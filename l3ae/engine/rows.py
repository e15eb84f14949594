"""What B's rows are made of: P's rows, read from wherever P lives.

    B[I, :] = I + α L[I] Vᵀ − P[I, :] Dg(g) [+ P[I, :] N],   diag(B)[I] = diag_b[I]

Row I of B needs only row I of P, so every route of the exact solve (P in memory, on tiles in a
file, on a cluster's workers) serves B through one row source — ``diagonal()``, ``matmul(R)``,
``row_blocks(block)`` — and these kernels, which the single process and the cluster's tasks
share (:mod:`l3ae.engine.solve`, :mod:`l3ae.engine.cluster`).
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels
from l3ae.engine.blas import gemm
from l3ae.engine.progress import ignore


class DenseRows:
    """The row source of an in-memory P (n, n): views, no copies (``scratch``: not writable)."""

    scratch = False

    def __init__(self, P):
        self.P, self.shape, self.dtype = P, P.shape, P.dtype

    def diagonal(self):
        return np.diagonal(self.P).astype(np.float64)

    def matmul(self, R):
        return self.P @ R

    def row_blocks(self, block):
        for r0 in range(0, self.shape[0], block):
            yield r0, self.P[r0:r0 + block]


def row_source(P):
    """P's row source: :class:`DenseRows` for an ndarray, the tile file's own otherwise."""
    return DenseRows(P) if isinstance(P, np.ndarray) else P


def b_rows(p_rows, r0, g, diag_b, L_rows=None, V=None, alpha=1.0, overwrite=False, N=None):
    """Rows r0 : r0 + k of B = I + α L Vᵀ − P Dg(g) [+ P N] with diag(B) = diag_b, from P's rows.

    p_rows : (k, n) of the solve's dtype; g : (n,) same dtype; diag_b : (k,); L_rows : (k, d)
    rows r0.. of L (None: no low-rank term); V : (n, d); N : (n, n) CSC, data of the solve's
    dtype, int64 indices (None: no transition term). overwrite : the result replaces p_rows.
    """
    if N is None:
        blk = np.multiply(p_rows, (-g)[None, :], out=p_rows if overwrite else None)
    else:
        blk = p_rows if overwrite else np.empty_like(p_rows)
        _kernels.scale_add_sparse(p_rows, g, N.indptr, N.indices, N.data, blk)
    if L_rows is not None:
        gemm(blk, L_rows, V, alpha, 1.0, tb=True, overwrite=True)
    t = np.arange(len(blk))
    blk[t, r0 + t] = diag_b
    return blk


def diag_product_rows(p_rows, Nt_rows):
    """(P N)_jj = Σ_i P_ji N_ij for the rows j of ``p_rows`` (k, n), N's columns j given as the
    rows of ``Nt_rows`` (k, n) CSR (Nᵀ's same rows). Returns (k,) float64."""
    k = Nt_rows.shape[0]
    r = np.repeat(np.arange(k), np.diff(Nt_rows.indptr))
    return np.bincount(r, p_rows[r, Nt_rows.indices] * Nt_rows.data, minlength=k)


def transition_diagonal(P, N, block, report=ignore):
    """diag(P N) (n,) float64, from P's row source (one pass over its rows, reported as the
    phase "transitions") and N (n, n) sparse."""
    if hasattr(P, "diag_product"):  # P on a cluster: its workers read their tiles
        return P.diag_product(N)
    Nt = sp.csr_matrix(N.T)  # row j: column j of N
    n = P.shape[0]
    out = np.zeros(n)
    for r0, rows in P.row_blocks(block):
        r1 = r0 + len(rows)
        out[r0:r1] = diag_product_rows(rows, Nt[r0:r1])
        report("transitions", r1, n)
    return out
