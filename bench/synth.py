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
