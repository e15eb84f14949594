"""Seeded synthetic catalogs for benchmarks: power-law popularity, power-law history lengths,
and embeddings whose clusters are tied to co-consumption (users favour a few clusters)."""

import numpy as np
import scipy.sparse as sp


def synthetic(n_items, n_users=None, d=384, clusters=64, mean_len=30, seed=0):
    """(X (m, n) binary CSR float32, E (n, d) float32 L2-normalized)."""
    rng = np.random.default_rng(seed)
    m = n_users or 5 * n_items
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    cl = rng.integers(0, clusters, n_items)
    lengths = np.minimum(np.maximum(5, (rng.pareto(1.5, m) + 1) * mean_len / 3).astype(int),
                         n_items // 4)
    fav = rng.integers(0, clusters, (m, 2))
    members = [np.flatnonzero(cl == c) for c in range(clusters)]
    rows, cols = [], []
    for u in range(m):
        k = lengths[u]
        k_fav = int(0.7 * k)
        cand = np.concatenate([members[fav[u, 0]], members[fav[u, 1]]])
        pf = pop[cand] / pop[cand].sum()
        a = rng.choice(cand, size=min(k_fav, len(cand)), replace=False, p=pf)
        b = rng.choice(n_items, size=k - len(a), replace=False, p=pop / pop.sum())
        items = np.unique(np.concatenate([a, b]))
        rows.append(np.full(len(items), u))
        cols.append(items)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(m, n_items))
    centers = rng.standard_normal((clusters, d))
    E = centers[cl] + 1.5 * rng.standard_normal((n_items, d))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return X, E.astype(np.float32)


def catalog(n_items, n_users=None, d=384, clusters=64, mean_len=30, seed=0):
    """The model of :func:`synthetic`, vectorized: seconds at n = 100k (``synthetic`` draws
    user by user in O(n) each, ~20 min at 100k). (X (m, n) binary CSR float32, E (n, d) float32.)

    Items: popularity ∝ rank^-0.8 (randomly permuted), each in one of ``clusters`` clusters.
    Users (5n by default): history length ~ Pareto(1.5), at least 5 and at most n/4; 70% of the
    draws come from the user's two favourite clusters, 30% from the whole catalog, both in
    proportion to popularity (drawn with replacement; repeats are merged, so histories come out
    slightly shorter). Embeddings: the cluster centre plus noise, L2-normalized, so text
    similarity follows co-consumption.
    """
    rng = np.random.default_rng(seed)
    m = n_users or 5 * n_items
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    cl = rng.integers(0, clusters, n_items)
    lengths = np.minimum(np.maximum(5, (rng.pareto(1.5, m) + 1) * mean_len / 3).astype(np.int64),
                         max(n_items // 4, 1))
    fav = rng.integers(0, clusters, (m, 2))
    users = np.repeat(np.arange(m), lengths)
    k_fav = (0.7 * lengths).astype(np.int64)
    pos = np.arange(len(users)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    in_fav = pos < np.repeat(k_fav, lengths)
    # popularity-proportional draws: inverse CDF over all items, or within one cluster
    order = np.argsort(cl, kind="stable")
    cum = np.cumsum(pop[order])
    starts = np.searchsorted(cl[order], np.arange(clusters))
    ends = np.append(starts[1:], n_items)
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    hi = cum[ends - 1]
    which = fav[users, rng.integers(0, 2, len(users))]
    empty = ends[which] == starts[which]
    u = rng.random(len(users))
    target = np.where(in_fav & ~empty, lo[which] + u * (hi[which] - lo[which]), u * cum[-1])
    items = order[np.minimum(np.searchsorted(cum, target, side="right"), n_items - 1)]
    X = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(m, n_items))
    X.sum_duplicates()
    X.data[:] = 1
    centers = rng.standard_normal((clusters, d))
    E = centers[cl] + 1.5 * rng.standard_normal((n_items, d))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    return X, E.astype(np.float32)
