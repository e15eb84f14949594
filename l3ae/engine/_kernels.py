"""numba kernels. Each fills a caller-allocated buffer; the wrappers in the engine modules
validate inputs and own the dtype policy. Index arrays are int64 (nnz may exceed 2**31)."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def gram_lower(indptr, indices, data, cptr, cidx, cdata, row0, out):
    """Lower triangle of the rows ``row0 : row0 + out.shape[0]`` of G = XᵀX into ``out``.

    indptr, indices, data : CSR of X (m, n), sorted columns; cptr, cidx, cdata : CSC of the
    same X (data float64: the weights of SLIST's stacked [√α X; √(1−α) S]; None for binary X,
    whose kernel numba compiles without the multiplications).
    out : (r, n) zeroed, float32/float64; out[i - row0, j] = G[i, j] for j <= i, rest untouched.
    Parallel over item rows: each thread owns whole rows, so there are no write races. Work per
    row is sum over its users of their history length, so rows are dealt round-robin.
    """
    r = out.shape[0]
    nthreads = 64
    for t in prange(nthreads):
        for k in range(t, r, nthreads):
            i = row0 + k
            row = out[k]
            for p in range(cptr[i], cptr[i + 1]):
                u = cidx[p]
                for q in range(indptr[u], indptr[u + 1]):
                    j = indices[q]
                    if j > i:
                        break
                    if data is None:  # pruned at compile time
                        row[j] += 1.0
                    else:
                        row[j] += cdata[p] * data[q]


@njit(parallel=True, cache=True, nogil=True)
def gram_cols(indptr, indices, data, cptr, cidx, cdata, row0, col0, out):
    """Lower part of the block G[row0 : row0 + r, col0 : col0 + c] of G = XᵀX into ``out``
    (X as in :func:`gram_lower`).

    out : (r, c) zeroed, float32/float64; out[i - row0, j - col0] += G[i, j] where i >= j,
    rest untouched. Items past X's n columns are padding: nothing is written for them.
    For a tile column of the lower triangle (row0 = col0, r = n − col0): the Gram part of one
    left-looking Cholesky step. Each thread owns whole columns (in runs of 16, so that two threads
    never share a cache line of a row), dealt round-robin: no write races, balanced work.
    The rows of item j's users start at a binary search for max(j, row0) in their sorted items.
    """
    r, c = out.shape
    n = cptr.shape[0] - 1
    nruns = (c + 15) // 16
    nthreads = 64
    hi = min(n, row0 + r)
    for t in prange(nthreads):
        for run in range(t, nruns, nthreads):
            for jj in range(run * 16, min(c, run * 16 + 16)):
                j = col0 + jj
                if j >= n:
                    break
                lo = max(j, row0)
                for p in range(cptr[j], cptr[j + 1]):
                    u = cidx[p]
                    a, b = indptr[u], indptr[u + 1]
                    q = a + np.searchsorted(indices[a:b], lo)
                    while q < b:
                        i = indices[q]
                        if i >= hi:
                            break
                        if data is None:  # pruned at compile time
                            out[i - row0, jj] += 1.0
                        else:
                            out[i - row0, jj] += cdata[p] * data[q]
                        q += 1


_ROWS = 64  # rows of p a thread takes at once: one SIMD-wide AXPY per nonzero of N


@njit(parallel=True, cache=True, nogil=True)
def scale_add_sparse(p, g, cptr, cidx, cval, out):
    """out = −p Dg(g) + p N for p (k, n), g (n,) and N (n, n) CSC (cval of p's dtype).

    ``out`` may be ``p`` itself. Threads take 64 rows at a time, transposed into a (n, 64)
    buffer, so that each nonzero N_ij adds N_ij · p[rows, i] to a 64-wide accumulator of
    column j: vector work from L2 instead of one scattered update per (row, nonzero).
    Work k·nnz(N) multiply-adds.
    """
    k, n = p.shape
    W = _ROWS
    for b in prange((k + W - 1) // W):
        r0 = b * W
        w = min(k, r0 + W) - r0
        pt = np.zeros((n, W), p.dtype)
        acc = np.zeros(W, p.dtype)
        for t in range(w):
            row = p[r0 + t]
            for i in range(n):
                pt[i, t] = row[i]
        for j in range(n):
            for t in range(W):
                acc[t] = -g[j] * pt[j, t]
            for q in range(cptr[j], cptr[j + 1]):
                v = cval[q]
                pi = pt[cidx[q]]
                if w == W:  # the full width: a fixed trip count, vectorized
                    for t in range(W):
                        acc[t] += v * pi[t]
                else:
                    for t in range(w):
                        acc[t] += v * pi[t]
            for t in range(w):
                out[r0 + t, j] = acc[t]


@njit(parallel=True, cache=True)
def symmetrize_lower(a, block):
    """Copy the strict lower triangle of square ``a`` onto its upper triangle, tile by tile
    (tiles keep both the read and the write side in cache)."""
    n = a.shape[0]
    nb = (n + block - 1) // block
    for bi in prange(nb):
        i0 = bi * block
        i1 = min(n, i0 + block)
        for j0 in range(i0, n, block):
            j1 = min(n, j0 + block)
            for i in range(i0, i1):
                for j in range(max(j0, i + 1), j1):
                    a[i, j] = a[j, i]


@njit(cache=True, inline="always")
def _ranks_above(v, j, w, k):
    """(v, j) ranks above (w, k): a higher score, or the same score and a smaller item index.
    A total order, so that the top-N never depends on the order items are offered in."""
    return v > w or (v == w and j < k)


@njit(cache=True, inline="always")
def _sift_down(hv, hi, size, k, v, j):
    """Place (v, j) at slot k of the min-heap hv/hi[:size] (root: the lowest-ranked entry)."""
    while True:
        c = 2 * k + 1
        if c >= size:
            break
        if c + 1 < size and _ranks_above(hv[c], hi[c], hv[c + 1], hi[c + 1]):
            c += 1
        if not _ranks_above(v, j, hv[c], hi[c]):
            break
        hv[k] = hv[c]
        hi[k] = hi[c]
        k = c
    hv[k] = v
    hi[k] = j


@njit(cache=True, inline="always")
def _heap_push(hv, hi, size, cap, v, j):
    """Offer (v, j) to a heap of capacity cap that keeps the cap highest-ranked entries.
    Returns the new size."""
    if size == cap:
        if _ranks_above(v, j, hv[0], hi[0]):
            _sift_down(hv, hi, size, 0, v, j)
        return size
    k = size
    while k > 0:  # sift the new leaf up
        p = (k - 1) // 2
        if not _ranks_above(hv[p], hi[p], v, j):
            break
        hv[k] = hv[p]
        hi[k] = hi[p]
        k = p
    hv[k] = v
    hi[k] = j
    return size + 1


@njit(cache=True)
def _drain_sorted(hv, hi, size, out_i, out_v):
    """Empty the heap into out_i/out_v best first; slots past ``size`` get -1 / -inf."""
    for r in range(size, out_i.shape[0]):
        out_i[r] = -1
        out_v[r] = -np.inf
    while size > 0:  # pop the lowest-ranked entry into the last free slot
        size -= 1
        out_i[size] = hi[0]
        out_v[size] = hv[0]
        if size > 0:
            _sift_down(hv, hi, size, 0, hv[size], hi[size])


@njit(parallel=True, cache=True, nogil=True)
def topn_scores(xptr, xidx, xval, mptr, midx, bptr, bidx, bval, bdense, use_dense, allowed, n,
                out_i, out_v):
    """Top-N items per user of score(u) = x_u B, masked items excluded.

    xptr, xidx, xval : CSR histories (m, n), xval float32 weights (ones: binary histories).
    mptr, midx : CSR of items to mask per user (m, n).
    B either CSR (bptr, bidx, bval) or dense ``bdense`` (n, n) (``use_dense``).
    allowed : (n,) bool, False items are never returned. out_i (m, N) int64, out_v (m, N)
    float32: filled best first (ties: the smaller item index first); rows with fewer candidates
    than N end with -1 / -inf.
    Sparse B: a sparse accumulator (:func:`_scatter_sparse`) lists the items the user's rows of
    B touch, and only those are offered to the heap (:func:`_offer_touched`), so the cost per user
    is the touched entries, not n; items nothing touches score exactly 0 and are scanned only
    while the list is short or holds a score <= 0. bidx may be int32 or int64.
    Users are dealt in blocks of 32 to at most 64 tasks, each with its own n-sized buffers.
    """
    m, N = out_i.shape
    block = 32
    nblocks = (m + block - 1) // block
    ntasks = min(nblocks, 64)
    for t in prange(ntasks):
        s = np.zeros(n, dtype=np.float32)
        touched = np.empty(n, dtype=np.int64)
        vals = np.empty(n, dtype=np.float32)
        hv = np.empty(N, dtype=np.float32)
        hi = np.empty(N, dtype=np.int64)
        for b in range(t, nblocks, ntasks):
            for u in range(b * block, min(m, (b + 1) * block)):
                size = 0
                if use_dense:
                    _score_dense(xptr, xidx, xval, mptr, midx, bdense, u, s)
                    for j in range(n):
                        if allowed[j] and s[j] > -np.inf:
                            size = _heap_push(hv, hi, size, N, s[j], j)
                        s[j] = 0.0
                    _drain_sorted(hv, hi, size, out_i[u], out_v[u])
                    continue
                need = mptr[u + 1] - mptr[u]
                for p in range(xptr[u], xptr[u + 1]):
                    need += bptr[xidx[p] + 1] - bptr[xidx[p]]
                if need > len(touched):
                    touched = np.empty(need, dtype=np.int64)
                    vals = np.empty(need, dtype=np.float32)
                cnt = _scatter_sparse(xptr, xidx, xval, mptr, midx, bptr, bidx, bval, u, s,
                                      touched)
                size = _offer_touched(s, touched, vals, cnt, allowed, hv, hi)
                if size < N or hv[0] <= 0.0:
                    for j in range(n):  # untouched items: score 0, offered in index order
                        if size == N and (hv[0] > 0.0 or (hv[0] == 0.0 and hi[0] < j)):
                            break
                        if s[j] == 0.0 and allowed[j]:
                            size = _heap_push(hv, hi, size, N, np.float32(0.0), j)
                for q in range(cnt):
                    s[touched[q]] = 0.0
                _drain_sorted(hv, hi, size, out_i[u], out_v[u])


@njit(cache=True, inline="always")
def _offer_touched(s, touched, vals, cnt, allowed, hv, hi):
    """Offer the items touched[:cnt] with their scores s to an empty heap hv/hi; returns its
    size. Each offered item's s turns -inf: a repeat in touched is not offered twice, and the
    scan for untouched items (s == 0) skips it.
    The scores are gathered first (independent loads overlap), then tested against the heap's
    lowest entry inline: most items stop there, before any call."""
    N = len(hv)
    for q in range(cnt):
        j = touched[q]
        vals[q] = s[j]
        s[j] = -np.inf
    size = 0
    for q in range(cnt):
        v = vals[q]
        if size == N and not v >= hv[0]:  # also drops NaN
            continue
        j = touched[q]
        if v > -np.inf and allowed[j]:
            size = _heap_push(hv, hi, size, N, v, j)
    return size


@njit(cache=True, inline="always")
def _score_dense(xptr, xidx, xval, mptr, midx, bdense, u, s):
    """s (zeroed, n) += the rows of dense B for user u's items, times their weights; masked
    items set to -inf."""
    n = s.shape[0]
    for p in range(xptr[u], xptr[u + 1]):
        row = bdense[xidx[p]]
        w = xval[p]
        for j in range(n):
            s[j] += w * row[j]
    for p in range(mptr[u], mptr[u + 1]):
        s[midx[p]] = -np.inf


@njit(cache=True, inline="always")
def _scatter_sparse(xptr, xidx, xval, mptr, midx, bptr, bidx, bval, u, s, touched):
    """s (zeroed, n) += the CSR rows of B for user u's items, times their weights; masked items
    set to -inf.

    touched[:cnt] (cnt returned) lists every item made nonzero, each at least once: an item is
    listed when it is hit while its sum is 0 (so again if a sum cancels to exactly 0), and
    masked items are listed too, so that zeroing s at touched[:cnt] restores s. touched must
    hold the user's B entries plus mask entries. No marker array: fewer cache lines per hit.
    """
    cnt = 0
    for p in range(xptr[u], xptr[u + 1]):
        i = xidx[p]
        w = xval[p]
        for q in range(bptr[i], bptr[i + 1]):
            j = bidx[q]
            v = s[j]
            touched[cnt] = j
            cnt += v == 0.0
            s[j] = v + w * bval[q]
    for p in range(mptr[u], mptr[u + 1]):
        j = midx[p]
        touched[cnt] = j
        cnt += 1
        s[j] = -np.inf
    return cnt


@njit(cache=True, inline="always")
def _magnitude(row, j, d):
    """|row[j]| as float64, or -1 where never kept: the diagonal d, NaN, exact zero."""
    v = abs(np.float64(row[j]))
    return v if (j != d and v == v and v != 0.0) else -1.0


@njit(cache=True)
def _sample_bound(row, d, k):
    """A magnitude that about 1.5·k + 4·√k entries of the row reach (estimated from 512
    evenly spaced ones), so that the exact k-th largest is, with high probability, among
    those; -1 when the estimate is of no use (the caller then looks at the whole row)."""
    n = len(row)
    s = 512
    sample = np.empty(s)
    for i in range(s):
        sample[i] = _magnitude(row, (i * n) // s, d)
    want = 1.5 * k * s / n + 4.0 * np.sqrt(k * s / n) + 4.0
    r = int(want)
    if r >= s:
        return -1.0
    return np.partition(sample, s - 1 - r)[s - 1 - r]


@njit(cache=True, inline="always")
def _candidates(row, d, cut, cand, mag):
    """The columns (ascending) and magnitudes of the row's kept-able entries of magnitude
    ≥ cut, into cand/mag; returns how many."""
    m = 0
    for j in range(len(row)):
        v = _magnitude(row, j, d)
        if v > 0.0 and v >= cut:
            cand[m] = j
            mag[m] = v
            m += 1
    return m


@njit(parallel=True, cache=True)
def topk_rows(block, row0, ks, offs, out_idx, out_val, out_cnt):
    """Keep the ks[t] off-diagonal entries of largest magnitude in row t of ``block`` (r, n).

    Magnitude, not value: large negative weights demote items, and dropping them changes
    rankings far more (measured in bench/reference.py). Exact zeros are not kept. Row t of the
    block is row ``row0 + t`` of the full matrix; its diagonal entry is skipped; NaNs are never
    kept. Row t's entries go to out_idx / out_val (flat) from offs[t] on: column indices
    sorted ascending and their values; out_cnt[t] says how many (≤ ks[t]).
    The threshold is the exact ks[t]-th largest magnitude, from a quickselect (np.partition)
    over the entries above a bound estimated from a sample of the row (one pass over the row
    instead of several; the whole row when the bound falls short), ties at it kept lowest
    columns first.
    """
    r, n = block.shape
    for t in prange(r):
        row = block[t]
        d = row0 + t
        k = ks[t]
        q = offs[t]
        out_cnt[t] = 0
        if k <= 0:
            continue
        cand = np.empty(n, np.int64)
        mag = np.empty(n)
        bound = _sample_bound(row, d, k) if 4 * k < n else -1.0
        m = _candidates(row, d, bound, cand, mag) if bound > 0.0 else 0
        if m < k:  # the bound fell short (or was not tried): every entry is a candidate
            m = _candidates(row, d, 0.0, cand, mag)
        if m == 0:
            continue
        thr = np.partition(mag[:m], m - k)[m - k] if k < m else 0.0
        room = k  # keep |v| > thr, then ties at thr (lowest columns first) until k are kept
        for c in range(m):
            if mag[c] > thr:
                room -= 1
        for c in range(m):
            v = mag[c]
            tie = v == thr and room > 0
            if v > thr or tie:
                if tie:
                    room -= 1
                j = cand[c]
                out_idx[q] = j
                out_val[q] = row[j]
                q += 1
        out_cnt[t] = q - offs[t]


@njit(cache=True)
def held_magnitudes(val, offs, cnt, out):
    """|val| of the cnt[i] entries from offs[i] on, row after row, into out (Σ cnt,)."""
    q = 0
    for i in range(len(cnt)):
        for p in range(offs[i], offs[i] + cnt[i]):
            out[q] = abs(val[p])
            q += 1


@njit(cache=True)
def compact_rows(idx, val, offs, cnt, thr):
    """Of the cnt[i] entries from offs[i] on, keep those with |val| ≥ thr, moved (in place,
    order kept) to the front of idx/val row after row; cnt updated. Returns how many."""
    q = 0
    for i in range(len(cnt)):
        c = 0
        for p in range(offs[i], offs[i] + cnt[i]):
            if abs(val[p]) >= thr:
                idx[q] = idx[p]
                val[q] = val[p]
                q += 1
                c += 1
        cnt[i] = c
    return q
