"""Keep the k strongest (largest magnitude) off-diagonal entries per row of B, as CSR.

Seen items are masked at scoring, so diagonal entries never matter and are not kept.
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels


class RowPruner:
    """Prunes row blocks of an (n, n) matrix straight into preallocated CSR arrays (int64)."""

    def __init__(self, n, k, dtype):
        self.n, self.k = n, min(k, max(n - 1, 0))
        self.idx = np.empty(n * self.k, np.int64)
        self.val = np.empty(n * self.k, dtype)
        self.cnt = np.zeros(n, np.int64)

    def add(self, block, row0):
        """Prune rows ``row0 : row0 + len(block)`` of the full matrix."""
        r, k = block.shape[0], self.k
        oi = self.idx[row0 * k:(row0 + r) * k].reshape(r, k)
        ov = self.val[row0 * k:(row0 + r) * k].reshape(r, k)
        if k > 0:
            _kernels.topk_rows(block, row0, k, oi, ov, self.cnt[row0:row0 + r])

    def result(self):
        k = self.k
        indptr = np.zeros(self.n + 1, np.int64)
        np.cumsum(self.cnt, out=indptr[1:])
        if indptr[-1] < self.n * k:  # rows with fewer than k entries: compact in place
            keep = (np.arange(k)[None, :] < self.cnt[:, None]).ravel()
            self.idx, self.val = self.idx[keep], self.val[keep]
        B = sp.csr_matrix((self.val, self.idx, indptr), shape=(self.n, self.n), copy=False)
        B.indptr, B.indices = indptr, self.idx  # scipy may downcast; keep int64 for nnz > 2**31
        return B


def prune_topk(B, k, block=1024):
    """CSR (n, n) with the k largest-magnitude off-diagonal entries of each row of dense B."""
    pr = RowPruner(B.shape[0], k, B.dtype)
    for r0 in range(0, B.shape[0], block):
        pr.add(np.ascontiguousarray(B[r0:r0 + block]), r0)
    return pr.result()
