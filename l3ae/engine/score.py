"""Scoring: score(u) = x_u B with seen items masked, top-N per user (numba, parallel over users).

B : (n, n) CSR (pruned) or dense ndarray. X : (m, n) CSR histories; their values weigh B's rows
(ones for binary histories, recency**age for recency-weighted ones).
Returns items (m, N) int64 (−1 pads) and scores (m, N) float32, best first.
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels


def topn(X, B, N=20, allowed=None, mask=None):
    """Top-N unseen items per row of X under item–item weights B.

    mask : (m, n) CSR of items never to return per user; default X itself (seen items).
    allowed : (n,) bool, items that may be returned at all.
    """
    X = sp.csr_matrix(X)
    mask = X if mask is None else sp.csr_matrix(mask)
    if mask.shape != X.shape:
        raise ValueError(f"mask is {mask.shape}, histories are {X.shape}")
    m, n = X.shape
    if B.shape != (n, n):
        raise ValueError(f"B is {B.shape}, histories have {n} items")
    allowed = np.ones(n, bool) if allowed is None else np.asarray(allowed, bool)
    out_i = np.empty((m, N), np.int64)
    out_v = np.empty((m, N), np.float32)
    if m == 0 or N == 0:
        return out_i, out_v
    xptr, xidx = X.indptr.astype(np.int64), X.indices.astype(np.int64, copy=False)
    xval = X.data.astype(np.float32, copy=False)
    mptr, midx = mask.indptr.astype(np.int64), mask.indices.astype(np.int64, copy=False)
    if sp.issparse(B):
        B = B if B.format == "csr" else sp.csr_matrix(B)
        # no copies of a large B per call: int32 column indices go to the kernel as they are
        bptr, bval = B.indptr.astype(np.int64), B.data.astype(np.float32, copy=False)
        bidx = B.indices
        if bidx.dtype != np.int32:
            bidx = bidx.astype(np.int64, copy=False)
        dense, use_dense = np.zeros((1, 1), np.float32), False
    else:
        bptr, bidx, bval = np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.float32)
        dense, use_dense = np.ascontiguousarray(B, dtype=np.float32), True
    _kernels.topn_scores(xptr, xidx, xval, mptr, midx, bptr, bidx, bval, dense, use_dense, allowed, n,
                         out_i, out_v)
    return out_i, out_v
