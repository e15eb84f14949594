"""Phase 2: the weight matrix B, one closed form for EASE, LAE, DLAE/EDLAE, RLAE/RDLAE and L3AE.

    B = argmin ||X − XB||² + ||Dg(Λ)^½ B||² + λ_E ||Dg(w)^½ (B − C)||²
        s.t. diag(B) = ξ (equality) or diag(B) ≤ ξ (inequality)
    a = Λ + λ_E w,  P = (G + Dg(a))⁻¹,  t_j = (1 − ξ + λ_E (PWC)_jj) / P_jj
    h = t (equality) or max(a, t) (inequality),   B = I + λ_E P W C − P Dg(h)
    Order-aware (slist, :mod:`l3ae.engine.sequences`): G is that of the stacked X̃ and the right
    side gains N = (1−α) Sᵀ(T − S): B gains P N and t_j gains (P N)_jj / P_jj.
    Low rank (phase 1 as S = Y Yᵀ, Y = E R⁻ᵀ, s, δ; V = Dg(1/δ) Y):  M = P W Y (n×d),
    B = I + λ_E M Vᵀ − P Dg(g),  g = λ_E w∘s/δ + h,  (PWC)_jj = M_j·V_j − P_jj w_j s_j/δ_j

X : (m, n) binary CSR; E : (n, d) float. Peak memory: ONE n×n buffer of ``dtype`` (A → L → P →
dense B in place) plus V, M and one n×d temporary (W Y, for P·W Y) in ``dtype`` (P W E too
with ``keep_pwe``) and one (block, n) row block when pruning to top-k. Beyond the solve's n³,
the semantic term costs 2·n²·d (P·W Y and M Vᵀ) + 2·n·d² (phase 1) multiply-adds.
The factorization is LAPACK potrf + potri in place on the lower triangle (never an LU inverse;
:func:`l3ae.engine.blas.cholesky_inverse`).

Routes of P (:func:`factorize`, chosen by :func:`l3ae.engine.memory.plan` in
:func:`solve_weights`): in memory (one buffer, :func:`_memory_inverse`); out of core on tiles in
an HDF5 file when that buffer does not fit ``max_memory`` (:mod:`l3ae.engine.tiled`: the same
algorithm one tile column at a time); as tile tasks on Dask (:mod:`l3ae.engine.cluster`).
Everything after P reads it through one row source (:mod:`l3ae.engine.rows`). A solve that
makes B without P (the restricted-support solve, DESIGN §2) is a fourth route: a function
beside :func:`factorize` + :func:`weights_from_inverse` returning :class:`Weights`, chosen in
:func:`solve_weights`.
"""

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels, memory, tiled
from l3ae.engine.blas import cholesky_inverse
from l3ae.engine.gram import gram, gram_diagonal
from l3ae.engine.progress import ignore
from l3ae.engine.prune import RowPruner
from l3ae.engine.rows import b_rows, row_source, transition_diagonal
from l3ae.engine.semantic import semantic_basis, semantic_factors, semantic_rows
from l3ae.errors import ConfigError, item_name


@dataclass
class Weights:
    """B : (n, n) CSR (pruned) or dense ndarray; diag : (n,) diag(B) before pruning."""

    B: object
    diag: np.ndarray
    timings: dict = field(default_factory=dict)
    pwe: object = None  # P W E (n, d) when asked for (keep_pwe): the state of a fold-in


def _digest(a):
    """A key for an array's content without copying it (shape, dtype, blake2b of the bytes)."""
    a = np.ascontiguousarray(a)
    return a.shape, a.dtype.str, hashlib.blake2b(memoryview(a).cast("B"),
                                                 digest_size=16).hexdigest()


def _check(dtype, dropout, additive, xi, constraint):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if not 0 <= additive <= 1:
        raise ConfigError(f"additive α must be in [0, 1], got {additive}")
    constraint = constraint or ("equality" if xi == 0 else "inequality")
    if constraint not in ("equality", "inequality"):
        raise ConfigError(f"constraint must be 'equality' or 'inequality', got {constraint!r}")
    return dtype, constraint


def _pull(w, n):
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or not np.all(w > 0):
        raise ConfigError("pull weights w must be (n,) and > 0")
    return w


@dataclass
class Inverse:
    """P = (G + Dg(a))⁻¹ (n, n), full and symmetric, with the a (n,) and diag(G) that made it.

    P : an ndarray, or a :class:`l3ae.engine.tiled.TiledP` (P on tiles in an HDF5 file; the
    caller removes the file with ``P.remove()`` when done).
    """

    P: object
    a: np.ndarray
    diag_g: np.ndarray
    timings: dict = field(default_factory=dict)
    # (λ_F, w) -> (phase 1 factors, M = P W E K): shared by every λ_E and ξ of a sweep
    cache: dict = field(default_factory=dict, repr=False)
    # N (n, n) sparse of an order-aware model (slist), made from the same sequences as G
    transition: object = None


def _total_ridge(lam_x, reg_e, w, dropout, diag_g, item_ids):
    """a = Λ + λ_E·w, Λ = λ_X + p/(1−p)·diag(G); refused unless > 0 for every item."""
    n = len(w)
    lam = lam_x + (dropout / (1 - dropout)) * diag_g if dropout else np.full(n, float(lam_x))
    a = lam + reg_e * w
    bad = np.flatnonzero(~(a > 0))
    if bad.size:
        j = bad[0]
        raise ConfigError(
            f"the total ridge a = Λ + λ_E·w must be > 0 for every item; a = {a[j]:.6g} at "
            f"{item_name(j, item_ids)} ({bad.size} items); raise --reg-x or --reg-e")
    return a


def factorize(X, *, reg_x, reg_e=0.0, w=None, dropout=0.0, E=None, collective=0.0,
              dtype=np.float32, item_ids=None, progress=None, tile=None, tile_path=None,
              resume=False, on_checkpoint=None, cluster=None) -> Inverse:
    """Gram, shift, potrf + potri in place: P = (G [+ α²EEᵀ] + Dg(a))⁻¹, a = Λ + λ_E·w.

    P depends on the hyperparameters only through a (and α of the collective baseline):
    a sweep over λ_E or ξ at a fixed a reuses one factorization (see :func:`weights_from_inverse`).
    tile : compute P out of core on T×T tiles in the HDF5 file ``tile_path`` (``resume``: continue
    that file; ``on_checkpoint(phase, columns_done)``: called after each checkpoint). None: in
    memory, one n×n buffer.
    cluster : a :class:`l3ae.engine.cluster.Cluster`: P as tiles on its workers (tile: their
    size, None: chosen from the workers' memory); the caller releases them with ``P.close()``.
    """
    dtype, _ = _check(dtype, dropout, 0.0, 0.0, None)
    X = sp.csr_matrix(X)
    n = X.shape[1]
    w = _pull(w, n)
    if collective and E is None:
        raise ConfigError("the collective baseline needs item embeddings (E)")
    if cluster is None and tile is None and n > memory.LAPACK_MAX_N:
        # one LAPACK call on n > LAPACK_MAX_N is unsafe: tiles instead
        tile = min(memory.LAPACK_MAX_N, 8192)
    if cluster is None and tile is None:
        return _memory_inverse(X, reg_x, reg_e, w, dropout, E, collective, dtype, item_ids,
                               progress or ignore)
    diag_g = gram_diagonal(X)  # tiles: A's come straight from X, never whole
    a = _total_ridge(reg_x, reg_e, w, dropout, diag_g, item_ids)
    if cluster is not None:
        from l3ae.engine.cluster import cluster_inverse  # dask is an optional extra

        P = cluster_inverse(cluster, X, a, dtype=dtype, tile=tile, E=E, collective=collective,
                            item_ids=item_ids, progress=progress)
    else:
        P = tiled.tiled_inverse(X, a, dtype=dtype, path=tile_path or _temporary_tiles(),
                                tile=tile, resume=resume, E=E, collective=collective,
                                item_ids=item_ids, progress=progress,
                                on_checkpoint=on_checkpoint)
    return Inverse(P, a, diag_g, dict(P.timings))


def _memory_inverse(X, reg_x, reg_e, w, dropout, E, collective, dtype, item_ids, report):
    """The in-memory route: A = G [+ α² E Eᵀ] + Dg(a) in one n×n buffer, inverted in place."""
    t0 = time.perf_counter()
    n = X.shape[1]
    A = gram(X, dtype=dtype, lower_only=True)
    diag_g = np.diagonal(A).astype(np.float64)
    timings = {"gram": time.perf_counter() - t0}
    report("gram", 1, 1)
    if collective:
        t = time.perf_counter()
        E = np.ascontiguousarray(E, dtype=dtype)
        block = _block(n, dtype)
        for r0 in range(0, n, block):  # lower triangle of α² E Eᵀ, block rows
            r1 = min(n, r0 + block)
            A[r0:r1, :r1] += (collective ** 2) * (E[r0:r1] @ E[:r1].T)
        timings["semantic"] = time.perf_counter() - t
    a = _total_ridge(reg_x, reg_e, w, dropout, diag_g, item_ids)
    A.flat[:: n + 1] += a.astype(dtype)
    t = time.perf_counter()
    cholesky_inverse(A, item_ids)
    _kernels.symmetrize_lower(A, 256)
    timings["factorize"] = time.perf_counter() - t
    report("factorize", 1, 1)
    return Inverse(A, a, diag_g, timings)


def _temporary_tiles():
    """A fresh temporary tile-file name (the caller removes the file: ``inv.P.remove()``)."""
    fd, name = tempfile.mkstemp(suffix=".tiles.h5")
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _block(n, dtype):
    # row blocks of ~16 MB: small beside the n×n buffer, large enough for efficient GEMMs
    return max(64, min(4096, (16 << 20) // (max(n, 1) * np.dtype(dtype).itemsize)))


def weights_from_inverse(inv: Inverse, *, reg_e=0.0, w=None, xi=0.0, constraint=None, E=None,
                         reg_f=None, additive=0.0, topk=500, prune="row", budgets=None,
                         overwrite=False, block=None, progress=None, keep_pwe=False) -> Weights:
    """B from a factorization: B = I + λ_E M Eᵀ Dg(1/δ) − P Dg(g) row block by row block.

    ``reg_e`` and ``w`` must be those that made ``inv.a`` (only their product with λ_E enters
    B beyond a). prune, budgets : see :func:`solve_weights`.
    overwrite : write dense B over P (topk = 0 only; P is destroyed).
    keep_pwe : also return P W E (n, d) in ``Weights.pwe`` (λ_E ≠ 0; :mod:`l3ae.engine.foldin`).
    """
    P, a = row_source(inv.P), inv.a
    n = P.shape[0]
    dtype, constraint = _check(P.dtype, 0.0, additive, xi, constraint)
    w = _pull(w, n)
    if (reg_e != 0 or additive != 0) and E is None:
        raise ConfigError("this model needs item embeddings (E) for its semantic term")
    report = progress or ignore
    block = block or _block(n, dtype)
    t0 = time.perf_counter()
    sem = None
    if reg_e != 0 or additive != 0:
        E = np.ascontiguousarray(E, dtype=dtype)  # phase 1 sees the E the model keeps
        if E.shape[0] != n:
            raise ConfigError(f"E has {E.shape[0]} rows for {n} items")
        key = (reg_f, _digest(w), _digest(E), dtype.str)
        if key not in inv.cache:
            inv.cache.clear()  # one entry: V and P W Y are n×d, keep memory flat during sweeps
            b = semantic_basis(E, reg_f if reg_f is not None else 0.0, dtype)
            V = b.Y
            V /= b.delta[:, None].astype(dtype)  # V = Dg(1/δ) Y, in place: Y is not kept
            inv.cache[key] = {"s": b.s, "delta": b.delta, "R": b.R, "V": V, "PWY": None}
        sem = inv.cache[key]
    t_sem = time.perf_counter() - t0

    t = time.perf_counter()
    p_diag = P.diagonal()
    pwe = None
    pwc_diag = np.zeros(n)
    if reg_e != 0:
        s, delta, V = sem["s"], sem["delta"], sem["V"]
        if sem["PWY"] is None:
            sem["PWY"] = P.matmul(V * (w * delta)[:, None].astype(dtype))  # P W Y, (n, d)
        PWY = sem["PWY"]
        # (PWC)_jj = ((PWY)_j·Y_j − P_jj w_j s_j)/δ_j, Y_j = δ_j V_j
        pwc_diag = np.einsum("ij,ij->i", PWY, V, dtype=np.float64) - p_diag * w * s / delta
        if keep_pwe:
            pwe = PWY @ sem["R"].T.astype(dtype)  # P W E = P W Y Rᵀ
    N, q_diag = inv.transition, 0.0
    if N is not None:  # the order-aware right side: B gains P N
        N = sp.csc_matrix(N, dtype=dtype)  # the kernel's layout (l3ae.engine._kernels)
        N.indptr, N.indices = N.indptr.astype(np.int64), N.indices.astype(np.int64)
        block = -(-block // 128) * 128  # whole 64-row groups for its threads
        q_diag = transition_diagonal(P, N, block, report)
    tt = (1 - xi + reg_e * pwc_diag + q_diag) / p_diag
    h = tt if constraint == "equality" else np.maximum(a, tt)
    diag_b = 1 + reg_e * pwc_diag + q_diag - p_diag * h
    g = h + (reg_e * w * sem["s"] / sem["delta"] if reg_e != 0 else 0.0)
    # the low-rank term is alpha · L Vᵀ: L = P W Y (L3AE), or its blend with Y (additive)
    L, alpha = (sem["PWY"], reg_e) if reg_e != 0 else (None, 1.0)
    if additive:
        Y = sem["V"] * sem["delta"][:, None].astype(dtype)
        L = additive * Y + ((1 - additive) * reg_e) * L if L is not None else additive * Y
        alpha = 1.0
        g, diag_b = (1 - additive) * g, (1 - additive) * diag_b
    g = g.astype(dtype)

    V = sem["V"] if L is not None else None
    pruner = RowPruner(n, topk, dtype, budgets, prune == "global") if topk else None
    dense = None
    if pruner is None:
        dense = inv.P if overwrite and isinstance(inv.P, np.ndarray) else np.empty((n, n), dtype)
    if hasattr(P, "fill_weights"):  # P on a cluster: its workers make and prune the rows
        P.fill_weights(dict(g=g, diag_b=diag_b, L=L, V=V, alpha=alpha, N=N), pruner, dense,
                       report)
    else:
        for r0, p_rows in P.row_blocks(block):
            r1 = r0 + len(p_rows)
            blk = b_rows(p_rows, r0, g, diag_b[r0:r1], None if L is None else L[r0:r1], V,
                         alpha, overwrite=P.scratch, N=N)
            if pruner is None:
                dense[r0:r1] = blk  # B rows need only P's same rows: safe in place
            else:
                pruner.add(blk, r0)
            report("weights", r1, n)
    B = dense if pruner is None else pruner.result()
    timings = {"semantic": t_sem, "weights": time.perf_counter() - t}
    return Weights(B, diag_b.astype(dtype), timings, pwe)


def solve_weights(X, *, reg_x, reg_e=0.0, w=None, dropout=0.0, xi=0.0, constraint=None,
                  E=None, reg_f=None, collective=0.0, additive=0.0, transition=None, topk=500,
                  prune="row", budgets=None,
                  dtype=np.float32, block=None, item_ids=None, progress=None,
                  max_memory=None, workdir=None, resume=False, tile=None, tile_name="l3ae",
                  on_checkpoint=None, keep_pwe=False, cluster=None) -> Weights:
    """B from interactions (and embeddings for λ_E > 0 or the fusion baselines).

    reg_x : λ_X, scalar ridge (may be negative while a = Λ + λ_E w stays > 0).
    dropout : p in [0, 1): Λ = λ_X + p/(1−p)·diag(G) (DLAE / EDLAE / RDLAE).
    reg_e, w : λ_E and the per-item pull weights w (n,) > 0 (default ones); needs E and reg_f.
    xi, constraint : diag(B) = ξ ("equality") or ≤ ξ ("inequality"); default: equality iff ξ = 0.
    collective : α of the collective fusion baseline, EASE on [X; αFᵀ]: G += α² E Eᵀ.
    additive : α of the additive fusion baseline, B ← (1−α) B + α C.
    transition : N (n, n) sparse of the order-aware slist, B gains P N (X is then its stacked
    X̃; :func:`l3ae.engine.sequences.slist_inputs`).
    topk : keep the k largest-magnitude off-diagonal entries per row (CSR); 0: dense B (n, n).
    prune : "row" (topk a row) or "global" (the n·topk largest of B, at most 2·topk a row).
    budgets : (n,) int64, how many row i keeps instead ("row"; :func:`l3ae.engine.prune.row_budgets`).
    progress : optional callable(phase, done, total, info="") (:mod:`l3ae.engine.progress`);
    the tiled phases pass "GFLOP/s, ETA" as ``info``.

    Run-time options (the result does not depend on them):
    max_memory : budget of the whole process in bytes or "8G"/"500M". None, or when P's n×n
    buffer fits: in memory. Otherwise out of core, tiles sized to fit (:func:`memory.plan`).
    workdir : folder of the tile file ``<tile_name>.tiles.h5`` (default: the system's temporary
    folder). It is deleted after a successful solve and kept when one is interrupted.
    resume : continue from that tile file's last finished tile column (refused if the file
    was made from other inputs or is damaged).
    tile : force the tiled path with this tile size (tests, benchmarks).
    on_checkpoint : optional callable(phase, columns_done) after each checkpoint.
    keep_pwe : also return P W E (n, d) in ``Weights.pwe`` (the state of a fold-in).
    cluster : a :class:`l3ae.engine.cluster.Cluster`: the solve and B's rows run as tasks on its
    workers (``tile``: their size; max_memory, workdir and resume are for one machine).
    """
    t0 = time.perf_counter()
    dtype, _ = _check(dtype, dropout, additive, xi, constraint)
    if (reg_e != 0 or additive != 0 or collective != 0) and E is None:
        raise ConfigError("this model needs item embeddings (E) for its semantic term")
    X = sp.csr_matrix(X)
    n = X.shape[1]
    if isinstance(max_memory, str):
        max_memory = memory.parse_size(max_memory)
    tile_path = None
    if cluster is None:
        where, tile, _ = memory.plan(n, itemsize=dtype.itemsize, nnz=X.nnz,
                                     d=E.shape[1] if E is not None else 0, topk=topk,
                                     prune=prune, max_memory=max_memory, tile=tile)
        tile_path = Path(workdir or tempfile.gettempdir()) / f"{tile_name}.tiles.h5"
        if resume and tile_path.exists():
            where, tile = "tiles", tile or 1  # the file's own tile size is used
        if where != "tiles":
            tile_path = None
    inv = factorize(X, reg_x=reg_x, reg_e=reg_e, w=w, dropout=dropout, E=E,
                    collective=collective, dtype=dtype, item_ids=item_ids, progress=progress,
                    tile=tile, tile_path=tile_path, resume=resume, on_checkpoint=on_checkpoint,
                    cluster=cluster)
    inv.transition = transition
    try:
        out = weights_from_inverse(inv, reg_e=reg_e, w=w, xi=xi, constraint=constraint, E=E,
                                   reg_f=reg_f, additive=additive, topk=topk,
                                   prune=prune, budgets=budgets, overwrite=not topk, block=block,
                                   progress=progress, keep_pwe=keep_pwe)
    except BaseException:
        if not isinstance(inv.P, np.ndarray):
            inv.P.close()  # a tile file is kept: --resume goes straight to the weights
        raise
    timings = dict(inv.timings)
    if not isinstance(inv.P, np.ndarray):  # tiles in a file or on a cluster's workers
        timings.update(inv.P.timings)
        inv.P.remove()
    timings["semantic"] = timings.get("semantic", 0.0) + out.timings["semantic"]
    timings["weights"] = out.timings["weights"]
    timings["total"] = time.perf_counter() - t0
    del inv
    return Weights(out.B, out.diag, timings, out.pwe)


def text_weights(E, reg_f, topk=500, block=1024, progress=None, budgets=None, prune="row"):
    """Text-only "EASE on text": B = C (phase 1 alone). No interactions, no n×n buffer if pruned."""
    t0 = time.perf_counter()
    E = np.ascontiguousarray(E)
    if E.dtype not in (np.float32, np.float64):
        E = E.astype(np.float32)
    n = E.shape[0]
    fac = semantic_factors(E, reg_f)
    pruner = RowPruner(n, topk, E.dtype, budgets, prune == "global") if topk else None
    dense = None if topk else np.empty((n, n), E.dtype)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        blk = semantic_rows(E, fac, slice(r0, r1))
        if pruner is None:
            dense[r0:r1] = blk
        else:
            pruner.add(blk, r0)
        if progress:
            progress("weights", r1, n)
    B = dense if pruner is None else pruner.result()
    t = time.perf_counter() - t0
    return Weights(B, np.zeros(n, E.dtype), {"semantic": t, "total": t})
