import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import random_problem, write_ratings

from l3ae import tune
from l3ae.cli import cli
from l3ae.engine import topn
from l3ae.engine.metrics import ranking_metrics
from l3ae.engine.models import Config
from l3ae.evaluation import apply_regime, random_split
from l3ae.model import Recommender


@pytest.fixture
def split_problem():
    X, E = random_problem(m=300, n=60, d=8, density=0.12, seed=4)
    X = sp.coo_matrix(X)
    return random_split(X.row, X.col, X.shape, seed=1), E


def test_sweep_with_reuse_equals_fresh_fits(split_problem):
    split, E = split_problem
    base = Config.from_preset("l3ae", topk=20)
    configs = tune.grid_configs(base, {"total": [5.0, 50.0], "reg_e": [1.0, 10.0],
                                       "xi": [0.0, 0.1]})
    configs += tune.grid_configs(Config.from_preset("ease", topk=20), {"reg_x": [5.0, 50.0]})
    res = tune.sweep(configs, split.train, tune.validation_scorer(split, (10,)), E)
    # P is shared by every point with the same total ridge: 2 factorizations for 10 points
    assert sum(not r["shared"] for r in res) == 2
    for cfg, r in zip(configs, res):
        rec = Recommender(cfg.model, **{k: v for k, v in cfg.to_dict().items()
                                        if k != "model"}).fit(split.train, E)
        top, _ = rec.recommend(split.train, N=10)
        want = ranking_metrics(top, split.validation, (10,))
        assert r["metrics"]["recall@10"] == pytest.approx(want["recall@10"], abs=1e-12)
        assert r["config"] == cfg


def test_tuning_picks_the_planted_best(split_problem):
    split, E = split_problem
    configs = tune.grid_configs(Config.from_preset("ease", topk=0), {"reg_x": [1.0, 30.0, 1000.0]})
    planted = configs[1]
    B = Recommender("ease", reg_x=planted.reg_x, topk=0).fit(split.train).B_
    top, _ = topn(split.train, B, N=1)
    truth = sp.csr_matrix((np.ones(len(top)), (np.arange(len(top)), top[:, 0])),
                          shape=split.train.shape)
    planted_split = type(split)(split.train, truth, split.test)
    res = tune.sweep(configs, split.train, tune.validation_scorer(planted_split, (1,)))
    best = tune.best(res, "recall@1")
    assert best["config"] == planted and best["metrics"]["recall@1"] == pytest.approx(1.0)
    assert all(r["metrics"]["recall@1"] < 1.0 for r in res if r is not best)


def test_cold_items_never_in_train_and_fraction_kept(split_problem):
    split, _ = split_problem
    cold = apply_regime(split, cold_items=0.25, seed=3)
    assert cold.cold.sum() == 15
    assert cold.train[:, cold.cold].nnz == 0
    assert cold.validation.nnz == split.validation.nnz  # held-out sets are untouched
    assert cold.train.nnz == split.train[:, ~cold.cold].nnz
    half = apply_regime(split, train_fraction=0.5, seed=3)
    assert half.train.multiply(split.train).nnz == half.train.nnz  # a subset
    kept = np.diff(half.train.indptr)
    full = np.diff(split.train.indptr)
    assert np.all(kept[full > 0] >= 1) and abs(half.train.nnz / split.train.nnz - 0.5) < 0.06


def test_tune_cli_writes_config_that_evaluate_reads(tmp_path):
    inter = write_ratings(tmp_path / "r.csv", 80, 30, 10)
    out = tmp_path / "best.cfg"
    r = CliRunner().invoke(cli, ["tune", "--interactions", str(inter), "--model", "ease",
                                 "--grid", "reg-x=1,10,100", "--random", "2", "--out", str(out),
                                 "--json", str(tmp_path / "all.json"), "--no-extend"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.read_text())
    points = json.loads((tmp_path / "all.json").read_text())["points"]
    assert len(points) == 5 and {p["round"] for p in points} == {1}
    assert cfg == max(points, key=lambda p: p["metrics"]["recall@20"])["config"]
    r = CliRunner().invoke(cli, ["evaluate", "--interactions", str(inter), "--config", str(out),
                                 "--reg-x", "7", "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    used = json.loads((tmp_path / "m.json").read_text())["config"]
    assert used["model"] == "ease" and used["reg_x"] == 7.0  # the flag wins over the file
    bad = tmp_path / "bad.cfg"
    bad.write_text('{"model": "ease", "lambda": 3}')
    r = CliRunner().invoke(cli, ["evaluate", "--interactions", str(inter), "--config", str(bad)])
    assert r.exit_code == 2 and "unknown keys ['lambda']" in r.output


def test_invalid_points_are_skipped_not_fatal(split_problem):
    split, E = split_problem
    configs = tune.grid_configs(Config.from_preset("ease"), {"reg_x": [-5.0, 10.0]})
    res = tune.sweep(configs, split.train, tune.validation_scorer(split), E)
    assert res[0]["metrics"] is None and "total ridge" in res[0]["error"]
    assert tune.best(res)["config"].reg_x == 10.0
