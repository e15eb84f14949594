"""Keep the strongest (largest magnitude) off-diagonal entries of each row of B, as CSR.

Seen items are masked at scoring, so diagonal entries never matter and are not kept.
How many a row keeps is its *budget*: ``topk`` each, or (``power`` > 0) topk·n shared out in
proportion to (1 + c_i)^power, c the train counts: rows of items in many histories score most
users, and keeping more of their small weights keeps tail items reachable (bench/compact.py:
at equal size, tail recall within 2% of the dense B where equal budgets lose 4–8%).
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels


def budget_scale(popularity, k, power):
    """s such that Σ_i min(n − 1, s·(1 + c_i)^power) = k·n (k per row on average; capped
    rows hand their excess to the others). popularity c (n,); power 0 gives s = min(k, n − 1)."""
    w = (1.0 + np.asarray(popularity, np.float64)) ** power
    n, cap = len(w), max(len(w) - 1, 0)
    want = min(k, cap) * n
    if n == 0 or want == 0:
        return 0.0
    w = np.sort(w)[::-1]
    tail = np.cumsum(w[::-1])[::-1]  # tail[j] = Σ_{i ≥ j} w_i
    for j in range(n):  # the j largest rows are capped
        s = (want - j * cap) / tail[j]
        if s * w[j] <= cap:
            return float(s)
    return float(cap / w[-1])


def row_budgets(popularity, scale, power, cap):
    """(n,) int64: min(cap, round(scale·(1 + c_i)^power)) weights to keep in row i."""
    w = (1.0 + np.asarray(popularity, np.float64)) ** power
    return np.minimum(cap, np.rint(scale * w)).astype(np.int64)


class RowPruner:
    """Prunes row blocks of an (n, n) matrix straight into preallocated CSR arrays (int64).

    k : weights per row, or budgets : (n,) int64 per row (:func:`row_budgets`), which win."""

    def __init__(self, n, k, dtype, budgets=None):
        cap = max(n - 1, 0)
        self.n = n
        self.ks = (np.full(n, min(k, cap), np.int64) if budgets is None
                   else np.minimum(np.asarray(budgets, np.int64), cap))
        self.offs = np.zeros(n + 1, np.int64)
        np.cumsum(self.ks, out=self.offs[1:])
        self.idx = np.empty(self.offs[-1], np.int64)
        self.val = np.empty(self.offs[-1], dtype)
        self.cnt = np.zeros(n, np.int64)

    def add(self, block, row0):
        """Prune rows ``row0 : row0 + len(block)`` of the full matrix."""
        r1 = row0 + block.shape[0]
        _kernels.topk_rows(block, row0, self.ks[row0:r1], self.offs[row0:r1], self.idx,
                           self.val, self.cnt[row0:r1])

    def put(self, row0, idx, val, cnt):
        """Rows ``row0 : row0 + len(cnt)`` already pruned by :func:`prune_block` (elsewhere)."""
        r1 = row0 + len(cnt)
        a, b = self.offs[row0], self.offs[r1]
        self.idx[a:b], self.val[a:b], self.cnt[row0:r1] = idx, val, cnt

    def result(self):
        indptr = np.zeros(self.n + 1, np.int64)
        np.cumsum(self.cnt, out=indptr[1:])
        if indptr[-1] < self.offs[-1]:  # rows that kept fewer than their budget: compact
            pos = np.arange(self.offs[-1]) - np.repeat(self.offs[:-1], self.ks)
            keep = pos < np.repeat(self.cnt, self.ks)
            self.idx, self.val = self.idx[keep], self.val[keep]
        B = sp.csr_matrix((self.val, self.idx, indptr), shape=(self.n, self.n), copy=False)
        B.indptr, B.indices = indptr, self.idx  # scipy may downcast; keep int64 for nnz > 2**31
        return B


def prune_block(block, row0, ks):
    """Rows ``row0 : row0 + len(block)`` of an (n, n) matrix pruned alone, for
    :meth:`RowPruner.put`: (idx int64, val, cnt int64), row t's entries from Σ ks[:t] on."""
    ks = np.asarray(ks, np.int64)
    offs = np.zeros(len(ks) + 1, np.int64)
    np.cumsum(ks, out=offs[1:])
    idx, val = np.empty(offs[-1], np.int64), np.empty(offs[-1], block.dtype)
    cnt = np.zeros(len(ks), np.int64)
    _kernels.topk_rows(block, row0, ks, offs[:-1], idx, val, cnt)
    return idx, val, cnt


def prune_topk(B, k, block=1024, budgets=None):
    """CSR (n, n) with the k (or budgets[i]) largest-magnitude off-diagonal entries of each
    row of dense B."""
    pr = RowPruner(B.shape[0], k, B.dtype, budgets)
    for r0 in range(0, B.shape[0], block):
        pr.add(np.ascontiguousarray(B[r0:r0 + block]), r0)
    return pr.result()
