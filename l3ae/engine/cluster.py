"""The exact solve as tasks on Dask distributed (DESIGN §3, "Past one machine").

The tile tasks of :mod:`l3ae.engine.tiled` (the pure functions of :mod:`l3ae.engine.blas`),
submitted one per tile to a Dask scheduler instead of run one strip at a time:

    A_ij   = gram tile of X (sent once, fetched once by each worker) [+ α² E_i E_jᵀ] + Dg(a)
    L_ij   = A_ij − Σ_{k<j} L_ik L_jkᵀ, k ascending (syrk on i = j, gemm below), then
             potrf (i = j) or trsm by L_jj                                  (left-looking order)
    Y_i    = P_ii L_ij + Σ_{i'>i} P_i'iᵀ L_i'j + Σ_{k=i−1…j+1} P_ik L_kj   (i > j, symm_strip's
             order over strips k = nt − 1 … j + 1; the middle sum a pairwise tree)
    P_ij   = −Y_i L_jj⁻¹,   P_jj = L_jj⁻ᵀ (I + z) L_jj⁻¹,  z = Σ_{i>j} L_ijᵀ Y_i (a pairwise
             tree), P_last = potri(L_last)
    B rows = I + α L Vᵀ − P Dg(g) per tile row, pruned to top-k on the worker

The chains of L and Y run in the single-process order, so the same tiles give the same sums up
to BLAS's own blocking and the two trees (which one machine sums inside one GEMM; float32
weights agree within ~1e-6 of a row's largest). The chains take their terms in the order the
terms' inputs are finished, and the sums whose terms are all ready at once are trees, so the
critical path is O(nt) tile steps for the factor and O(nt log nt) for the inverse.

Tiles live in the workers' memory (Dask spills them to the workers' local disks under
pressure). A worker lost mid-build costs what it held, which the scheduler recomputes from
lineage (the client keeps futures of P's tiles, so their whole history stays known to the
scheduler; X and the other inputs are tasks that return them, not scattered data, so they too
are made again when their last holder dies). Tasks never modify their inputs: a recomputation
sees what the first run saw. One
BLAS thread per task: Dask's nanny starts workers with OMP/OPENBLAS/MKL_NUM_THREADS = 1, and
the Gram task sets numba's threads to 1.

The client sends tasks and receives only B's pruned rows (and P's diagonal, and P·R for the
semantic term); :func:`l3ae.engine.solve.weights_from_inverse` then writes the model as on one
machine.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
import warnings
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from l3ae.engine import blas
from l3ae.engine.gram import _csr_csc
from l3ae.engine.progress import hms, ignore
from l3ae.engine.prune import prune_block
from l3ae.engine.rows import b_rows, diag_product_rows
from l3ae.errors import ClusterError, ConfigError

INSTALL = 'pip install "l3ae[cluster]"'
_LOST = ("CancelledError", "CommClosedError")  # asyncio's / distributed's, by name: no import


# -- connecting ------------------------------------------------------------------------------
class Cluster:
    """A connection to Dask for the length of one command (a context manager).

    address : "tcp://host:8786" (a running ``dask scheduler``), "local:N" (a LocalCluster of
    N worker processes, one thread each, on this machine) or "local:NxC" (C threads each).
    ``.client`` is the distributed.Client.
    """

    def __init__(self, address, timeout=10):
        try:
            import distributed
        except ImportError:
            raise ConfigError(f"--cluster needs dask and distributed: {INSTALL}") from None
        self.address, self.local = str(address), None
        if self.address.startswith("local:"):
            m = re.fullmatch(r"local:(\d+)(?:x(\d+))?", self.address)
            if not m or int(m.group(1)) < 1 or int(m.group(2) or 1) < 1:
                raise ConfigError(f"--cluster {self.address}: expected local:N (N worker "
                                  "processes of one thread on this machine), local:NxC (C "
                                  "threads each), or a scheduler address tcp://host:8786")
            self.local = distributed.LocalCluster(
                n_workers=int(m.group(1)), threads_per_worker=int(m.group(2) or 1),
                processes=True, dashboard_address=None, silence_logs=logging.ERROR,
                scheduler_kwargs={"dashboard_address": ":0"})  # its HTTP routes: any free port
            self.client = distributed.Client(self.local)
        else:
            try:
                self.client = distributed.Client(self.address, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                why = " ".join(str(exc).split())
                raise ClusterError(f"cannot reach the Dask scheduler at {self.address}"
                                   + (f": {why}" if why else "")) from None

    def workers(self, wait=60):
        """{address: (threads, memory_limit bytes)} of the workers, waiting up to ``wait``
        seconds for a first one (workers started beside the command take a moment to join)."""
        info = self.client.scheduler_info()["workers"]
        if not info:
            try:
                self.client.wait_for_workers(1, timeout=wait)
            except TimeoutError:
                raise ClusterError(f"the Dask scheduler at {self.address} has no workers "
                                   f"(waited {wait} s): start `dask worker {self.address}`"
                                   ) from None
            info = self.client.scheduler_info()["workers"]
        return {a: (w["nthreads"], w.get("memory_limit") or 0) for a, w in info.items()}

    def lost(self, exc):
        """The ClusterError to raise for a failure of the connection itself."""
        why = " ".join(str(exc).split())  # one line
        return ClusterError(f"lost the Dask scheduler at {self.address} during the build "
                            f"({type(exc).__name__}{': ' if why else ''}{why})")

    @contextmanager
    def guard(self):
        """Failures of the connection (scheduler gone, tasks cancelled with it) as one
        ClusterError naming the address; the tasks' own errors pass through."""
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, (OSError, TimeoutError)) or any(
                    c.__name__ in _LOST for c in type(exc).__mro__):
                raise self.lost(exc) from None
            raise

    def close(self):
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001 - closing a dead connection must not hide the cause
            pass
        if self.local is not None:
            self.local.close(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def choose_tile(n, workers, itemsize=4):
    """T for n items on ``workers`` ({address: (threads, memory_limit)}): about three tile
    columns per task slot keep the slots busy, a tile of at least 1024 keeps one-thread GEMMs
    near their peak, at most 4096, and a task's ~6 tiles stay within 1/8 of a slot's memory."""
    slots = max(1, sum(t for t, _ in workers.values()))
    mem = min((m / max(t, 1) for t, m in workers.values() if m), default=0)
    T = int(np.clip(n / (3 * slots), 1024, 4096))
    if mem:
        T = min(T, int(np.sqrt(mem / 8 / (6 * itemsize))))
    T = max(128, min(T, max(n, 1)))
    nt = -(-n // T)
    return -(-(-(-n // nt)) // 32) * 32  # balanced over nt tiles, a multiple of 32


# -- the tasks (run on the workers) ----------------------------------------------------------
# numba's parallel kernels (Gram, top-k) run one at a time in a worker process: its workqueue
# threading layer (the one left without TBB or OpenMP) aborts on launches from two threads
_NUMBA = threading.Lock()


def _gram_tile(Xs, i, j, T, dtype, a_j, E_i, E_j, collective):
    """Tile (i, j), i ≥ j, of A = G + Dg(a) [+ α² E Eᵀ] (lower part on i = j)."""
    import numba

    from l3ae.engine import _kernels

    out = np.zeros((T, T), dtype)
    with _NUMBA:
        numba.set_num_threads(1)
        _kernels.gram_cols(*Xs, i * T, j * T, out)
    if collective:
        blas.gemm(out, E_i, E_j, collective ** 2, 1.0, tb=True, overwrite=True)
    if i == j:
        r = np.arange(T)
        out[r, r] += a_j.astype(dtype)
    return out


def _update(acc, l_ik, l_jk, diagonal):
    """acc − L_ik L_jkᵀ (syrk on a diagonal tile): one step of a left-looking tile chain."""
    if diagonal:
        return blas.syrk(acc, l_ik)
    return blas.gemm(acc, l_ik, l_jk, tb=True)


def _potrf(acc, row0, item_ids):
    return blas.potrf(acc, row0=row0, item_ids=item_ids)


def _trsm(ljj, acc):
    return blas.trsm_lt(ljj, acc)


def _y(y, p, l, transposed):
    """y + P_ik L_kj, or y + P_i'iᵀ L_i'j (``transposed``); y None: the first term of
    Y_i = P[i, >j] L[>j, j]."""
    if y is None:
        y = np.zeros((p.shape[1] if transposed else p.shape[0], l.shape[1]), p.dtype)
    return blas.gemm(y, p, l, 1.0, 1.0, ta=transposed)


def _z_add(z, l_ij, y_i):
    """z + L_ijᵀ Y_i (z None: the first term): the quadratic form of P_jj."""
    if z is None:
        z = np.zeros((l_ij.shape[1], y_i.shape[1]), y_i.dtype)
    return blas.gemm(z, l_ij, y_i, 1.0, 1.0, ta=True)


def _p_off(ljj, y_i):
    return blas.trsm_right(ljj, y_i, alpha=-1.0)


def _p_diag(ljj, z):
    return blas.potri(ljj) if z is None else blas.diag_inverse(ljj, z)


def _diag(tile):
    return np.diagonal(tile).copy()


def _p_rows(parts, n, T):
    """Rows of P (r, n) from the parts of a tile row, [(tile, transposed), …] for
    k = 0..nt − 1: the tile (T, T) or its transpose, or (``_rows_of``) r of its rows."""
    t0, tr0 = parts[0]
    out = np.empty((t0.shape[1] if tr0 else t0.shape[0], n), t0.dtype)
    for k, (t, tr) in enumerate(parts):
        c0, c1 = k * T, min(n, (k + 1) * T)
        out[:, c0:c1] = (t.T if tr else t)[:, :c1 - c0]
    return out


def _rows_of(tile, transposed, r0, r1):
    """Rows r0 : r1 of a tile (or of its transpose): a slice of a tile row, so that a B task
    holds (r1 − r0)·n of P instead of T·n."""
    return np.ascontiguousarray((tile.T if transposed else tile)[r0:r1])


def _matmul_rows(tiles, R_blocks, n, T):
    """P[I, :] R for tile row I: Σ_k op(tile) R_k, R_k the (T, d) blocks of R (padded)."""
    out = np.zeros((T, R_blocks[0].shape[1]), R_blocks[0].dtype)
    for (t, tr), r in zip(tiles, R_blocks):
        blas.gemm(out, t, r, 1.0, 1.0, ta=tr, overwrite=True)
    return out


def _b_rows(parts, n, T, r0, rows, g, L_rows, V, alpha, diag_b, ks, N):
    """Rows r0 : r0 + rows of B from P's rows (``_p_rows``; see rows.b_rows); pruned when
    ``ks``."""
    import numba

    p = _p_rows(parts, n, T)[:rows]
    with _NUMBA:  # b_rows runs a numba kernel when N is given
        numba.set_num_threads(1)
        blk = b_rows(p, r0, g, diag_b, L_rows, V, alpha, overwrite=True, N=N)
        return blk if ks is None else prune_block(blk, r0, ks)


def _diag_product_rows(parts, n, T, Nt_rows):
    """(P N)_jj for the rows j of one tile row (see rows.diag_product_rows)."""
    return diag_product_rows(_p_rows(parts, n, T)[:Nt_rows.shape[0]], Nt_rows)


def _value(x):
    return x


def _put(client, obj, name):
    """``obj`` on the cluster as the result of a task that returns it: the scheduler keeps the
    task, so a copy lost with a worker is made again (scattered data would be gone for good
    once the last worker holding it dies, and every tile's lineage starts from X)."""
    with warnings.catch_warnings():  # "large object in the task graph": that is the point
        warnings.simplefilter("ignore", UserWarning)
        return client.submit(_value, obj, key=f"l3ae-{name}-{uuid.uuid4().hex[:12]}",
                             pure=False)


# -- the graph -------------------------------------------------------------------------------
def graph(nt, T, d=0):
    """The tasks of the exact solve on nt × nt tiles of size T, in submission order (the
    single-process order: the factor's tile columns left to right, then the inverse's right to
    left). Yields (key, op, inputs, flops, params): key a tuple ("A"|"L"|"Y"|"Z"|"P", i, j[, k]),
    op a name of :data:`OPS`, inputs the keys of its input tiles in argument order (None: no
    input yet), params its other arguments. The client submits it; bench/distributed.py
    replays it in its cost model. d : embedding columns of the collective Gram term (flops)."""
    T3 = float(T) ** 3
    for j in range(nt):
        last = {}
        for i in range(j, nt):
            key = ("A", i, j, -1)
            yield key, "gram", (), 2.0 * T * T * d, dict(i=i, j=j)
            for k in range(j):  # A_ij − Σ_k L_ik L_jkᵀ, k ascending
                prev, key = key, ("A", i, j, k)
                yield key, "update", (prev, ("L", i, k), ("L", j, k)), \
                    (T3 if i == j else 2 * T3), dict(diagonal=i == j)
            last[i] = key
        yield ("L", j, j), "potrf", (last[j],), T3 / 3, dict(row0=j * T)
        for i in range(j + 1, nt):
            yield ("L", i, j), "trsm", (("L", j, j), last[i]), T3, {}
    for j in range(nt - 1, -1, -1):
        ys = {}
        for i in range(j + 1, nt):
            # Y_i: strip i's terms P_ii L_ij and Σ_{i'>i} P_i'iᵀ L_i'j (all of P's column i),
            # then P_ik L_kj for k = i − 1 … j + 1, in the order the inverse finishes column k:
            # each chain advances as columns come and is one step from done when column j + 1
            # is. The column-i sum is a pairwise tree: as a chain it would be nt − j − 1 steps
            # after column j + 1 for i = j + 1, a critical path of nt²/2 steps over the inverse.
            y = ("Y", i, j, i)
            yield y, "y", (None, ("P", i, i), ("L", i, j)), 2 * T3, dict(transposed=False)
            leaves = []
            for i2 in range(i + 1, nt):
                leaves.append(("Yt", i, j, 0, i2))
                yield leaves[-1], "y", (None, ("P", i2, i), ("L", i2, j)), 2 * T3, \
                    dict(transposed=True)
            if leaves:
                root = yield from _tree(("Yt", i, j), leaves, T)
                prev, y = y, ("Y", i, j, nt)
                yield y, "add", (prev, root), float(T * T), {}
            for k in range(i - 1, j, -1):
                prev, y = y, ("Y", i, j, k)
                yield y, "y", (prev, ("P", i, k), ("L", k, j)), 2 * T3, dict(transposed=False)
            ys[i] = y
        leaves = []  # z = Σ_i L_ijᵀ Y_i, a pairwise tree too
        for i in range(j + 1, nt):
            leaves.append(("Z", j, 0, i))
            yield leaves[-1], "z", (None, ("L", i, j), ys[i]), 2 * T3, {}
        z = (yield from _tree(("Z", j), leaves, T)) if leaves else None
        for i in range(j + 1, nt):
            yield ("P", i, j), "p_off", (("L", j, j), ys[i]), T3, {}
        yield ("P", j, j), "p_diag", (("L", j, j), z), (2 * T3 if z else T3 / 3), {}


def _tree(prefix, level, T):
    """Pairwise sums of the tiles ``level`` (keys), as "add" tasks; returns the root's key."""
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for a in range(0, len(level) - 1, 2):
            nxt.append(prefix + (depth, a))
            yield nxt[-1], "add", (level[a], level[a + 1]), float(T * T), {}
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]


# the function of each op (the Gram tile is _gram_tile, given X and E beside its inputs)
OPS = {"gram": None, "update": _update, "potrf": _potrf, "trsm": _trsm, "y": _y,
       "z": _z_add, "add": np.add, "p_off": _p_off, "p_diag": _p_diag}


def _uses(nt, T):
    """How many tasks read each key (a future is dropped after its last reader is submitted,
    so that the workers free what nothing else needs)."""
    uses = {}
    for _, _, inputs, _, _ in graph(nt, T):
        for k in inputs:
            if k is not None:
                uses[k] = uses.get(k, 0) + 1
    return uses


def _wait(pending, flops, report, cluster):
    """Wait for the futures of ``pending`` (a distributed.as_completed, the only holder of
    intermediate results), reporting tasks done, GFLOP/s and ETA ("cluster")."""
    total, done, work, all_flops = pending.count(), 0, 0.0, sum(flops.values())
    t0 = time.perf_counter()
    with cluster.guard():
        for f in pending:
            if f.status != "finished":
                f.result()  # the task's own exception (e.g. not positive definite)
            done += 1
            work += flops.pop(f.key, 0.0)
            dt = time.perf_counter() - t0
            rate = work / dt if dt > 0 else 0.0
            eta = (all_flops - work) / rate if rate > 0 else float("nan")
            if done == total or done % max(1, total // 200) == 0:
                report("cluster", done, total, f"{rate / 1e9:.0f} GFLOP/s, ETA {hms(eta)}")
            del f


def cluster_inverse(cluster, X, a, *, dtype, tile=None, E=None, collective=0.0, item_ids=None,
                    progress=None):
    """P = (G + Dg(a) [+ α² E Eᵀ])⁻¹ on the cluster's workers; returns a :class:`ClusterP`.

    cluster : a :class:`Cluster`; X : (m, n) sparse binary; a : (n,) float64 > 0; dtype :
    float32 or float64; tile : T (None: :func:`choose_tile` from the workers' memory).
    progress : callback(phase, done, total, info) over the tasks ("cluster").
    """
    client, report = cluster.client, progress or ignore
    X = sp.csr_matrix(X)
    n = X.shape[1]
    dtype = np.dtype(dtype)
    with cluster.guard():
        workers = cluster.workers()
    T = int(tile) if tile else choose_tile(n, workers, dtype.itemsize)
    nt = -(-n // T)
    a_pad = np.ones(nt * T)
    a_pad[:n] = a
    E_pad = None
    if collective:
        E_pad = np.zeros((nt * T, E.shape[1]), dtype)
        E_pad[:n] = E
    t0 = time.perf_counter()
    token = uuid.uuid4().hex[:8]
    with cluster.guard():  # X once to every worker; the ids only name a failing item
        Xs, ids = _put(client, _csr_csc(X), "X"), _put(client, item_ids, "ids")
    from distributed import as_completed

    uses, live, pending, flops = _uses(nt, T), {}, as_completed(), {}
    d = E.shape[1] if collective else 0
    def rows_of_E(r):
        return E_pad[r * T:(r + 1) * T] if collective else None

    for key, op, inputs, f, prm in graph(nt, T, d):
        args = [None if k is None else live[k] for k in inputs]
        if op == "gram":
            i, j = prm["i"], prm["j"]
            fn, args = _gram_tile, [Xs, i, j, T, dtype, a_pad[j * T:(j + 1) * T], rows_of_E(i),
                                    rows_of_E(j), collective]
        else:
            fn = OPS[op]
            args += ([prm["diagonal"]] if op == "update" else [prm["transposed"]] if op == "y"
                     else [prm["row0"], ids] if op == "potrf" else [])
        fut = client.submit(fn, *args, key=f"l3ae-{'_'.join(map(str, key))}-{token}",
                            pure=False)
        live[key] = fut
        pending.add(fut)
        flops[fut.key] = f
        for k in inputs:  # drop a future after its last reader: the workers free its tile
            if k is not None and k[0] != "P":
                uses[k] -= 1
                if uses[k] == 0:
                    del live[k]
    del args, fut
    tasks, work, submitted = len(flops), sum(flops.values()), time.perf_counter() - t0
    _wait(pending, flops, report, cluster)
    P = {k[1:]: v for k, v in live.items() if k[0] == "P"}
    secs = time.perf_counter() - t0
    timings = {"factorize": secs, "tile": float(T), "tasks": float(tasks), "submit": submitted,
               "cluster_gflops": work / secs / 1e9, "workers": float(len(workers))}
    return ClusterP(cluster, P, n, T, dtype, timings)


class ClusterP:
    """P = A⁻¹ (n, n) as tiles on the workers: the row source of
    :func:`l3ae.engine.solve.weights_from_inverse` (``diagonal``, ``matmul``), whose B rows are
    computed and pruned on the workers (``fill_weights``)."""

    scratch = True
    rows_per_task = None  # B rows a task makes (None: ~256 MiB of P's rows)

    def __init__(self, cluster, tiles, n, T, dtype, timings):
        self.cluster, self.tiles, self.T = cluster, tiles, T
        self.nt = -(-n // T)
        self.shape, self.dtype, self.timings = (n, n), np.dtype(dtype), timings

    def _row(self, I):
        """Tile row I as [(future, transposed)]: lower tiles (I, k), k ≤ I, else (k, I)ᵀ."""
        return [(self.tiles[I, k], False) if k <= I else (self.tiles[k, I], True)
                for k in range(self.nt)]

    def _gather(self, futures):
        with self.cluster.guard():
            return [f.result() for f in futures]

    def diagonal(self):
        c = self.cluster.client
        parts = self._gather([c.submit(_diag, self.tiles[j, j], pure=False)
                              for j in range(self.nt)])
        return np.concatenate(parts)[:self.shape[0]].astype(np.float64)

    def matmul(self, R):
        """P @ R for R (n, d), by tile rows on the workers."""
        c, n, T = self.cluster.client, self.shape[0], self.T
        Rp = np.zeros((self.nt * T, R.shape[1]), self.dtype)
        Rp[:n] = R
        with self.cluster.guard():
            blocks = [_put(c, Rp[k * T:(k + 1) * T], "R") for k in range(self.nt)]
        out = self._gather([c.submit(_matmul_rows, self._row(I), blocks, n, T, pure=False)
                            for I in range(self.nt)])
        return np.concatenate(out)[:n]

    def diag_product(self, N):
        """diag(P N) (n,) float64 for N (n, n) sparse, by tile rows on the workers."""
        c, n, T = self.cluster.client, self.shape[0], self.T
        Nt = sp.csr_matrix(N.T)
        out = self._gather([c.submit(_diag_product_rows, self._row(I), n, T,
                                     Nt[I * T:(I + 1) * T], pure=False)
                            for I in range(self.nt)])
        return np.concatenate(out)[:n].astype(np.float64)

    def fill_weights(self, args, pruner, dense, report):
        """B's rows on the workers, ``rows_per_task`` at a time (default: ~256 MiB of P's rows
        a task): pruned there (``pruner``) or whole (``dense``)."""
        from distributed import as_completed

        c, n, T = self.cluster.client, self.shape[0], self.T
        t = time.perf_counter()
        g, V, L, diag_b, alpha, N = (args[k] for k in ("g", "V", "L", "diag_b", "alpha", "N"))
        step = self.rows_per_task or max(1, min(T, (256 << 20) // (n * self.dtype.itemsize)))
        with self.cluster.guard():
            g_f, V_f = _put(c, g, "g"), (_put(c, V, "V") if V is not None else None)
            N_f = _put(c, N, "N") if N is not None else None
        rows = {}
        for I in range(self.nt):
            row = self._row(I)
            for a in range(I * T, min(n, (I + 1) * T), step):
                b = min(n, (I + 1) * T, a + step)
                parts = row if step >= T else [
                    (c.submit(_rows_of, f, tr, a - I * T, b - I * T, pure=False), False)
                    for f, tr in row]
                f = c.submit(_b_rows, parts, n, T, a, b - a, g_f,
                             None if L is None else L[a:b], V_f, alpha, diag_b[a:b],
                             None if pruner is None else pruner.ks[a:b], N_f, pure=False)
                rows[f.key] = (f, a, b)
        with self.cluster.guard():
            pending = as_completed([f for f, _, _ in rows.values()])
            for k, f in enumerate(pending):
                _, a, b = rows.pop(f.key)
                res = f.result()
                if pruner is None:
                    dense[a:b] = res
                else:
                    pruner.put(a, *res)
                report("weights", k + 1, k + 1 + len(rows))
                del f, res
        self.timings["cluster_weights"] = time.perf_counter() - t

    def close(self):
        self.tiles = {}

    remove = close
