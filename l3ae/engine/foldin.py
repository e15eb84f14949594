"""Adding items without a rebuild: fold k new items (text, no interactions) into a built B.

P of the new catalog. A new item j has a zero column in X, so G gains a zero row and column and
G + Dg(a) gains an isolated diagonal entry a_j:

    P' = (G' + Dg(a'))⁻¹ = [[P, 0], [0, Dg(1/a_new)]]        P of the old items is unchanged.

a_j = Λ_j + λ_E w_j with Λ_j = λ_X (the dropout term p/(1−p)·diag(G)_j is 0) and w_j the pull of
an item of popularity 0: 1 (uniform) or (1 + c̄)^power (adaptive), c̄ = the mean popularity OF THE
BUILD, kept fixed. (A rebuild would average over n + k items and so scale every old w_i by one
factor: another model, out of reach without a new P. Fold-ins are exact against a rebuild that
is given these w.)

Phase 1 with E' = [E; U], U (k, d): K = (EᵀE + λ_F I)⁻¹ from the stored EᵀE (d×d, float64),
T = I_k + U K Uᵀ (k×k). Woodbury gives everything from T:

    K' Uᵀ = K Uᵀ T⁻¹,   U K' Uᵀ = I − T⁻¹,   δ'_new = diag(T⁻¹),
    s'_i = s_i − z_i T⁻¹ z_iᵀ (z_i = e_i K Uᵀ),   δ'_i = 1 − s'_i,   C'_il = e_i K' e_lᵀ / δ'_l.

Phase 2, B' = I + λ_E P' W' C' − P' Dg(h'), at new rows and columns (j new, i old, l any):
    B'[i, j] = λ_E (P W E)_i K' u_jᵀ / δ'_j      (P'_ij = 0: h_j never enters an old row)
    B'[j, l] = λ_E w_j / a_j · C'_jl            (P' row j is e_j / a_j)
    B'[j, j]: (P'W'C')_jj = w_j C'_jj / a_j = 0, so t_j = (1 − ξ) a_j / 1 and
              equality: h_j = t_j, B'_jj = ξ;  inequality: h_j = max(a_j, t_j) = a_j, B'_jj = 0
              (the bound is slack: an item without data has b_jj = 0 ≤ ξ unconstrained).
The fusion baselines: the additive one adds α·C' and scales the rest by (1 − α); the text preset
is B = C' (α = 1). One form covers the family, with (c₁, c₂) = ((1 − α) λ_E, α):
    B'[old, j] = (c₁ PWE + c₂ E) K' u_jᵀ / δ'_j,    B'[j, :] = r_j C'[j, :],  r_j = c₁ w_j/a_j + c₂.
Text-free presets (c₁ = c₂ = 0: EASE, LAE, DLAE, EDLAE, RLAE, RDLAE) are exact everywhere: new
rows and columns are zero, nothing else moves. The collective baseline puts α²EEᵀ inside G, so
new items are not isolated in P: refused.

What is kept as built: the old–old block. In a rebuild it shifts with K' and δ' (C'_il for old i,
l) and with h'_l; matching it needs all of P, O(n²) per fold-in. New rows and columns are exact
(to rounding), so chained fold-ins stay exact on them: P W E grows by Dg(w_new / a_new) U rows
(P' is block diagonal), EᵀE by UᵀU and s by the Woodbury update above.

Pruned B (CSR, top-k by magnitude per row, :mod:`l3ae.engine.prune`): an old row keeps the top-k
of (its kept entries ∪ its k new entries): the same as pruning the full row of the folded matrix,
because the entries it dropped at build time are below its k kept ones. New rows are pruned like
a build's rows. Same selection kernel, so zeros, NaN and ties are treated alike.

Shapes and dtypes: B (n, n) CSR (int64 indptr) or dense, of the model's dtype; E, PWE (n, d) of
the model's dtype; EᵀE (d, d), s (n,) float64. Cost O(n d k) flops + O(nnz(B) + n k) to rewrite
the rows; memory: T (k, k), a (block, topk + k) work block, the new rows (k, n + k) in chunks of
16 MB, and for dense B the new (n + k)² buffer beside the old one.
"""

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels
from l3ae.engine.models import fusion
from l3ae.engine.prune import budget_scale, row_budgets
from l3ae.engine.semantic import semantic_basis
from l3ae.engine.solve import _total_ridge
from l3ae.errors import ConfigError


@dataclass(frozen=True)
class FoldState:
    """What a fold-in needs besides B and the config (``/fold`` in model.h5).

    E : (n, d) embeddings of the build, model dtype (None for text-free models).
    pwe : (n, d) P W E, model dtype (None unless λ_E ≠ 0).
    ete : (d, d) float64 EᵀE.   s : (n,) float64 diag(E K Eᵀ), K = (EᵀE + λ_F I)⁻¹.
    pull_mean : mean popularity of the build (the adaptive pull of new items).
    budget_scale : the build's :func:`l3ae.engine.prune.budget_scale` (None: topk per row).
    """

    E: object
    pwe: object
    ete: object
    s: object
    pull_mean: float
    budget_scale: float | None = None

    @property
    def n(self):
        return None if self.E is None else len(self.E)


def coefficients(cfg):
    """(c₁, c₂) = ((1 − α) λ_E, α) of a config: B = (1 − α)·(phase 2) + α·C (text: α = 1)."""
    if cfg.form == "collective" and cfg.alpha != 0:
        raise ConfigError("the collective baseline puts α²·EEᵀ inside G, so new items are not "
                          "isolated in P: it cannot be folded; rebuild it with the new items")
    if cfg.c_alone:
        return 0.0, 1.0
    additive = fusion(cfg)[1]
    return (1 - additive) * cfg.reg_e, additive


def new_diagonal(xi, constraint=None):
    """diag(B') of a new item: ξ under equality, 0 under inequality (see the module docstring)."""
    constraint = constraint or ("equality" if xi == 0 else "inequality")
    return float(xi) if constraint == "equality" else 0.0


def new_item_pull(cfg, pull_mean, k, item_ids=None):
    """(w, a) (k,) float64 of k new items: popularity 0, the build's mean popularity kept."""
    w = np.full(k, (1.0 + pull_mean) ** cfg.pull_power if cfg.pull == "adaptive" else 1.0)
    return w, _total_ridge(cfg.reg_x, cfg.reg_e, w, 0.0, np.zeros(k), item_ids)


def fold_state(cfg, E=None, pwe=None, popularity=()):
    """The FoldState of a model built with ``cfg`` from E (n, d), P W E (n, d), popularity (n,)."""
    c1, c2 = coefficients(cfg)
    mean = float(np.mean(popularity)) if len(popularity) else 0.0
    scale = budget_scale(popularity, cfg.topk, cfg.budget) if cfg.topk else None
    if c1 == 0 and c2 == 0:
        return FoldState(None, None, None, None, mean, scale)
    if E is None or (c1 != 0 and pwe is None):
        raise ValueError("a text-aware fold state needs E (and P W E when λ_E ≠ 0)")
    E = np.ascontiguousarray(E, dtype=cfg.dtype)
    # float64 EᵀE and s (the K of a build on E), from float64 row blocks of E
    b = semantic_basis(E, cfg.reg_f, want_y=False, want_ete=True)
    return FoldState(E, np.asarray(pwe, cfg.dtype) if c1 else None, b.ete, b.s, mean, scale)


def _woodbury(ete, reg_f, U):
    """(K Uᵀ (d, k), T⁻¹ (k, k)) with K = (EᵀE + λ_F I)⁻¹, T = I + U K Uᵀ; all float64.

    T ⪰ I, so its inverse is well conditioned; memory O(k²) for k new items."""
    A = ete.copy()
    A.flat[:: len(A) + 1] += reg_f
    KU = np.linalg.solve(A, U.T)  # d×d SPD and tiny
    Tinv = np.linalg.inv(np.eye(len(U)) + U @ KU)
    return KU, (Tinv + Tinv.T) / 2


def _merge_block(B, r0, r1, cols, ks):
    """Rows r0:r1 of CSR B (n, n) with their new columns ``cols`` (r, c) appended, row t pruned
    to its ks[t] largest magnitudes: (counts (r,), indices, values) in ascending column order.

    Only rows where a new entry beats the smallest kept one (or that have room) go through the
    top-k kernel; the others are copied: with a weak text pull that is most rows.
    """
    n, r = B.shape[1], r1 - r0
    lo, hi = B.indptr[r0], B.indptr[r1]
    ptr, data, ind = B.indptr[r0:r1 + 1] - lo, B.data[lo:hi], B.indices[lo:hi]
    cnt = np.diff(ptr)
    thr = np.zeros(r)  # a new entry enters row t iff |v| > thr_t (ties keep the older column)
    nz = cnt > 0
    if nz.any():  # segments between non-empty row starts are exactly those rows
        thr[nz] = np.minimum.reduceat(np.abs(data), ptr[:-1][nz])
    thr[cnt < ks] = 0.0
    hit = np.flatnonzero((np.abs(cols) > thr[:, None]).any(axis=1))
    row_of = np.repeat(np.arange(r), cnt)
    pos = np.arange(hi - lo) - np.repeat(ptr[:-1], cnt)
    out_cnt = cnt.copy()
    if len(hit):
        sel = np.zeros(r, bool)
        sel[hit] = True
        mine = sel[row_of]  # old entries of the hit rows, padded to one block (0: never kept)
        width = int(cnt[hit].max(initial=0)) + cols.shape[1]
        slot = np.cumsum(sel) - 1
        vals, idx = np.zeros((len(hit), width), B.dtype), np.zeros((len(hit), width), np.int64)
        vals[slot[row_of[mine]], pos[mine]] = data[mine]
        idx[slot[row_of[mine]], pos[mine]] = ind[mine]
        vals[:, width - cols.shape[1]:] = cols[hit]
        idx[:, width - cols.shape[1]:] = np.arange(n, n + cols.shape[1])
        h_cnt, h_idx, h_val = _select(vals, idx, width, np.minimum(ks[hit], width))
        out_cnt[hit] = h_cnt
    out_ptr = np.zeros(r + 1, np.int64)
    np.cumsum(out_cnt, out=out_ptr[1:])
    out_idx, out_val = np.empty(out_ptr[-1], np.int64), np.empty(out_ptr[-1], B.dtype)
    keep = ~sel[row_of] if len(hit) else slice(None)
    dest = out_ptr[row_of[keep]] + pos[keep]
    out_idx[dest], out_val[dest] = ind[keep], data[keep]
    if len(hit):
        h_row = np.repeat(hit, h_cnt)
        dest = out_ptr[h_row] + np.arange(len(h_idx)) - np.repeat(np.cumsum(h_cnt) - h_cnt, h_cnt)
        out_idx[dest], out_val[dest] = h_idx, h_val
    return out_cnt, out_idx, out_val


def _select(vals, idx, row0, ks):
    """The top-k kernel on a (r, width) block (row t's diagonal at column row0 + t), row t kept
    to ks[t] entries: (counts (r,), their columns (``idx``'s where given), their values)."""
    r = len(vals)
    offs = np.zeros(r + 1, np.int64)
    np.cumsum(ks, out=offs[1:])
    oi, ov, oc = np.zeros(offs[-1], np.int64), np.empty(offs[-1], vals.dtype), np.zeros(r, np.int64)
    _kernels.topk_rows(vals, row0, np.asarray(ks, np.int64), offs[:-1], oi, ov, oc)
    row = np.repeat(np.arange(r), ks)
    keep = np.arange(offs[-1]) - offs[:-1][row] < oc[row]
    chosen = oi[keep] if idx is None else idx[row[keep], oi[keep]]
    return oc, chosen, ov[keep]


def _csr(parts, shape, dtype):
    cnt = np.concatenate([p[0] for p in parts])
    indptr = np.zeros(len(cnt) + 1, np.int64)
    np.cumsum(cnt, out=indptr[1:])
    indices = np.concatenate([p[1] for p in parts])
    B = sp.csr_matrix((np.concatenate([p[2] for p in parts]).astype(dtype, copy=False),
                       indices, indptr), shape=shape, copy=False)
    B.indptr, B.indices = indptr, indices  # scipy may downcast; keep int64 for nnz > 2**31
    return B


def fold_in(cfg, state, B, E_new, *, popularity=None, topk=None, constraint=None,
            item_ids=None, block=2048, progress=None):
    """Fold k new items into B: (B' (n+k, n+k), diag_new (k,), state', seconds).

    cfg : the model's :class:`l3ae.engine.models.Config`; state : its FoldState (n items).
    B : (n, n) CSR (pruned to ``topk``, default cfg.topk) or dense ndarray; B' is of the same kind
    and dtype, its old–old block is B's. E_new : (k, d) float, rows of the new items.
    popularity : (n,) train counts of the old items: with the build's budget scale (``state``)
    they give each row its budget (:func:`l3ae.engine.prune.row_budgets`; new items count 0),
    so an old row keeps as many as it did. None: ``topk`` per row. Under ``prune`` "global"
    an old row keeps as many as it holds and a new one ``topk``.
    constraint : "equality"/"inequality" (default: equality iff ξ = 0, as the build does).
    progress : optional callable(phase, done, total, info="").
    """
    t0 = time.perf_counter()
    c1, c2 = coefficients(cfg)
    n, k = B.shape[0], len(E_new)
    dtype, topk = B.dtype, cfg.topk if topk is None else topk
    dense = not sp.issparse(B)
    report = progress or (lambda *a: None)
    d_new = (1 - c2) * new_diagonal(cfg.xi, constraint)
    if cfg.c_alone:  # no ridge and no pull: B = C
        w, a = np.ones(k), np.ones(k)
    else:  # a rebuild refuses a ≤ 0 at a new item: so does the fold-in
        w, a = new_item_pull(cfg, state.pull_mean, k, item_ids)
    text = c1 != 0 or c2 != 0
    if text:
        if state.E is None or len(state.E) != n:
            raise ConfigError(f"the fold state holds {state.n} items for a B of {n}")
        if E_new.shape[1:] != state.E.shape[1:]:
            raise ConfigError(f"new embeddings are {E_new.shape[1:]}-d, the model's "
                              f"{state.E.shape[1:]}-d")
        U = np.asarray(E_new, state.E.dtype).astype(np.float64)  # as a rebuild would see it
        KU, Tinv = _woodbury(state.ete, cfg.reg_f, U)
        K2U = KU @ Tinv  # K' Uᵀ
        delta_new = np.diagonal(Tinv).copy()
        r = c1 * w / a + c2  # B'[j, :] = r_j C'[j, :]
    s_old = np.empty(n)
    out = np.zeros((n + k, n + k), dtype) if dense else None
    parts = []
    scale = state.budget_scale if state.budget_scale is not None else topk
    if dense:
        ks = None
    elif cfg.prune == "global":  # old rows keep as many as the build's selection gave them
        ks = np.r_[np.diff(B.indptr), np.full(k, min(topk, n + k - 1))].astype(np.int64)
    elif popularity is None or not cfg.budget:
        ks = np.full(n + k, min(topk, n + k - 1), np.int64)
    else:
        ks = row_budgets(np.concatenate([popularity, np.zeros(k)]), scale, cfg.budget, n + k - 1)
    for r0 in range(0, n, block):  # pass 1: old rows gain their new columns; δ' of old items
        r1 = min(n, r0 + block)
        if text:
            Z = state.E[r0:r1] @ KU  # z_i = e_i K Uᵀ
            G1 = Z @ Tinv  # e_i K' Uᵀ
            s_old[r0:r1] = state.s[r0:r1] - np.einsum("ij,ij->i", G1, Z)
            V = c2 * G1 + (c1 * (state.pwe[r0:r1] @ K2U) if c1 else 0.0)
            cols = V / delta_new[None, :]
        else:
            cols = np.zeros((r1 - r0, k))
        if dense:
            out[r0:r1, :n], out[r0:r1, n:] = B[r0:r1], cols
        else:
            parts.append(_merge_block(B, r0, r1, cols.astype(dtype), ks[r0:r1]))
        report("add-items", r1, n + k)
    chunk = max(1, min(k, (16 << 20) // (8 * (n + k))))
    for j0 in range(0, k, chunk):  # pass 2: new rows r_j C'[j, :]
        j1 = min(k, j0 + chunk)
        rows = np.zeros((j1 - j0, n + k))
        if text:
            for b0 in range(0, n, block):
                b1 = min(n, b0 + block)
                rows[:, b0:b1] = (state.E[b0:b1] @ K2U[:, j0:j1]).T / (1 - s_old[b0:b1])
            rows[:, n:] = -Tinv[j0:j1] / delta_new[None, :]  # (I − T⁻¹) off the diagonal
            rows *= r[j0:j1, None]
        rows[np.arange(j1 - j0), n + np.arange(j0, j1)] = d_new
        if dense:
            out[n + j0:n + j1] = rows
        else:
            parts.append(_select(rows.astype(dtype), None, n + j0, ks[n + j0:n + j1]))
        report("add-items", n + j1, n + k)
    B2 = out if dense else _csr(parts, (n + k, n + k), dtype)
    if text:
        E_cat = np.concatenate([state.E, U.astype(state.E.dtype)])
        pwe = (np.concatenate([state.pwe, ((w / a)[:, None] * U).astype(state.pwe.dtype)])
               if c1 else None)
        state = FoldState(E_cat, pwe, state.ete + U.T @ U,
                          np.concatenate([s_old, 1 - delta_new]), state.pull_mean,
                          state.budget_scale)
    return B2, np.full(k, d_new, dtype), state, time.perf_counter() - t0
