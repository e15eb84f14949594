"""Presets as data: every knob of every preset is honoured (the built B moves) or refused (a
ConfigError naming its flag); a resolved Config records exactly what was built."""

import json

import numpy as np
import pytest
from conftest import random_problem

from l3ae import api
from l3ae.engine.models import KNOBS, PRESETS, Config, fit_weights
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.model_file import read_model
from l3ae.model import Recommender

PROBES = {"reg_x": 7.0, "dropout": 0.45, "xi": 0.01, "reg_e": 5.0, "alpha": 0.3,
          "pull": "adaptive", "pull_power": 0.9, "reg_f": 0.4, "prune": "row", "budget": 0.9,
          "window": 2, "decay": 0.8, "targets": "following", "catalog": "embeddings"}


@pytest.fixture(scope="module")
def data():
    """X, E and X's events in a random order per user (what slist learns from)."""
    X, E = random_problem(m=150, n=30, d=6, density=0.2, seed=3)
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.permutation(X.indices[X.indptr[u]:X.indptr[u + 1]])
                            for u in range(X.shape[0])])
    return X, E, (X.indptr.astype(np.int64), items.astype(np.int64))


def shifted(cfg, knob):
    """A probe value other than the preset's own for ``knob``."""
    v = PROBES[knob]
    if knob == "reg_x":
        return cfg.reg_x + v
    return v


@pytest.fixture(scope="module")
def catalog_files(tmp_path_factory):
    """Interactions on i0..i9 and vectors of i2..i11: "both" refuses the items without a
    vector, "embeddings" leaves them out, "interactions" is i0..i9 (the presets' own)."""
    tmp = tmp_path_factory.mktemp("catalog")
    (tmp / "r.csv").write_text("user_id,item_id\n" + "".join(f"u{u},i{(u + k) % 10}\n"
                                                             for u in range(10) for k in range(3)))
    ids = [f"i{i}" for i in range(2, 12)]
    np.savez(tmp / "v.npz", ids=np.array(ids), embeddings=np.eye(10, 4, dtype=np.float32) + 1)
    return api.Data(interactions=str(tmp / "r.csv"), embeddings=str(tmp / "v.npz"))


def catalog_items(data, cfg):
    """The item ids of ``cfg``'s catalog on ``data``, or the error that refuses it."""
    try:
        return data.catalog(data.load(), cfg).item_ids
    except DataFormatError as exc:
        return str(exc)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("knob", list(KNOBS))
def test_every_knob_is_honoured_or_refused(data, catalog_files, preset, knob):
    X, E, seqs = data
    # a positive λ_X keeps a = Λ + λ_E·w > 0 under every probe (the adaptive pull lowers w)
    kw = dict(topk=0, dtype="float64", **({} if preset == "text" else {"reg_x": 50.0}))
    base = Config.from_preset(preset, **kw)
    value = shifted(base, knob)
    try:
        cfg = Config.from_preset(preset, **{**kw, knob: value})
    except ConfigError as exc:
        assert f"--{knob.replace('_', '-')} {value}" in str(exc)
        assert not KNOBS[knob][1](base.replace(**{knob: value}).resolve(strict=()))
        return
    assert getattr(cfg, knob) == value  # recorded as given
    if knob == "catalog":  # it chooses the items of the data a build reads, not B on them
        assert catalog_items(catalog_files, base) != catalog_items(catalog_files, cfg)
        return
    B0 = fit_weights(base, X, E, sequences=seqs).B
    B1 = fit_weights(cfg, X, E, sequences=seqs).B
    assert np.abs(B1 - B0).max() > 1e-6 * np.abs(B0).max(), f"{knob} left B unchanged"


def test_the_reported_case_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"--xi 0.4: the bound ξ on diag\(B\) does not enter "
                                          r"model 'text'"):
        Config.from_preset("text", reg_f=2.0, xi=0.4)


def test_resolved_config_keeps_only_what_enters():
    ease = Config.from_preset("ease")
    assert ease.reg_f is None and ease.pull_power is None and ease.reg_e == 0
    plain = Config.from_preset("l3ae", reg_e=0.0)  # the preset's λ_F no longer enters
    assert plain.reg_f is None and plain.reg_x == -100.0
    pulled = Config.from_preset("ease", reg_e=50.0)  # λ_F enters: its default
    assert pulled.reg_f == 1.0 and pulled.needs_text
    adaptive = Config.from_preset("l3ae", pull="adaptive")
    assert adaptive.pull_power == 0.5
    assert Config.from_preset("collective", alpha=0.0).needs_text is False


def test_old_model_files_with_every_knob_still_load(data, tmp_path):
    """Files written before the table recorded reg_f = 1.0 for text-free models: read, reset."""
    X, _, _ = data
    Recommender("ease", reg_x=20.0).fit(X).save(tmp_path / "m.h5")
    import h5py

    with h5py.File(tmp_path / "m.h5", "a") as f:
        cfg = json.loads(f.attrs["config"])
        assert cfg["reg_f"] is None
        f.attrs["config"] = json.dumps(dict(cfg, reg_f=1.0, pull_power=0.5))
    rec = Recommender.load(tmp_path / "m.h5")
    assert rec.config_.reg_f is None
    assert rec.config_ == Config.from_preset("ease", reg_x=20.0).for_items(X.shape[1])
    assert read_model(tmp_path / "m.h5")["config"]["reg_f"] == 1.0  # the file is untouched


def test_recommender_takes_and_keeps_a_config(data):
    X, E, _ = data
    cfg = Config.from_preset("rdlae", reg_x=20.0, topk=0, dtype="float64")
    a = Recommender(cfg).fit(X)
    b = Recommender("rdlae", reg_x=20.0, topk=0, dtype="float64").fit(X)
    assert a.config == a.config_ == b.config_ == cfg
    np.testing.assert_array_equal(a.B_, b.B_)
    c = Recommender(cfg, xi=0.3)  # params override the Config
    assert c.config.xi == 0.3 and c.config.reg_x == 20.0
    with pytest.raises(ConfigError, match="--alpha"):
        Recommender(cfg, alpha=0.2)


def test_config_files_of_older_versions_still_work(data, tmp_path):
    """l3ae 0.1's tune recorded reg_f = 1.0 and pull_power = 0.5 for every model."""
    from click.testing import CliRunner

    from l3ae.cli import cli

    X, _, _ = data
    rows = ["user_id,item_id"] + [f"u{u},i{i}" for u, i in zip(*X.nonzero())]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    old = dict(Config.from_preset("ease", reg_x=20.0).to_dict(), reg_f=1.0, pull_power=0.5)
    (tmp_path / "old.cfg").write_text(json.dumps(old))
    r = CliRunner().invoke(cli, ["build", "--interactions", str(tmp_path / "r.csv"), "--config",
                                 str(tmp_path / "old.cfg"), "--out", str(tmp_path / "m.h5")])
    assert r.exit_code == 0, r.output
    assert (Recommender.load(tmp_path / "m.h5").config_
            == Config.from_preset("ease", reg_x=20.0).for_items(X.shape[1]))
    # the same value where it enters is kept: reg_f = 1.0 of an l3ae file is its λ_F
    from l3ae.cli._options import config_from

    (tmp_path / "l3ae.cfg").write_text(json.dumps(dict(old, model="l3ae", reg_e=30.0)))
    kw = {k: None for k in [*KNOBS, "topk", "dtype", "recency", "debias", "model"]}
    cfg = config_from(dict(kw, config_file=str(tmp_path / "l3ae.cfg")))
    assert cfg.reg_f == 1.0 and cfg.reg_e == 30.0 and cfg.pull_power is None


def test_a_flag_over_a_config_resets_what_stops_entering(tmp_path):
    from l3ae.cli._options import config_from

    kw = {k: None for k in [*KNOBS, "topk", "dtype", "recency", "debias", "model"]}
    tuned = Config.from_preset("l3ae", reg_x=50.0, reg_e=0.0)  # as tune writes it: reg_f null
    assert tuned.reg_f is None
    (tmp_path / "best.cfg").write_text(json.dumps(tuned.to_dict()))
    assert config_from(dict(kw, config_file=str(tmp_path / "best.cfg"))) == tuned
    full = Config.from_preset("l3ae")
    (tmp_path / "l3ae.cfg").write_text(json.dumps(full.to_dict()))
    flat = config_from(dict(kw, config_file=str(tmp_path / "l3ae.cfg"), reg_e=0.0))
    assert flat.reg_e == 0 and flat.reg_f is None  # the file's λ_F stops entering: reset
    assert Recommender(full, reg_e=0.0).config == flat  # the same in the Python API
    with pytest.raises(ConfigError, match="--reg-f 2.0"):
        Recommender(full, reg_e=0.0, reg_f=2.0)  # a given knob that does not enter: refused


def test_random_points_stay_in_each_knobs_domain():
    from l3ae import tune

    pts = tune.random_configs(Config.from_preset("additive"), ["alpha", "reg_x"], 40, seed=1)
    assert all(0 < c.alpha <= 1 for c in pts)
    with pytest.raises(ConfigError, match="no range for budget"):
        tune.random_configs(Config.from_preset("ease"), ["budget"], 2)


@pytest.mark.parametrize("knob", ["xi", "reg_x", "alpha"])
def test_nan_knobs_are_refused(knob):
    with pytest.raises(ConfigError, match=knob):
        Config.from_preset("collective" if knob == "alpha" else "rlae", **{knob: float("nan")})


def test_old_files_recorded_an_ignored_reg_e_for_every_preset():
    old = dict(Config.from_preset("ease", reg_x=20.0).to_dict(), reg_e=600.0, reg_f=3.0)
    del old["budget"]  # l3ae 0.1 wrote no budget, and used reg_e for l3ae alone
    assert Config.from_dict(old) == Config.from_preset("ease", reg_x=20.0)
    l3 = dict(Config.from_preset("l3ae").to_dict())
    del l3["budget"]
    assert Config.from_dict(l3).reg_e == 600.0


def test_additive_at_alpha_one_is_c_alone(data):
    X, E, _ = data
    cfg = Config.from_preset("additive", alpha=1.0, reg_f=0.7, topk=0, dtype="float64")
    assert cfg.reg_x == 0 and cfg.c_alone  # the preset's λ_X no longer enters: reset
    text = Config.from_preset("text", reg_f=0.7, topk=0, dtype="float64")
    np.testing.assert_array_equal(fit_weights(cfg, X, E).B, fit_weights(text, X, E).B)
    with pytest.raises(ConfigError, match=r"--reg-x 300.0: .* with alpha 1 \(B = C"):
        Config.from_preset("additive", alpha=1.0, reg_x=300.0)
