"""Ranking metrics (DESIGN §6): Recall@K and NDCG@K of top-N lists against held-out items.

Recall@K = hits / |T_u|;  NDCG@K = DCG / IDCG with IDCG over min(K, |T_u|) ideal hits;
averaged over users whose (group-restricted) T_u is non-empty. A group metric (head, tail, cold:
:mod:`l3ae.evaluation`) keeps the full ranking and restricts T_u to the group's items.
"""

import numpy as np
import scipy.sparse as sp


def ranking_metrics(top, truth, ks=(10, 20, 50), item_mask=None):
    """Mean Recall@K and NDCG@K of ranked lists against held-out items.

    top : (m, N) int64 ranked item indices (−1 pads), N >= max(ks).
    truth : (m, n) CSR held-out items. item_mask : (n,) bool restricts T_u to a group.
    Returns {"recall@K": float, "ndcg@K": float, ..., "users": int}.
    """
    truth = sp.csr_matrix(truth)
    if item_mask is not None:
        truth = truth @ sp.diags(np.asarray(item_mask, np.float32))
        truth.eliminate_zeros()
    n_true = np.diff(truth.indptr)
    users = np.flatnonzero(n_true > 0)
    out = {"users": int(len(users))}
    if len(users) == 0:
        for k in ks:
            out[f"recall@{k}"], out[f"ndcg@{k}"] = float("nan"), float("nan")
        return out
    kmax = max(ks)
    if top.shape[1] < kmax:
        raise ValueError(f"need at least {kmax} ranked items, got {top.shape[1]}")
    t = top[users, :kmax]
    # hit[u, r]: is the item at rank r in T_u? One vectorized binary search over the sorted
    # (user, item) keys of the truth matrix instead of sparse fancy indexing (~50× faster)
    truth.sort_indices()
    n = truth.shape[1]
    keys = np.repeat(np.arange(truth.shape[0], dtype=np.int64), n_true) * n + truth.indices
    q = users[:, None].astype(np.int64) * n + np.where(t >= 0, t, 0)
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    hit = (keys[pos] == q) & (t >= 0)
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    nt = n_true[users]
    for k in ks:
        h = hit[:, :k]
        out[f"recall@{k}"] = float(np.mean(h.sum(1) / nt))
        idcg = np.cumsum(disc[:k])[np.minimum(nt, k) - 1]
        out[f"ndcg@{k}"] = float(np.mean((h * disc[:k]).sum(1) / idcg))
    return out
