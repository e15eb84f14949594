"""Out-of-core solve: Gram strips, tiled == in-memory == dense reference, checkpoint and resume,
refusal of foreign or damaged tile files, routing by --max-memory and LAPACK_MAX_N, progress and
the CLI options. (Tile tasks: test_blas.py; the memory plan: test_memory.py.)"""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import dense_ease, random_problem, write_ratings
from test_solve import ref_of

from l3ae.cli import cli
from l3ae.engine import _kernels, memory, solve_weights, tiled
from l3ae.engine.gram import _csr_csc
from l3ae.engine.models import Config
from l3ae.engine.solve import factorize
from l3ae.errors import DataFormatError
from l3ae.io import tiles as tiles_io
from l3ae.model import Recommender

N_ITEMS = 53  # not a multiple of any tile size below


@pytest.fixture(scope="module")
def prob():
    return random_problem(m=160, n=N_ITEMS, d=6, density=0.12, seed=7)


def solve(X, E, tmp_path, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("topk", 0)
    return solve_weights(X, E=E, workdir=tmp_path, **kw)


# -- the Gram strips ---------------------------------------------------------------------------
def test_gram_cols_is_a_block_of_the_lower_gram(prob):
    X, _ = prob
    G = (X.T @ X).toarray()
    args = _csr_csc(X)
    n = X.shape[1]
    for row0, col0, r, c in [(0, 0, n, n), (7, 7, 49, 7), (14, 7, 50, 7), (50, 3, 8, 20)]:
        out = np.zeros((r, c), np.float32)
        _kernels.gram_cols(*args, row0, col0, out)
        want = np.zeros((r, c))
        for ii in range(r):
            for jj in range(c):
                i, j = row0 + ii, col0 + jj
                if i < n and j < n and i >= j:
                    want[ii, jj] = G[i, j]
        np.testing.assert_array_equal(out, want)


# -- tiled == in-memory == dense reference ------------------------------------------------------
CASES = [  # (name, kwargs of solve_weights)
    ("ease", dict(reg_x=5.0)),
    ("l3ae", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5)),
    ("edlae", dict(reg_x=2.0, dropout=0.3)),
    ("rlae", dict(reg_x=5.0, xi=0.05)),
    ("l3ae_xi", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5, xi=0.02)),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_tiled_equals_in_memory_equals_dense_reference(prob, tmp_path, name, kw):
    X, E = prob
    ref = ref_of(X, E, kw)
    mem = solve(X, E, tmp_path, **kw).B
    np.testing.assert_allclose(mem, ref, atol=1e-9, rtol=1e-8)
    for T in (1, 7, 16, 40, 64):  # tiny tiles, n = 53 a multiple of none; 64 > n: one tile
        got = solve(X, E, tmp_path, tile=T, **kw).B
        np.testing.assert_allclose(got, mem, atol=1e-12, rtol=1e-10, err_msg=f"T={T}")
    assert os.listdir(tmp_path) == []  # the tile file is removed after a successful solve


@pytest.mark.parametrize("name,kw", [("collective", dict(reg_x=5.0, collective=0.7)),
                                     ("additive", dict(reg_x=5.0, additive=0.3, reg_f=0.5))])
def test_tiled_fusion_baselines(prob, tmp_path, name, kw):
    X, E = prob
    mem = solve(X, E, tmp_path, **kw).B
    np.testing.assert_allclose(solve(X, E, tmp_path, tile=9, **kw).B, mem, atol=1e-12)


def test_tiled_float32_pruned(prob, tmp_path):
    X, E = prob
    kw = dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5, dtype=np.float32, topk=6)
    mem = solve(X, E.astype(np.float32), tmp_path, **kw)
    got = solve(X, E.astype(np.float32), tmp_path, tile=10, **kw)
    assert got.B.dtype == np.float32 and got.diag.dtype == np.float32
    assert got.B.indptr.dtype == np.int64
    d = (got.B - mem.B).toarray()
    assert np.abs(d).max() <= 5e-4 * np.abs(mem.B.data).max()
    assert (got.B != 0).sum() == (mem.B != 0).sum()


# -- checkpoint and resume ----------------------------------------------------------------------
class Boom(Exception):
    pass


def fail_after(phase, k):
    def hook(ph, done):
        if ph == phase and done == k:
            raise Boom(f"{ph} {done}")
    return hook


L3AE = dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5, topk=8, dtype=np.float32)


def same_csr(a, b):
    return (np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data))


@pytest.fixture(scope="module")
def straight(prob, tmp_path_factory):
    X, E = prob
    return solve_weights(X, E=E, tile=8, workdir=tmp_path_factory.mktemp("w"), **L3AE)


@pytest.mark.parametrize("phase,k", [("cholesky", 1), ("cholesky", 4), ("inverse", 3),
                                     ("inverse", 6), ("weights", 7)])
def test_resume_after_a_failure_is_bit_identical(prob, tmp_path, straight, phase, k):
    X, E = prob
    progress = None
    if phase == "weights":  # P is complete; fails while B streams
        def progress(ph, done, total, info=""):
            if ph == "weights" and done > 20:
                raise Boom("weights")
    with pytest.raises(Boom):
        solve_weights(X, E=E, tile=8, workdir=tmp_path, on_checkpoint=fail_after(phase, k),
                      progress=progress, **L3AE)
    path = tmp_path / "l3ae.tiles.h5"
    with h5py.File(path, "r") as f:
        ck = list(f.attrs["checkpoint"])
    assert ck[:2] == ([k, 0] if phase == "cholesky" else [7, k])
    seen = []
    got = solve_weights(X, E=E, tile=8, workdir=tmp_path, resume=True,
                        on_checkpoint=lambda ph, d: seen.append((ph, d)), **L3AE)
    assert seen[:1] == ([] if phase == "weights" else [(phase, k + 1)])  # nothing redone
    assert same_csr(got.B, straight.B) and np.array_equal(got.diag, straight.diag)
    assert not path.exists()


def test_resume_after_a_torn_column_recomputes_its_factor(prob, tmp_path, straight,
                                                          monkeypatch):
    """Killed while P's column 4 overwrote L's: the resume rebuilds L's column 4 from X."""
    X, E = prob
    real = tiles_io.TileFile.write_column
    calls = {"n": 0}

    def torn(self, j, i0, strip):  # the 3rd column of P dies after one of its tiles
        if self.checkpoint[0] == self.nt:
            calls["n"] += 1
            if calls["n"] == 3:
                real(self, j, self.nt - 1, strip[-self.tile:])
                raise Boom("torn write")
        return real(self, j, i0, strip)

    monkeypatch.setattr(tiles_io.TileFile, "write_column", torn)
    with pytest.raises(Boom):
        solve_weights(X, E=E, tile=8, workdir=tmp_path, **L3AE)
    monkeypatch.setattr(tiles_io.TileFile, "write_column", real)
    with h5py.File(tmp_path / "l3ae.tiles.h5", "r") as f:
        assert list(f.attrs["checkpoint"]) == [7, 2, 4]  # column 4 torn
    got = solve_weights(X, E=E, tile=8, workdir=tmp_path, resume=True, **L3AE)
    assert same_csr(got.B, straight.B)


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from conftest import random_problem
    from l3ae.engine import solve_weights
    from l3ae.io import tiles
    X, E = random_problem(m=160, n={n}, d=6, density=0.12, seed=7)
    real, calls = tiles.TileFile.write_column, [0]
    def dying(self, j, i0, strip):
        calls[0] += 1
        if calls[0] == {kill_at}:  # SIGKILL halfway through a column: nothing gets to clean up
            real(self, j, i0, strip[:len(strip) // 2 // self.tile * self.tile])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, j, i0, strip)
    tiles.TileFile.write_column = dying
    solve_weights(X, E=E, tile=8, workdir={workdir!r}, reg_x=-1.0, reg_e=4.0, reg_f=0.5,
                  topk=8, dtype=np.float32)
""")


@pytest.mark.slow  # a Python process per case
@pytest.mark.parametrize("kill_at", [3, 10])  # during the factor; during the inverse
def test_resume_after_sigkill(prob, tmp_path, straight, kill_at):
    X, E = prob
    code = CHILD.format(tests=os.path.dirname(__file__), n=N_ITEMS, kill_at=kill_at,
                        workdir=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    got = solve_weights(X, E=E, tile=8, workdir=tmp_path, resume=True, **L3AE)
    assert same_csr(got.B, straight.B)


def test_resume_without_a_file_starts_fresh_and_without_resume_a_file_is_replaced(
        prob, tmp_path, straight):
    X, E = prob
    got = solve_weights(X, E=E, tile=8, workdir=tmp_path, resume=True, **L3AE)
    assert same_csr(got.B, straight.B)
    with pytest.raises(Boom):
        solve_weights(X, E=E, tile=8, workdir=tmp_path, on_checkpoint=fail_after("inverse", 2),
                      **L3AE)
    seen = []
    solve_weights(X, E=E, tile=8, workdir=tmp_path, on_checkpoint=lambda *a: seen.append(a),
                  **L3AE)
    assert seen[0] == ("cholesky", 1)


# -- foreign, damaged, other inputs -------------------------------------------------------------
@pytest.fixture
def interrupted(prob, tmp_path):
    X, E = prob
    with pytest.raises(Boom):
        solve_weights(X, E=E, tile=8, workdir=tmp_path, on_checkpoint=fail_after("inverse", 2),
                      **L3AE)
    return tmp_path / "l3ae.tiles.h5"


def resume(prob, path, **over):
    X, E = prob
    kw = dict(L3AE, **over)
    return solve_weights(X, E=E, tile=8, workdir=path.parent, resume=True, **kw)


def test_refuses_a_tile_file_from_other_inputs(prob, interrupted):
    with pytest.raises(DataFormatError, match="made from other inputs.*--resume"):
        resume(prob, interrupted, reg_x=-0.5)
    with pytest.raises(DataFormatError, match="other inputs"):
        resume(prob, interrupted, dtype=np.float64)
    X, E = prob
    X2 = X.tolil()
    X2[0, 0] = 1 - X2[0, 0]
    with pytest.raises(DataFormatError, match="other inputs"):
        solve_weights(X2.tocsr(), E=E, tile=8, workdir=interrupted.parent, resume=True, **L3AE)
    # λ_E and ξ at the same total ridge a = λ_X + λ_E do not change P: the file is reused
    resume(prob, interrupted, reg_x=-2.0, reg_e=5.0)


def test_refuses_foreign_files(prob, tmp_path):
    path = tmp_path / "l3ae.tiles.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(DataFormatError, match="l3ae.tiles.h5: not a readable tile file"):
        resume(prob, path)
    path.unlink()
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "l3ae-model"
    with pytest.raises(DataFormatError, match="not an l3ae tile file"):
        resume(prob, path)


def test_refuses_damaged_files(prob, interrupted):
    data = interrupted.read_bytes()
    # a flipped byte inside a finished tile: caught by its crc32
    with h5py.File(interrupted, "r") as f:
        off = f["tiles"].id.get_chunk_info_by_coord((8, 0)).byte_offset
    raw = bytearray(data)
    raw[off + 100] ^= 0xFF
    interrupted.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="tile \\(1, 0\\) fails its checksum"):
        resume(prob, interrupted)
    # truncated
    interrupted.write_bytes(data[:len(data) // 3])
    with pytest.raises(DataFormatError, match="tiles.h5: (not a readable|damaged)"):
        resume(prob, interrupted)
    # a checkpoint past the end
    interrupted.write_bytes(data)
    with h5py.File(interrupted, "r+") as f:
        f.attrs.modify("checkpoint", np.array([99, 0, -1], np.int64))
    with pytest.raises(DataFormatError, match="damaged tile file \\(checkpoint"):
        resume(prob, interrupted)
    # a newer format
    interrupted.write_bytes(data)
    with h5py.File(interrupted, "r+") as f:
        f.attrs["encoding-version"] = 99
    with pytest.raises(DataFormatError, match="newer"):
        resume(prob, interrupted)


# -- routing, progress -------------------------------------------------------------------------
def test_max_memory_routes_the_solve(prob, tmp_path, monkeypatch):
    X, E = prob
    monkeypatch.setattr(memory, "current_rss", lambda: 0)
    seen = []
    solve(X, E, tmp_path, reg_x=5.0, topk=5, max_memory="70M",
          progress=lambda *a: seen.append(a))
    assert any(s[0] == "cholesky" for s in seen)
    seen.clear()
    solve(X, E, tmp_path, reg_x=5.0, topk=5, max_memory="1G", progress=lambda *a: seen.append(a))
    assert not any(s[0] == "cholesky" for s in seen) and ("factorize", 1, 1) in seen


def test_progress_reports_tiles_gflops_and_eta(prob, tmp_path):
    X, E = prob
    seen = []

    def progress(phase, done, total, info=""):  # the one signature (l3ae.engine.progress)
        seen.append((phase, done, total, info))

    solve(X, E, tmp_path, reg_x=5.0, tile=8, progress=progress)
    chol = [s for s in seen if s[0] == "cholesky"]
    assert chol[-1][1:3] == (28, 28)  # 7 tile columns: 7 + 6 + … + 1 tiles
    assert "GFLOP/s, ETA" in chol[-1][3]
    inv = [s for s in seen if s[0] == "inverse"]
    assert inv[-1][1:3] == (28, 28) and "GFLOP/s, ETA" in inv[-1][3]
    assert seen[-1] == ("weights", N_ITEMS, N_ITEMS, "")


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def ratings(tmp_path):
    return write_ratings(tmp_path / "r.csv", 60, 25, 8)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("bad", ["abc", "0", "-2G", "8X"])
def test_cli_max_memory_parse_errors_exit_2(ratings, tmp_path, bad):
    r = run("build", "--interactions", ratings, "--model", "ease", "--max-memory", bad,
            "--out", tmp_path / "m.h5")
    assert r.exit_code == 2
    assert "Invalid value for '--max-memory'" in r.output and "8G" in r.output
    assert not (tmp_path / "m.h5").exists()


def test_cli_build_out_of_core_and_resume_refusal(ratings, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "current_rss", lambda: 0)
    work = tmp_path / "work"
    args = ["build", "--interactions", ratings, "--model", "ease", "--reg-x", "5",
            "--topk", "5", "--max-memory", "70M", "--workdir", work]
    r = run(*args, "--out", tmp_path / "tiled.h5")
    assert r.exit_code == 0, r.output
    assert "cholesky" in r.output and os.listdir(work) == []
    r = run(*args[:-4], "--out", tmp_path / "mem.h5")
    assert r.exit_code == 0, r.output
    a, b = (Recommender.load(tmp_path / f).B_.toarray() for f in ("tiled.h5", "mem.h5"))
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    (work / "tiled.h5.tiles.h5").write_bytes(b"garbage")
    r = run(*args, "--resume", "--out", tmp_path / "tiled.h5")
    assert r.exit_code == 2
    assert r.output.splitlines()[0].startswith(
        f"Error: {work / 'tiled.h5.tiles.h5'}: not a readable tile file")
    assert "--max-memory" in run("build", "--help").output


def test_factorize_above_the_lapack_limit_uses_tiles_and_cleans_up(monkeypatch, tmp_path):
    """Above LAPACK_MAX_N, factorize (which tune's sweeps call directly) solves on tiles in a
    temporary file: P is the dense float64 inverse, and the file is gone after ``P.remove()``
    and after a sweep."""
    from l3ae import tune as tuning

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary files go
    monkeypatch.setattr(memory, "LAPACK_MAX_N", 16)
    made = []  # every tiled P, to check that its file is gone afterwards
    real = tiled.tiled_inverse
    monkeypatch.setattr(tiled, "tiled_inverse", lambda *a, **k: made.append(real(*a, **k))
                        or made[-1])
    n = 40  # three tiles of 16, the last one padded
    X, _ = random_problem(m=200, n=n, seed=3)
    inv = factorize(X, reg_x=5.0, dtype=np.float64)
    assert isinstance(inv.P, tiled.TiledP) and inv.P.store.tile == 16
    assert os.listdir(tmp_path) == [inv.P.path.name]
    P = np.vstack([blk.copy() for _, blk in inv.P.row_blocks()])  # blocks reuse two buffers
    want = np.linalg.solve((X.T @ X).toarray() + 5.0 * np.eye(n), np.eye(n))
    np.testing.assert_allclose(P, want, rtol=1e-10, atol=1e-14)
    inv.P.remove()
    assert os.listdir(tmp_path) == []

    got = []
    cfg = Config.from_preset("ease", reg_x=5.0, topk=0, dtype="float64")
    res = tuning.sweep([cfg], X, lambda B, cfg: got.append(B) or {})
    assert res[0]["metrics"] == {} and len(made) == 2
    np.testing.assert_allclose(got[0], dense_ease(X, 5.0), atol=1e-12)
    assert os.listdir(tmp_path) == []
