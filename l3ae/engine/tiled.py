"""Out-of-core P = (G + Dg(a))⁻¹ on T×T tiles in an HDF5 file (DESIGN §3), for catalogs whose
n×n buffer does not fit the memory budget.

    A = G + Dg(a) [+ α² E Eᵀ],  A = L Lᵀ (tiled Cholesky, lower),  P = A⁻¹ = L⁻ᵀ L⁻¹

Tiles: A, L and P are nt × nt grids of T×T tiles, N = nt·T ≥ n; A is padded with an identity
block (rows/columns n..N), which leaves P's first n rows and columns exact. Only lower tiles are
stored (:mod:`l3ae.io.tiles`); a "strip" is one tile column from some tile row down, a C-ordered
((nt − i0)·T, T) array in which every tile is one contiguous block.

Factor, left-looking by tile column j (the DAG of ``dask.array.linalg.cholesky``):
    L_jj = potrf(A_jj − Σ_{k<j} L_jk L_jkᵀ),   L_ij = trsm(L_jj, A_ij − Σ_{k<j} L_ik L_jkᵀ)  (i > j)
A's strip j comes straight from X (numba Gram kernel, :func:`gram_strip`), so A is never stored:
the file holds L, written once per column. For each k < j the update is one GEMM of the strip
L[j:, k] (read from the file) with its top tile (syrk on the diagonal tile).
Left- rather than right-looking (same tasks, another order): a right-looking step rewrites the
whole trailing matrix, so over the run it reads and writes ~n³/(3T) elements, and a kill in the
middle of a step leaves tiles with and without its update that no resume can tell apart.
Left-looking reads ~n³/(6T) elements, writes every tile once and never modifies finished data.

Inverse, right to left by tile column j, in place over L (block form of P L = L⁻ᵀ):
    Y = P[>j, >j] · L[>j, j]       (symmetric product over the finished part of P, strips k from
                                    nt − 1 down to j + 1)
    P[>j, j] = −Y L_jj⁻¹                             (trsm)
    P_jj = L_jj⁻ᵀ (I + L[>j, j]ᵀ Y) L_jj⁻¹            (two trsm)
2n³/3 flops like LAPACK potri (trtri + lauum), plus 1.5·n²·T for Y's quadratic form and the
trsm, all GEMM-shaped off the diagonal. Column j of P replaces column j of L, which no later
column needs. A kill in the middle of that overwrite leaves column j torn; the resume recomputes
L's column j from X and the L columns left of it (still intact: the inverse goes right to left),
one Cholesky step, instead of keeping a second copy of every column on disk.

The last column (j = nt − 1) is P_jj = potri(L_jj), so with one tile the whole solve is LAPACK
potrf + potri, the in-memory algorithm.

Every step is a pure tile task of :mod:`l3ae.engine.blas` (potrf, trsm_lt, syrk, gemm,
trsm_right, symm_strip, diag_inverse, potri): a function of its input tiles only.
Applied to a strip, a task is the batch of its per-tile tasks run as one BLAS call. The order
below (one tile column at a time, strips streamed) is the out-of-core schedule; the same tasks
in the same order, one per tile, are the Dask graph of :mod:`l3ae.engine.cluster`.

Memory: 4 strips (≤ 4·N·T·itemsize: the column being built, the L column during the inverse,
and two read buffers so that the next strip loads while BLAS runs on the current one), plus the
O(n·d) blocks of B and the pruned result. T is chosen from the memory budget by
:func:`l3ae.engine.memory.plan` (which counts these 4 strips as ``STRIPS``).
The cost beyond potrf + potri's n³ is about 1.5·n²·T flops (Y's quadratic form and the trsm
of the inverse): 1.5·T/n, 11% with 14 tile columns.
Disk: ≈ n²/2·itemsize (the lower tiles, written once as L and once as P).
Checkpoint: after each tile column (see :mod:`l3ae.io.tiles`); resume recomputes at most one.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from l3ae.engine import _kernels
from l3ae.engine.blas import (diag_inverse, gemm, potrf, potri, symm_strip, syrk, trsm_lt,
                              trsm_right)
from l3ae.engine.gram import _csr_csc
from l3ae.engine.progress import Meter, ignore
from l3ae.errors import NotPositiveDefiniteError
from l3ae.io.tiles import TileFile, fingerprint


def tiled_inverse(X, a, *, dtype, path, tile, resume=False, E=None, collective=0.0,
                  item_ids=None, progress=None, on_checkpoint=None):
    """P = (G + Dg(a) [+ α² E Eᵀ])⁻¹ into the tile file at ``path``; returns a :class:`TiledP`.

    X : (m, n) sparse, binary; a : (n,) float64 > 0; dtype : float32 or float64 (the tiles');
    tile : T; E : (n, d) float, used when ``collective`` (α) is not 0.
    progress : optional callback(phase, done, total, info="") (:mod:`l3ae.engine.progress`):
    "cholesky" then "inverse", in tiles, with "GFLOP/s, ETA" as info.
    resume : continue the file at ``path`` if it exists (refused with DataFormatError if it is
    not a sound tile file of these very inputs); otherwise any file there is replaced.
    on_checkpoint : optional callable(phase, columns_done) after each checkpoint (tests).
    """
    X = sp.csr_matrix(X)
    n = X.shape[1]
    dtype = np.dtype(dtype)
    report = progress or ignore
    extra = {"collective": float(collective)}
    if collective:
        extra["E"] = np.ascontiguousarray(E, dtype=dtype)
    fp = fingerprint(X, a, dtype, **extra)
    path = Path(path)
    timings = {"gram": 0.0, "cholesky": 0.0, "inverse": 0.0, "io_wait": 0.0, "write": 0.0}
    store = None
    if resume and path.exists():
        store = TileFile.open(path, n, dtype, fp)
    if store is None:
        store = TileFile.create(path, n, tile, dtype, fp)
    try:
        _run(store, X, a, E, collective, item_ids, report, on_checkpoint, timings)
    except NotPositiveDefiniteError:
        store.remove()  # useless: another ridge makes another file
        raise
    except BaseException:
        store.close()  # kept for --resume
        raise
    return TiledP(store, timings)


def _run(store, X, a, E, collective, item_ids, report, on_checkpoint, timings):
    """Whatever the file's checkpoint says is left: the factor's columns, then the inverse's."""
    nt, N, dtype = store.nt, store.N, store.dtype
    hook = on_checkpoint or (lambda *a: None)
    chol, inv, _ = store.checkpoint
    with ThreadPoolExecutor(1, thread_name_prefix="l3ae-tiles") as pool:
        gram = None
        if chol < nt or store.torn() >= 0:
            gram = _Gram(X, a, E, collective, N, dtype)
        if chol < nt:
            t = time.perf_counter()
            _cholesky(store, gram, chol, pool, item_ids, report, hook, timings)
            timings["cholesky"] = time.perf_counter() - t - timings["gram"]
            gram = None  # X's int64 copies: only a resume of a torn column needs them again
        if store.checkpoint[1] < nt:
            t = time.perf_counter()
            _invert(store, gram, store.checkpoint[1], pool, item_ids, report, hook, timings)
            timings["inverse"] = time.perf_counter() - t
    timings["factorize"] = timings["cholesky"] + timings["inverse"]
    timings["tile"] = float(store.tile)
    timings["disk_gib"] = store.disk_bytes() / 2 ** 30


def gram_strip(Xs, j, T, out, a_pad, E_pad=None, collective=0.0):
    """Strip j of A = G + Dg(a) [+ α² E Eᵀ] (tiles (i, j), i ≥ j), lower part, into ``out``.

    Xs : X as int64 (CSR indptr, indices, CSC indptr, indices); out : ((nt − j)·T, T) of the
    solve's dtype, overwritten; a_pad : (N,) float64, E_pad : (N, d), both padded to N = nt·T.
    """
    out[...] = 0
    _kernels.gram_cols(*Xs, j * T, j * T, out)
    if collective:
        gemm(out, E_pad[j * T:], E_pad[j * T:(j + 1) * T], collective ** 2, 1.0, tb=True,
             overwrite=True)
    r = np.arange(T)
    out[r, r] += a_pad[j * T:(j + 1) * T].astype(out.dtype)
    return out


class _Gram:
    """The tile columns of A from X (and E for the collective baseline), padded to N: the
    padding's diagonal is 1, so P's first n rows and columns are those of the unpadded A⁻¹."""

    def __init__(self, X, a, E, collective, N, dtype):
        n = X.shape[1]
        self.a = np.ones(N)
        self.a[:n] = a
        self.E, self.collective = None, collective
        if collective:
            self.E = np.zeros((N, E.shape[1]), dtype)
            self.E[:n] = E
        self.Xs = _csr_csc(X)

    def strip(self, j, T, out):
        return gram_strip(self.Xs, j, T, out, self.a, self.E, self.collective)


def _cholesky_column(store, gram, j, reader, panel, item_ids, timings):
    """Tile column j of L, [L_jj; L[>j, j]], into ``panel`` ((nt − j)·T, T), from A's strip j and
    the L columns k < j in the file."""
    T, m = store.tile, len(panel)
    strips = reader.stream([lambda buf, k=k: store.read_column(k, j, buf[:m])
                            for k in range(j)])
    t = time.perf_counter()  # the first strip loads while the Gram kernel runs
    gram.strip(j, T, panel)
    timings["gram"] += time.perf_counter() - t
    for s in strips:  # A[j:, j] − Σ_k L[j:, k] L[j, k]ᵀ: syrk on the diagonal tile, gemm below
        syrk(panel[:T], s[:T], overwrite=True)
        gemm(panel[T:], s[T:], s[:T], -1.0, 1.0, tb=True, overwrite=True)
    potrf(panel[:T], overwrite=True, row0=j * T, item_ids=item_ids)
    trsm_lt(panel[:T], panel[T:], overwrite=True)
    return panel


def _flops_cholesky(nt, T):
    """Flops of each tile column j of the factor: the updates from its j left columns
    (syrk + gemm), potrf of the diagonal tile and trsm of the tiles below it."""
    return [2.0 * j * (nt - j - 0.5) * T ** 3 + T ** 3 / 3 + (nt - j - 1) * T ** 3
            for j in range(nt)]


def _cholesky(store, gram, start, pool, item_ids, report, hook, timings):
    """L's tile columns start..nt − 1, left to right, each written and checkpointed."""
    T, nt, N, dtype = store.tile, store.nt, store.N, store.dtype
    meter = Meter(report, "cholesky", _flops_cholesky(nt, T), [nt - j for j in range(nt)],
                  start)
    meter.tick(start)
    panel_buf = np.empty((N, T), dtype)
    reader = _Reader(pool, [np.empty((N, T), dtype), np.empty((N, T), dtype)])
    for j in range(start, nt):
        panel = _cholesky_column(store, gram, j, reader, panel_buf[:(nt - j) * T], item_ids,
                                 timings)
        t = time.perf_counter()
        store.write_column(j, j, panel)
        store.commit(cholesky=j + 1)
        timings["write"] += time.perf_counter() - t
        timings["io_wait"] = reader.wait
        meter.tick(j + 1)
        hook("cholesky", j + 1)
    timings["cholesky_gflops"] = meter.rate() / 1e9


def _flops_inverse(nt, T):
    """Flops of each tile column of the inverse, in processing order (j = nt − 1 … 0): Y's
    symmetric product with the m finished columns, its quadratic form, the trsm and P_jj."""
    out = []
    for j in range(nt - 1, -1, -1):
        m = nt - j - 1
        out.append(2.0 * m * m * T ** 3 + 3.0 * m * T ** 3 + 2.0 * T ** 3)
    return out


def _invert(store, gram, start, pool, item_ids, report, hook, timings):
    """P's tile columns from the right, the ``start`` rightmost already done, each written over
    L's column (which nothing later needs) and checkpointed; a torn column is recomputed first."""
    T, nt, N, dtype = store.tile, store.nt, store.N, store.dtype
    meter = Meter(report, "inverse", _flops_inverse(nt, T), list(range(1, nt + 1)), start)
    meter.tick(start)
    panel_buf = np.empty((N, T), dtype)
    l_buf = np.empty((N, T), dtype)
    ljj = np.empty((T, T), dtype)
    reader = _Reader(pool, [np.empty((N, T), dtype), np.empty((N, T), dtype)])
    wait0 = timings["io_wait"]
    for done in range(start, nt):
        j = nt - 1 - done
        m = (nt - j) * T
        panel = panel_buf[:m]
        lcol = l_buf[:m - T]
        if j == store.torn():  # killed while P overwrote this L column: recompute it
            _cholesky_column(store, gram, j, reader, panel, item_ids, timings)
            ljj[...] = panel[:T]
            lcol[...] = panel[T:]
        else:
            store.read_tile(j, j, ljj)
            store.read_column(j, j + 1, lcol)
        # strips right to left: the order in which P's columns are finished, which lets the
        # same sum on a cluster (l3ae.engine.cluster) advance as they come
        strips = reader.stream([lambda buf, k=k: store.read_column(k, k, buf[:(nt - k) * T])
                                for k in range(nt - 1, j, -1)])
        y = panel[T:]
        y[...] = 0
        for k, s in zip(range(nt - 1, j, -1), strips):  # Y = P[>j, >j] L[>j, j]
            symm_strip(y, s, lcol, k, j + 1, overwrite=True)
        if j == nt - 1:
            panel[:T] = potri(ljj)
        else:
            z = gemm(np.zeros((T, T), dtype), lcol, y, 1.0, 0.0, ta=True, overwrite=True)
            trsm_right(ljj, y, alpha=-1.0, overwrite=True)  # P[>j, j] = −Y L_jj⁻¹
            panel[:T] = diag_inverse(ljj, z)
        tw = time.perf_counter()
        store.commit(torn=j)  # from here until the next commit, column j is part L, part P
        store.write_column(j, j, panel)
        store.commit(inverse=done + 1, torn=-1)
        timings["write"] += time.perf_counter() - tw
        timings["io_wait"] = wait0 + reader.wait
        meter.tick(done + 1)
        hook("inverse", done + 1)
    timings["inverse_gflops"] = meter.rate() / 1e9


class _Reader:
    """Runs tile reads one step ahead in a thread: the next strip loads while BLAS (which
    releases the GIL) works on the current one. Two buffers per stream, used alternately."""

    def __init__(self, pool, bufs):
        self.pool, self.bufs, self.wait = pool, bufs, 0.0

    def stream(self, jobs):
        """jobs: callables job(buf) -> array. Starts the first one now; returns an iterator
        of their results in order."""
        jobs = deque(jobs)
        fut = self.pool.submit(jobs.popleft(), self.bufs[0]) if jobs else None
        return self._results(jobs, fut)

    def _results(self, jobs, fut):
        k = 0
        while fut is not None:
            t = time.perf_counter()
            res = fut.result()
            self.wait += time.perf_counter() - t
            k += 1
            fut = self.pool.submit(jobs.popleft(), self.bufs[k % 2]) if jobs else None
            yield res


class TiledP:
    """P = A⁻¹ (n, n) in a tile file: the row source :func:`weights_from_inverse` reads.

    Row blocks are tile rows (T, n), assembled from the lower tiles of tile row I and the
    transposed tiles of tile column I; ``matmul`` is one pass over the lower tiles. Blocks are
    scratch buffers the caller may overwrite (``scratch``). Two buffers take turns: block k + 2
    starts loading into block k's buffer as soon as block k + 1 is asked for, so copy a block
    to keep it.
    """

    scratch = True

    def __init__(self, store: TileFile, timings=None):
        self.store, self.timings = store, timings or {}
        self.shape = (store.n, store.n)
        self.dtype = store.dtype

    @property
    def path(self):
        return self.store.path

    def diagonal(self):
        st, T = self.store, self.store.tile
        out = np.empty(st.N)
        buf = np.empty((T, T), st.dtype)
        for j in range(st.nt):
            out[j * T:(j + 1) * T] = np.diagonal(st.read_tile(j, j, buf))
        return out[:st.n]

    def matmul(self, R):
        """P @ R for R (n, d): each lower tile read once."""
        st, T = self.store, self.store.tile
        N, nt = st.N, st.nt
        Rp = np.zeros((N, R.shape[1]), st.dtype)
        Rp[:st.n] = R
        out = np.zeros_like(Rp)
        with ThreadPoolExecutor(1, thread_name_prefix="l3ae-tiles") as pool:
            reader = _Reader(pool, [np.empty((N, T), st.dtype), np.empty((N, T), st.dtype)])
            strips = reader.stream([lambda buf, k=k: st.read_column(k, k, buf[:(nt - k) * T])
                                    for k in range(nt)])
            for k, s in zip(range(nt), strips):
                symm_strip(out, s, Rp, k, 0, overwrite=True)
        self.timings["io_wait"] = self.timings.get("io_wait", 0.0) + reader.wait
        return out[:st.n]

    def row_blocks(self, block=None):
        """Yields (r0, P[r0 : r0 + T, :n]) for each tile row (``block`` is ignored)."""
        st, T, n, nt = self.store, self.store.tile, self.store.n, self.store.nt
        tmp = np.empty((T, T), st.dtype)

        def assemble(I, buf):
            for k in range(nt):  # P[I, k] = tile (I, k) for k ≤ I, tile (k, I)ᵀ for k > I
                c0, c1 = k * T, min(n, (k + 1) * T)
                if k <= I:
                    st.read_tile(I, k, tmp)
                    buf[:, c0:c1] = tmp[:, :c1 - c0]
                else:
                    st.read_tile(k, I, tmp)
                    buf[:, c0:c1] = tmp.T[:, :c1 - c0]
            return buf

        with ThreadPoolExecutor(1, thread_name_prefix="l3ae-tiles") as pool:
            reader = _Reader(pool, [np.empty((T, n), st.dtype), np.empty((T, n), st.dtype)])
            blocks = reader.stream([lambda buf, I=I: assemble(I, buf) for I in range(nt)])
            for I, blk in zip(range(nt), blocks):
                r0 = I * T
                yield r0, blk[:min(n, r0 + T) - r0]
        self.timings["io_wait"] = self.timings.get("io_wait", 0.0) + reader.wait

    def close(self):
        self.store.close()

    def remove(self):
        self.store.remove()
