"""The exact solve on Dask distributed, with real worker processes (issue 12): a LocalCluster
of 2 processes gives the dense float64 reference and the single-process tiled result with the
same tiles; a worker SIGKILLed mid-build costs nothing but time; the `dask scheduler` /
`dask worker` commands as an ops team starts them; the scheduler gone -> exit 1, nothing
written; --cluster without the extra -> exit 2."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_problem, write_ratings
from test_solve import ref_of

from l3ae.cli import cli
from l3ae.engine import solve_weights
from l3ae.errors import ClusterError, NotPositiveDefiniteError
from l3ae.io.model_file import read_model

distributed = pytest.importorskip("distributed")
from l3ae.engine.cluster import Cluster, ClusterP, choose_tile  # noqa: E402 (the extra)

pytestmark = pytest.mark.slow  # worker processes
BIN = os.path.join(os.path.dirname(sys.executable), "")


@pytest.fixture(scope="module")
def cluster():
    with Cluster("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def prob():
    return random_problem(m=150, n=45, d=5, density=0.15, seed=3)


CASES = [  # (name, kwargs of solve_weights, tile)
    ("ease", dict(reg_x=5.0), 8),
    ("l3ae", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5), 16),
    ("edlae_xi", dict(reg_x=2.0, dropout=0.3, xi=0.05), 7),
    ("l3ae_one_tile", dict(reg_x=-1.0, reg_e=4.0, reg_f=0.5), 64),
]


@pytest.mark.parametrize("name,kw,T", CASES, ids=[c[0] for c in CASES])
def test_cluster_equals_the_dense_reference(cluster, prob, name, kw, T):
    X, E = prob
    ref = ref_of(X, E, kw)
    got = solve_weights(X, E=E, dtype=np.float64, topk=0, cluster=cluster, tile=T, **kw)
    np.testing.assert_allclose(got.B, ref, atol=1e-9, rtol=1e-8)
    assert got.timings["tile"] == T


def test_collective_on_the_cluster_equals_one_machine(cluster, prob):
    X, E = prob
    kw = dict(reg_x=5.0, collective=0.7, dtype=np.float64, topk=0)
    mem = solve_weights(X, E=E, **kw).B
    got = solve_weights(X, E=E, cluster=cluster, tile=10, **kw).B
    np.testing.assert_allclose(got, mem, atol=1e-10)


@pytest.mark.parametrize("n,T,step,prune", [(96, 32, None, "row"), (130, 32, 5, "global"),
                                             (61, 16, None, "row")])
def test_cluster_equals_the_tiled_solve_with_the_same_tiles(cluster, tmp_path, monkeypatch, n,
                                                            T, step, prune):
    """float32, pruned: the same top-k lists and weights within 1e-5 of the row's scale
    (``step``: B's rows made 5 at a time from slices of the tile rows)."""
    monkeypatch.setattr(ClusterP, "rows_per_task", step)
    X, E = random_problem(m=4 * n, n=n, d=6, density=0.1, seed=n)
    E = E.astype(np.float32)
    kw = dict(reg_x=-2.0, reg_e=8.0, reg_f=0.5, dtype=np.float32, topk=12, prune=prune, E=E,
              tile=T)
    one = solve_weights(X, workdir=tmp_path, **kw).B
    many = solve_weights(X, cluster=cluster, **kw).B
    for i in range(n):
        a = set(one.indices[one.indptr[i]:one.indptr[i + 1]])
        b = set(many.indices[many.indptr[i]:many.indptr[i + 1]])
        assert a == b, f"row {i}"
    scale = np.abs(one.toarray()).max(axis=1, keepdims=True)
    assert np.abs((one - many).toarray() / scale).max() <= 1e-5


@pytest.mark.parametrize("step", [None, 5])
def test_slist_on_the_cluster_equals_the_dense_reference(cluster, monkeypatch, step):
    """The order-aware transition term P N and its diagonal, made from P's tiles on the
    workers (``step``: 5 rows a task), against the dense float64 KKT reference."""
    from test_slist import random_sequences, reference

    from l3ae.engine.models import Config, fit_weights

    monkeypatch.setattr(ClusterP, "rows_per_task", step)
    lists, seqs, X = random_sequences(m=70, n=26, seed=2)
    cfg = Config.from_preset("slist", reg_x=5.0, window=3, decay=0.6, topk=0, dtype="float64")
    got = fit_weights(cfg, X, sequences=seqs, cluster=cluster, tile=8).B
    ref, _, _ = reference(lists, X, cfg)
    np.testing.assert_allclose(got, ref, atol=1e-9)


@pytest.mark.parametrize("when", [0.33, 0.97])
def test_a_worker_killed_mid_build_gives_the_same_model(cluster, prob, when):
    """Killed early (tiles of L lost) or late (P's tiles lost: their lineage reaches back to
    X, which must be recomputable, not scattered data that died with its last holder)."""
    X, E = prob
    kw = dict(reg_x=5.0, dtype=np.float64, topk=0, tile=6)
    want = solve_weights(X, E=E, **kw).B
    pids = cluster.client.run(os.getpid)
    killed = []

    def progress(phase, done, total, info=""):
        if phase == "cluster" and not killed and done >= when * total:
            os.kill(next(iter(pids.values())), signal.SIGKILL)  # the nanny starts a new one
            killed.append(done)

    got = solve_weights(X, cluster=cluster, progress=progress, **kw).B
    assert killed, "the progress callback never ran"
    np.testing.assert_allclose(got, want, atol=1e-10)
    cluster.client.wait_for_workers(2, timeout=60)


def test_not_positive_definite_on_a_worker_names_the_item(cluster, prob):
    """The worker's exception reaches the caller as is, naming the item by its id."""
    from l3ae.engine.cluster import cluster_inverse

    X, _ = prob
    a = np.full(X.shape[1], 5.0)
    a[20] = -1e6  # the leading minor of item 20 (tile 2 of 8) fails
    ids = [f"i{j}" for j in range(X.shape[1])]
    with pytest.raises(NotPositiveDefiniteError, match=r"item 'i20' \(#20\)"):
        cluster_inverse(cluster, X, a, dtype=np.float64, tile=8, item_ids=ids)


def test_local_n_x_c_starts_n_processes_of_c_threads():
    with Cluster("local:1x2") as c:
        assert list(c.workers().values())[0][0] == 2 and len(c.workers()) == 1


def test_choose_tile_fills_the_slots_within_memory():
    workers = {"a": (2, 4 << 30), "b": (2, 4 << 30)}
    T = choose_tile(100_000, workers)
    assert 1024 <= T <= 4096 and T % 32 == 0
    small = {"a": (1, 64 << 20)}  # 64 MiB a slot: ~6 float32 tiles within 8 MiB
    assert 6 * choose_tile(100_000, small) ** 2 * 4 <= (64 << 20) / 8 * 1.1


# -- the command line, and the dask commands as ops start them --------------------------------
@pytest.fixture
def ratings(tmp_path):
    return write_ratings(tmp_path / "r.csv", users=300, items=160, per_user=12, seed=5)


def _scheduler(tmp_path, worker=True):
    """`dask scheduler` and one `dask worker` (1 thread) as subprocesses; (address, procs)."""
    sched_file = tmp_path / "scheduler.json"
    s = subprocess.Popen([BIN + "dask", "scheduler", "--scheduler-file", str(sched_file),
                          "--port", "0", "--no-dashboard"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if sched_file.exists() and sched_file.stat().st_size:
            break
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    if not worker:
        return address, s, None
    w = subprocess.Popen([BIN + "dask", "worker", address, "--nthreads", "1", "--no-dashboard",
                          "--memory-limit", "1GiB"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return address, s, w


def test_dask_cli_cluster_builds_the_same_model_and_losing_it_exits_1(tmp_path, ratings):
    address, sched, worker = _scheduler(tmp_path)
    try:
        one = tmp_path / "one.h5"
        r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "ease",
                                     "--topk", "50", "--out", str(one), "-q"])
        assert r.exit_code == 0, r.output
        out = tmp_path / "dask.h5"
        p = subprocess.run([BIN + "l3ae", "build", "--interactions", str(ratings), "--model",
                            "ease", "--topk", "50", "--cluster", address, "--tile", "32",
                            "--out", str(out), "-q"], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        a, b = read_model(one), read_model(out)
        assert a["item_ids"] == b["item_ids"]
        np.testing.assert_array_equal((a["B"] != 0).toarray(), (b["B"] != 0).toarray())
        assert abs(a["B"] - b["B"]).max() <= 1e-5 * abs(a["B"]).max()
        # now the scheduler dies while a bigger build runs on it
        big = write_ratings(tmp_path / "big.csv", users=3000, items=900, per_user=30, seed=1)
        lost = tmp_path / "lost.h5"
        p = subprocess.Popen([BIN + "l3ae", "build", "--interactions", str(big), "--model",
                              "ease", "--cluster", address, "--tile", "32", "--out", str(lost),
                              "-q"], stderr=subprocess.PIPE, text=True)
        for line in sched.stderr:  # the scheduler logs the client's connection
            if "Receive client connection" in line:
                break
        time.sleep(1.5)
        assert p.poll() is None, "the build ended before the scheduler was killed"
        sched.kill()
        err = p.communicate(timeout=180)[1]
        assert p.returncode == 1, err
        assert address in err.strip().splitlines()[-1]
        assert not lost.exists() and not list(tmp_path.glob("lost.h5*"))
    finally:
        for proc in (worker, sched):
            proc.kill()
            proc.wait()


def test_a_scheduler_without_workers_is_waited_for_then_named(tmp_path):
    address, sched, _ = _scheduler(tmp_path, worker=False)
    try:
        with Cluster(address) as c:
            t = time.perf_counter()
            with pytest.raises(ClusterError, match="has no workers.*dask worker"):
                c.workers(wait=2)
            assert time.perf_counter() - t >= 1.5
    finally:
        sched.kill()
        sched.wait()


def test_an_unreachable_scheduler_exits_1_naming_it(tmp_path, ratings):
    out = tmp_path / "m.h5"
    r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "ease",
                                 "--cluster", "tcp://127.0.0.1:9", "--out", str(out), "-q"])
    assert r.exit_code == 1, r.output
    assert "tcp://127.0.0.1:9" in r.output and not out.exists()
    with pytest.raises(ClusterError, match="127.0.0.1:9"):
        Cluster("tcp://127.0.0.1:9", timeout=2)


@pytest.mark.parametrize("extra,needle", [
    (["--cluster", "local:x"], "local:N"),
    (["--cluster", "local:0"], "local:N"),
    (["--cluster", "local:1", "--max-memory", "1G"], "--max-memory"),
    (["--cluster", "local:1", "--resume"], "--resume"),
    (["--cluster", "local:1", "--workdir", "."], "--workdir"),
    (["--cluster", "local:2x0"], "local:NxC"),
])
def test_cluster_flags_refused(tmp_path, ratings, extra, needle):
    r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "ease",
                                 "--out", str(tmp_path / "m.h5"), "-q"] + extra)
    assert r.exit_code == 2 and needle in r.output, r.output


def test_cluster_without_the_extra_exits_2_with_the_install_line(tmp_path, ratings,
                                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "ease",
                                 "--cluster", "local:1", "--out", str(tmp_path / "m.h5")])
    assert r.exit_code == 2 and 'pip install "l3ae[cluster]"' in r.output, r.output


def test_evaluate_and_tune_on_the_cluster_equal_one_machine(tmp_path, ratings):
    base = ["--interactions", str(ratings), "--model", "ease", "-q"]
    outs = []
    for extra in ([], ["--cluster", "local:2", "--tile", "40"]):
        j = tmp_path / f"e{len(outs)}.json"
        r = CliRunner().invoke(cli, ["evaluate", *base, "--json", str(j), *extra])
        assert r.exit_code == 0, r.output
        t = tmp_path / f"t{len(outs)}.json"
        r = CliRunner().invoke(cli, ["tune", *base, "--grid", "reg-x=50,200", "--out",
                                     str(tmp_path / "best.cfg"), "--json", str(t), *extra])
        assert r.exit_code == 0, r.output
        outs.append((json.loads(j.read_text()), json.loads(t.read_text())))
    (e0, t0), (e1, t1) = outs
    for g in e0["test"]:
        for k, v in e0["test"][g].items():
            assert e1["test"][g][k] == pytest.approx(v, abs=1e-6), (g, k)
    assert len(t0["points"]) == len(t1["points"]) and t0["grid"] == t1["grid"]
    for a, b in zip(t0["points"], t1["points"]):
        for k, v in a["metrics"].items():
            assert b["metrics"][k] == pytest.approx(v, abs=1e-6), k


def test_a_model_without_a_solve_refuses_cluster_and_tile(tmp_path, ratings):
    emb = tmp_path / "e.npz"
    ids = [f"i{i}" for i in range(160)]
    np.savez(emb, ids=np.array(ids), embeddings=np.random.default_rng(0).random((160, 4)))
    for extra in (["--cluster", "local:1"], ["--tile", "64"]):
        r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "text",
                                     "--embeddings", str(emb), "--out", str(tmp_path / "m.h5"),
                                     "-q", *extra])
        assert r.exit_code == 2 and extra[0] in r.output and "no n×n" in r.output, r.output


@pytest.mark.parametrize("nt", [1, 2, 5, 9])
def test_graph_reads_only_finished_keys_and_costs_n_cubed(nt):
    """Each task reads keys made before it (submission order is a topological order); P's
    tiles are the lower nt(nt+1)/2; the flops are the factor's n³/3 + the inverse's 2n³/3
    within the O(n²·T) the tiled solve also spends."""
    from l3ae.engine.cluster import graph

    T, seen, flops = 8, set(), 0.0
    for key, op, inputs, f, _ in graph(nt, T):
        assert all(k is None or k in seen for k in inputs), key
        assert key not in seen
        seen.add(key)
        flops += f
    assert {k[1:] for k in seen if k[0] == "P"} == {(i, j) for j in range(nt)
                                                    for i in range(j, nt)}
    n = nt * T
    assert abs(flops - n ** 3) <= n * n * T


def test_tile_alone_runs_the_tiled_solve_on_this_machine(tmp_path, ratings):
    one, tiled = tmp_path / "one.h5", tmp_path / "tiled.h5"
    for out, extra in ((one, []), (tiled, ["--tile", "48"])):
        r = CliRunner().invoke(cli, ["build", "--interactions", str(ratings), "--model", "ease",
                                     "--topk", "50", "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
    assert "tile 48.00" in r.output
    a, b = read_model(one)["B"], read_model(tiled)["B"]
    assert (a != b).nnz == 0 or abs(a - b).max() <= 1e-5 * abs(a).max()
