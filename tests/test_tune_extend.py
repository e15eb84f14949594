"""`tune` past the edge of its grid: the widening step, the rounds (on a planted optimum beyond
the grid), the grid recorded, --no-extend's hint, and the default slist tune on a directed chain
(bench/chain.py's catalog) against tuned EASE."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import random_problem

from l3ae import api, tune
from l3ae.cli import cli
from l3ae.engine.models import Config
from l3ae.evaluation import random_split

# bench/chain.py loaded by path: bench/ on sys.path would shadow packages (its distributed.py)
_spec = importlib.util.spec_from_file_location(
    "bench_chain", Path(__file__).resolve().parents[1] / "bench" / "chain.py")
chain_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chain_bench)
BEFORE, chain_sequences, write_sequences = (chain_bench.BEFORE, chain_bench.chain_sequences,
                                            chain_bench.write_sequences)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("name,tried,at,want", [
    ("reg_x", [10, 100, 400], 10, (1.0, "down")),       # ridges: the grid's ratio at that edge
    ("reg_x", [10, 100, 400], 400, (1600.0, "up")),
    ("reg_x", [10, 100, 400], 100, None),                # inside: no edge
    ("reg_x", [-100, 0, 100], -100, (-200.0, "down")),   # not all > 0: the difference
    ("recency", [1, 0.7, 0.4], 0.4, (0.1, "down")),
    ("recency", [1, 0.7, 0.1], 0.1, (0.05, "down")),     # (0, 1]: halfway to the excluded 0
    ("recency", [1, 0.7], 1, None),                      # at the included bound
    ("alpha", [0, 0.2, 0.5], 0, None),
    ("alpha", [0.5, 0.8], 0.8, (1.0, "up")),             # a step past 1 stops at it
    ("dropout", [0.3, 0.5], 0.5, (0.7, "up")),
    ("dropout", [0.5, 0.9], 0.9, (0.95, "up")),          # dropout < 1
    ("window", [3, 5], 3, (1.0, "down")),
    ("window", [1, 3], 1, None),                         # window >= 1
    ("xi", [0.0, 0.1], 0.1, (0.2, "up")),
    ("reg_x", [100], 100, None),                         # one value: a fixed knob, not a grid
    ("topk", [100, 500], 500, None),                     # a size, never widened
])
def test_widen_steps_by_the_grids_own_step_within_the_knobs_range(name, tried, at, want):
    assert tune.widen(name, [float(v) for v in tried], float(at)) == want


def test_the_collective_alpha_is_a_scale_not_a_share():
    cfg = Config.from_preset("collective")
    assert tune.widen("alpha", [0.3, 1.0, 3.0], 3.0, cfg) == (9.0, "up")
    assert tune.widen("alpha", [0.3, 1.0, 3.0], 0.3, cfg) == pytest.approx((0.09, "down"))


@pytest.fixture
def planted():
    """A split and a scorer whose validation metric peaks at reg_x = 1e4 (the planted optimum,
    past the grid's 10..100), falling off as |log10(reg_x / 1e4)|, and at xi = 0.1."""
    X, _ = random_problem(m=60, n=12, density=0.3, seed=2)
    X = sp.coo_matrix(X)
    split = random_split(X.row, X.col, X.shape, seed=0)

    def score(B, cfg):
        return {"recall@20": -abs(np.log10(cfg.reg_x / 1e4)) - abs(cfg.xi - 0.1)}
    return split, score


def test_rounds_widen_until_the_planted_optimum_past_the_edge(planted):
    split, score = planted
    base = Config.from_preset("rlae", topk=0)
    grid = {"reg_x": [10.0, 100.0], "xi": [0.1, 0.2]}
    found = tune.search(base, tune.grid_configs(base, grid), list(grid), split.train, score,
                        "recall@20")
    # reg_x 100 steps by the grid's ×10; xi 0.1 is the lowest tried and widens to 0, its
    # bound, which is worse: the later rounds hold it at 0.1
    assert found["best"]["config"].reg_x == 1e4 and found["best"]["config"].xi == 0.1
    assert [r["values"] for r in found["rounds"]] == [
        {"reg_x": [10.0, 100.0], "xi": [0.1, 0.2]}, {"reg_x": [1000.0], "xi": [0.0]},
        {"reg_x": [1e4]}, {"reg_x": [1e5]}]
    assert [r["round"] for r in found["results"]] == [1] * 4 + [2, 2, 3, 4]
    assert found["grid"] == {"reg_x": [10.0, 100.0, 1000.0, 1e4, 1e5], "xi": [0.0, 0.1, 0.2]}
    assert found["edges"] == []  # 1e5 was worse: the optimum lies inside what was searched


def test_the_rounds_stop_at_the_cap_and_say_what_is_still_on_the_edge(planted):
    split, _ = planted
    base = Config.from_preset("ease", topk=0)
    lines = []
    found = tune.search(base, tune.grid_configs(base, {"reg_x": [1.0, 2.0]}), ["reg_x"],
                        split.train, lambda B, cfg: {"recall@20": cfg.reg_x}, "recall@20",
                        note=lines.append)
    assert len(found["rounds"]) == 1 + tune.EXTEND_ROUNDS
    assert found["grid"]["reg_x"] == [2.0 ** k for k in range(2 + tune.EXTEND_ROUNDS)]
    assert found["edges"] == [f"best reg-x {2 ** 5:g} is the highest tried: widen it up, e.g. "
                              "--grid reg-x=1,2,4,8,16,32,64"]
    assert lines[-1] == found["edges"][0] + " (still on the edge after 5 rounds)"


def test_no_extend_names_the_knob_and_its_direction(planted):
    split, score = planted
    base = Config.from_preset("ease", topk=0)
    lines = []
    found = tune.search(base, tune.grid_configs(base, {"reg_x": [10.0, 100.0]}), ["reg_x"],
                        split.train, score, "recall@20", extend=False, note=lines.append)
    assert len(found["rounds"]) == 1 and len(found["results"]) == 2
    assert lines == ["best reg-x 100 is the highest tried: widen it up, e.g. "
                     "--grid reg-x=10,100,1000"]


def test_a_knob_shut_out_by_another_is_reset_there_and_refused_only_if_it_never_enters():
    base = Config.from_preset("slist")
    configs = tune.grid_configs(base, {"alpha": [0.5, 1.0], "window": [3, 5]})
    # at alpha 1 (SLIS) the window does not enter: one point, not two
    assert sorted((c.alpha, c.window) for c in configs) == [(0.5, 3), (0.5, 5), (1.0, 0)]
    with pytest.raises(Exception, match="--window 3: the prefix window"):
        tune.grid_configs(base, {"alpha": [1.0], "window": [3, 5]})


def test_every_default_grid_builds_and_holds_its_presets_point():
    for model in tune.GRIDS:
        for ordered in (False, True):
            grid = tune.default_grid(model, ordered)
            configs = tune.grid_configs(Config.from_preset(model), grid)
            assert len(configs) == len(set(configs)) > 1
            assert ("recency" in tune.grid_names(grid)) == (ordered or model == "slist")
    # slist: the preset's own point (FAERec's λ 100, α 0.5, window 5) is in the first round,
    # with α from 0 to 1 and λ down to 10, in 12 factorizations (the grid before had 4)
    slist = tune.grid_configs(Config.from_preset("slist"), tune.default_grid("slist"))
    assert Config.from_preset("slist").replace(xi=0.1) in slist
    assert {c.alpha for c in slist} == {0.0, 0.2, 0.5, 1.0} and min(c.reg_x for c in slist) == 10
    assert len({(c.reg_x, c.alpha, c.window) for c in slist}) == 12


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return write_sequences(tmp_path_factory.mktemp("chain") / "chain.txt",
                           chain_sequences(300, 900, seed=0))


def test_default_slist_tune_beats_tuned_ease_on_a_directed_chain(chain):
    data = api.Data(interactions=str(chain), fmt="sequences")
    hr = {}
    for model in ("ease", "slist"):
        run = api.tune(data, Config.from_preset(model), regime={"protocol": "loo"}, quiet=True)
        res = api.evaluate(data, run["best"]["config"], regime={"protocol": "loo"}, quiet=True)
        hr[model] = res["test"]["all"]["hr@10"]
        assert run["grid"]["recency"][0] < 1  # both tuned with recency: order-aware scoring
    assert run["best"]["config"].alpha < 1  # slist's pick learns from the transitions
    assert hr["slist"] >= 1.12 * hr["ease"], hr
    # the grid before issue 23 (λ {100, 400}, α {0.5, 1}) stopped short of it on validation
    before = api.tune(data, Config.from_preset("slist"), BEFORE["slist"],
                      regime={"protocol": "loo"}, extend=False, quiet=True)
    assert before["best"]["metrics"]["hr@10"] < run["best"]["metrics"]["hr@10"]


def test_cli_reports_rounds_and_records_every_searched_value(chain, tmp_path):
    js, out = tmp_path / "search.json", tmp_path / "best.json"
    r = run("tune", "--interactions", chain, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--grid", "reg-x=1,3", "--out", out, "--json", js, "-q")
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert r.stderr.startswith("round 2: the best hr@10 ")
    assert "trying reg-x 9 (up)" in r.stderr.splitlines()[0]
    assert len(doc["rounds"]) >= 2 and doc["rounds"][1]["values"] == {"reg_x": [9.0]}
    # the grid recorded is every value of every point, of every round
    assert doc["grid"]["reg_x"] == sorted({p["config"]["reg_x"] for p in doc["points"]})
    assert {p["round"] for p in doc["points"]} == set(range(1, len(doc["rounds"]) + 1))
    assert json.loads(out.read_text()) == max(
        doc["points"], key=lambda p: p["metrics"]["hr@10"])["config"]
    r = run("tune", "--interactions", chain, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--grid", "reg-x=1,3", "--out", out, "--no-extend", "-q")
    assert r.exit_code == 0 and r.stderr.splitlines()[0] == (
        "best reg-x 3 is the highest tried: widen it up, e.g. --grid reg-x=1,3,9")


@pytest.mark.parametrize("argv,line", [
    (["--grid", "reg-x=1,a"], "Error: --grid 'reg-x=1,a': values must be numbers"),
    (["--grid", "reg-x"], "Error: --grid takes NAME=V1,V2,…, got 'reg-x'"),
    (["--grid", "lambda=1,2"], "Error: unknown grid names ['lambda']; use Config fields or "
                               "'total'"),
    (["--grid", "recency=0,1"], "Error: recency must be in (0, 1], got 0.0"),
    (["--random", "-1"], "Error: Invalid value for '--random': -1 is not in the range x>=0."),
])
def test_bad_grid_input_exits_2_with_one_line(chain, tmp_path, argv, line):
    r = run("tune", "--interactions", chain, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--out", tmp_path / "b.json", *argv)
    assert r.exit_code == 2 and r.stderr.splitlines()[-1] == line, r.output
    assert not (tmp_path / "b.json").exists()


def test_help_teaches_the_widening():
    r = run("tune", "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "--extend / --no-extend" in text and f"up to {tune.EXTEND_ROUNDS} more" in text


def test_a_round_that_moves_only_recency_rescores_the_kept_b(planted):
    split, _ = planted
    base = Config.from_preset("ease", topk=0)
    seen = []

    def score(B, cfg):  # peaks at reg_x 100, inside the grid, and recency 0.05, past its 0.4
        seen.append(B)
        return {"recall@20": -abs(np.log(cfg.recency / 0.05)) - abs(np.log(cfg.reg_x / 100))}
    grid = {"reg_x": [10.0, 100.0, 1000.0], "recency": [1.0, 0.7, 0.4]}
    found = tune.search(base, tune.grid_configs(base, grid), list(grid), split.train, score,
                        "recall@20")
    assert found["best"]["config"].recency == 0.05
    assert [r["factorizations"] for r in found["rounds"]] == [3, 0, 0, 0]
    assert found["rounds"][1]["values"] == {"recency": [0.1]}
    kept = seen[[r["config"] for r in found["results"]].index(found["best"]["config"])]
    assert all(B is kept for B, r in zip(seen, found["results"]) if r["round"] > 1)
