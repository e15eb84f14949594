"""Keep the k strongest (largest magnitude) off-diagonal entries per row of B, as CSR.

Seen items are masked at scoring, so diagonal entries never matter and are not kept.
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels


class RowPruner:
    """Accumulates pruned row blocks of an (n, n) matrix into one CSR (int64 indptr)."""

    def __init__(self, n, k, dtype):
        self.n, self.k, self.dtype = n, min(k, max(n - 1, 0)), dtype
        self.idx, self.val, self.cnt = [], [], []

    def add(self, block, row0):
        """Prune rows ``row0 : row0 + len(block)`` of the full matrix."""
        r = block.shape[0]
        oi = np.empty((r, self.k), np.int64)
        ov = np.empty((r, self.k), block.dtype)
        oc = np.empty(r, np.int64)
        if self.k > 0:
            _kernels.topk_rows(block, row0, self.k, oi, ov, oc)
        else:
            oc[:] = 0
        mask = np.arange(self.k)[None, :] < oc[:, None]
        self.idx.append(oi[mask])
        self.val.append(ov[mask].astype(self.dtype))
        self.cnt.append(oc)

    def result(self):
        cnt = np.concatenate(self.cnt) if self.cnt else np.zeros(0, np.int64)
        indptr = np.zeros(self.n + 1, np.int64)
        np.cumsum(cnt, out=indptr[1:])
        idx = np.concatenate(self.idx) if self.idx else np.zeros(0, np.int64)
        val = np.concatenate(self.val) if self.val else np.zeros(0, self.dtype)
        B = sp.csr_matrix((val, idx, indptr), shape=(self.n, self.n))
        B.indptr, B.indices = indptr, idx  # scipy may downcast; keep int64 for nnz > 2**31
        return B


def prune_topk(B, k, block=1024):
    """CSR (n, n) with the k largest-magnitude off-diagonal entries of each row of dense B."""
    pr = RowPruner(B.shape[0], k, B.dtype)
    for r0 in range(0, B.shape[0], block):
        pr.add(np.ascontiguousarray(B[r0:r0 + block]), r0)
    return pr.result()
