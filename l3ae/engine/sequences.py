"""SLIST's training matrices (Choi et al., WWW 2021: SLIS + SLIT) from time-ordered sequences.

The order-aware closed form (preset ``slist``, DESIGN §2):

    B = argmin α ||X − XB||² + (1−α) ||T − SB||² + ||Dg(Λ)^½ B||² [+ λ_E ||Dg(w)^½ (B − C)||²]
        s.t. diag(B) = ξ or ≤ ξ
      = (α XᵀX + (1−α) SᵀS + Dg(a))⁻¹ (α XᵀX + (1−α) SᵀT [+ λ_E W C] − Dg(μ))

is the solver's closed form on the stacked X̃ = [√α X; √(1−α) S] (its Gram is the first sum)
plus one sparse term N = (1−α) Sᵀ(T − S) on the right: B = … + P N (:mod:`l3ae.engine.solve`).

Sequences are ``(indptr, items)``: user u's events, oldest first, repeats kept, are
``items[indptr[u]:indptr[u + 1]]`` (int64). Every event but a user's first ends a prefix:
- S (p, n): one row per prefix: its last ``window`` events, the one k steps before the prefix's
  end weighted decay**k (an item met twice keeps its most recent weight);
- T (p, n): what follows the prefix: ``"next"``, the next item (weight 1); ``"following"``, the
  next ``window`` items, the j-th after the prefix (j = 0, 1, …) weighted decay**j.
A user with one event has no prefix; with two, one.
"""

import numpy as np
import scipy.sparse as sp

TARGETS = ("next", "following")


def from_events(users, items, m):
    """Sequences (indptr (m+1,), items) of events grouped by user in code order (users (e,)
    non-decreasing int64 codes < m, items (e,) int64), as sequence files are read."""
    users = np.asarray(users, np.int64)
    if np.any(np.diff(users) < 0):
        raise ValueError("events must be grouped by user, users in code order")
    indptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=m), out=indptr[1:])
    return indptr, np.asarray(items, np.int64)


def _max_csr(rows, cols, vals, shape):
    """CSR (p, n) float64 of the entries, duplicates reduced to their largest value."""
    order = np.lexsort((-vals, cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]
    M = sp.csr_matrix((vals[first], (rows[first], cols[first])), shape=shape)
    M.indptr = M.indptr.astype(np.int64)
    M.indices = M.indices.astype(np.int64)
    return M


def transitions(sequences, n, window, decay, targets="next"):
    """(S, T): (p, n) CSR float64 each, one row per prefix (see the module docstring).

    window : int >= 1; decay : in (0, 1]; targets : "next" or "following".
    """
    indptr, items = sequences
    if window < 1 or not 0 < decay <= 1 or targets not in TARGETS:
        raise ValueError(f"window {window}, decay {decay}, targets {targets!r}")
    e = len(items)
    start = np.repeat(indptr[:-1], np.diff(indptr))  # each event's user's first event
    end = np.repeat(indptr[1:], np.diff(indptr))
    ends = np.flatnonzero(np.arange(e) > start)  # the event after each prefix
    p = len(ends)
    rows = np.arange(p)
    parts = ([], [], [])
    for k in range(window):  # S: the event k steps before the prefix's end
        src = ends - 1 - k
        ok = src >= start[ends]
        for part, v in zip(parts, (rows[ok], items[src[ok]], np.full(ok.sum(), decay ** k))):
            part.append(v)
    S = _max_csr(*(np.concatenate(x) for x in parts), (p, n))
    reach = 1 if targets == "next" else window
    parts = ([], [], [])
    for j in range(reach):  # T: the j-th event after the prefix
        dst = ends + j
        ok = dst < end[ends]
        for part, v in zip(parts, (rows[ok], items[dst[ok]], np.full(ok.sum(), decay ** j))):
            part.append(v)
    T = _max_csr(*(np.concatenate(x) for x in parts), (p, n))
    return S, T


def slist_inputs(X, sequences, alpha, window, decay, targets="next"):
    """(X̃, N) of the order-aware closed form on X (m, n) CSR and its sequences.

    X̃ : [√α X; √(1−α) S] CSR float64 (X alone at α = 1, S alone at α = 0), whose Gram is
    α XᵀX + (1−α) SᵀS. N : (1−α) Sᵀ(T − S) (n, n) CSR float64, None at α = 1 (SLIS).
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    n = X.shape[1]
    if alpha == 1:
        return X, None
    S, T = transitions(sequences, n, window, decay, targets)
    N = ((1 - alpha) * (S.T @ (T - S))).tocsr()
    N.eliminate_zeros()
    N.sort_indices()
    Xs = S * np.sqrt(1 - alpha) if alpha == 0 else sp.vstack([X * np.sqrt(alpha),
                                                               S * np.sqrt(1 - alpha)])
    return sp.csr_matrix(Xs), N
