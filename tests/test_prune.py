"""Pruning: per-row budgets (their counts, bench/compact.py's route c) and the global selection
(the n·k largest of B, at most 2k a row), against independent numpy references."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_problem

from l3ae.engine.models import Config, fit_weights, row_budgets_of
from l3ae.errors import ConfigError
from l3ae.engine.prune import budget_scale, prune_topk, row_budgets


def ref_prune(B, ks):
    """Row i: its ks[i] largest |B_ij| off the diagonal, nonzero, ties to the lower column."""
    n = len(B)
    out = np.zeros_like(B)
    for i in range(n):
        cand = [j for j in range(n) if j != i and B[i, j] != 0 and not np.isnan(B[i, j])]
        cand.sort(key=lambda j: (-abs(B[i, j]), j))
        keep = cand[:ks[i]]
        out[i, keep] = B[i, keep]
    return out


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_budgets_share_out_k_per_row(power, k):
    rng = np.random.default_rng(int(power * 10) + k)
    n = 25
    pop = rng.integers(0, 200, n) ** 2  # a few very popular items: their rows hit the cap
    ks = row_budgets(pop, budget_scale(pop, k, power), power, n - 1)
    want = min(k, n - 1) * n
    assert ks.dtype == np.int64 and ks.min() >= 0 and ks.max() <= n - 1
    assert abs(ks.sum() - want) <= n / 2  # rounding only
    order = np.argsort(pop, kind="stable")
    assert np.all(np.diff(ks[order]) >= 0)  # more popular rows keep at least as many
    if power == 0:
        assert np.all(ks == min(k, n - 1))
    # the scale solves Σ min(cap, s·w) = k·n (water-filling over the capped rows)
    w = (1.0 + pop) ** power
    s = budget_scale(pop, k, power)
    assert np.minimum(n - 1, s * w).sum() == pytest.approx(want)


@pytest.mark.parametrize("seed", range(3))
def test_pruner_keeps_each_rows_budget(seed):
    rng = np.random.default_rng(seed)
    n = 30
    B = rng.standard_normal((n, n)).round(1)  # many ties in magnitude
    B[rng.random((n, n)) < 0.2] = 0.0
    B[3, 5] = np.nan
    ks = rng.integers(0, n + 3, n)  # some above the n − 1 a row can give
    got = prune_topk(B, 5, block=7, budgets=ks)
    assert got.indices.dtype == np.int64 and np.all(np.diff(got.indptr) <= np.minimum(ks, n - 1))
    np.testing.assert_array_equal(got.toarray(), ref_prune(B, np.minimum(ks, n - 1)))
    for i in range(n):  # column indices ascending within each row
        row = got.indices[got.indptr[i]:got.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)


def test_a_build_prunes_to_the_budgets_of_its_train_counts():
    X, E = random_problem(m=200, n=40, d=6, density=0.12, seed=4)
    dense = fit_weights(Config.from_preset("l3ae", reg_x=5.0, reg_e=20.0, reg_f=1.0, topk=0,
                                           dtype="float64"), X, E).B
    cfg = Config.from_preset("l3ae", reg_x=5.0, reg_e=20.0, reg_f=1.0, topk=6, prune="row",
                             budget=0.5, dtype="float64")
    pop = np.asarray(X.sum(axis=0)).ravel()
    ks = row_budgets_of(cfg, pop)
    assert len(set(ks.tolist())) > 1  # the budgets do differ here
    got = fit_weights(cfg, X, E).B
    assert sp.issparse(got)
    np.testing.assert_allclose(got.toarray(), ref_prune(dense, ks), atol=1e-10)
    flat = fit_weights(cfg.replace(budget=0.0), X, E).B
    assert np.all(np.diff(flat.indptr) == 6)


def ref_global(B, k):
    """The n·k largest |B_ij| off the diagonal among each row's 2k largest (ties kept)."""
    n = len(B)
    A = np.abs(np.where(np.eye(n, dtype=bool), 0.0, B))
    cap = min(2 * k, n - 1)
    cand = np.zeros_like(A, dtype=bool)
    for i in range(n):
        cand[i, np.argsort(-A[i], kind="stable")[:cap]] = True
    thr = np.sort(A[cand])[::-1][n * min(k, n - 1) - 1]
    keep = cand & (A >= thr) & (A > 0)
    return np.where(keep, B, 0.0)


@pytest.mark.parametrize("k,block", [(1, 7), (4, 5), (9, 64), (40, 8)])
def test_global_selection_keeps_the_largest_of_the_whole_matrix(k, block):
    rng = np.random.default_rng(k)
    n = 30
    # rows of very different scales: a per-row top-k would keep k of each
    B = rng.standard_normal((n, n)) * np.exp(rng.normal(0, 1.5, n))[:, None]
    got = prune_topk(B, k, block=block, whole=True)
    ref = ref_global(B, k)
    np.testing.assert_array_equal(got.toarray(), ref)
    assert got.nnz == n * min(k, n - 1)
    counts = np.diff(got.indptr)
    assert counts.max() <= min(2 * k, n - 1)
    if k < 9:
        assert counts.min() < k < counts.max()  # the rows do share the weights out
    for i in range(n):
        row = got.indices[got.indptr[i]:got.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)


def test_the_default_build_selects_globally_and_equals_the_dense_b():
    X, E = random_problem(m=200, n=40, d=6, density=0.12, seed=4)
    kw = dict(reg_x=5.0, reg_e=20.0, reg_f=1.0, dtype="float64")
    dense = fit_weights(Config.from_preset("l3ae", topk=0, **kw), X, E).B
    cfg = Config.from_preset("l3ae", topk=6, **kw)
    assert cfg.prune == "global"
    got = fit_weights(cfg, X, E).B
    np.testing.assert_allclose(got.toarray(), ref_global(dense, 6), atol=1e-10)
    assert got.nnz == 40 * 6 and len(set(np.diff(got.indptr).tolist())) > 1
    tiled = fit_weights(cfg, X, E, tile=16).B  # the out-of-core path prunes alike
    np.testing.assert_allclose(tiled.toarray(), got.toarray(), atol=1e-9)


def test_budgets_belong_to_the_row_selection():
    with pytest.raises(ConfigError, match="--budget 0.5: how --topk is shared out among the "
                                          "rows does not enter"):
        Config.from_preset("ease", budget=0.5)
    with pytest.raises(ConfigError, match=r"enter the global selection \(--prune global\); "
                                          r"drop it \(or give --prune row\)"):
        Config.from_preset("ease", budget=0.5)
    with pytest.raises(ConfigError, match=r"--prune row: .* does not enter a dense B \(--topk "
                                          r"0\); drop it \(or give --topk K\)"):
        Config.from_preset("ease", topk=0, prune="row")
    assert Config.from_preset("ease", prune="row", budget=0.5).budget == 0.5
    with pytest.raises(ConfigError, match="prune must be one of global, row"):
        Config.from_preset("ease", prune="columns")
    # files written before the global selection pruned each row
    assert Config.from_dict({"model": "ease", "reg_x": 1.0, "budget": 0.0}).prune == "row"
    assert Config.from_dict({"model": "ease", "topk": 0, "budget": 0.0}).topk == 0


def ref_rows(block, row0, ks):
    """ref_prune of a row block (row t is row row0 + t of the matrix)."""
    out = np.zeros_like(block)
    for t, row in enumerate(block):
        cand = [j for j in range(len(row)) if j != row0 + t and row[j] != 0 and row[j] == row[j]]
        cand.sort(key=lambda j: (-abs(row[j]), j))
        out[t, cand[:ks[t]]] = row[cand[:ks[t]]]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_select_exactly_whether_the_sampled_bound_holds_or_not(dtype):
    """Rows of 3000: the selection looks past a bound estimated from 512 sampled entries; the
    last rows put their largest entries at exactly the sampled places, so that the bound
    is too high and the whole row is searched."""
    from l3ae.engine.prune import prune_block

    rng = np.random.default_rng(7)
    n, r = 3000, 12
    block = rng.standard_normal((r, n)).round(2).astype(dtype)  # ties in magnitude
    block[rng.random((r, n)) < 0.3] = 0.0
    block[2, ::7] = np.nan
    sampled = (np.arange(512) * n) // 512
    block[-3:] = 0.01
    block[-3:, sampled] = 5.0
    ks = np.array([1, 20, 100, 500, 740, 3, 64, 9, 2, 600, 700, 513])
    idx, val, cnt = prune_block(block, 40, ks)
    got = np.zeros_like(block)
    starts = np.r_[0, np.cumsum(ks)[:-1]]
    for t in range(r):
        got[t, idx[starts[t]:starts[t] + cnt[t]]] = val[starts[t]:starts[t] + cnt[t]]
        assert np.all(np.diff(idx[starts[t]:starts[t] + cnt[t]]) > 0)
    np.testing.assert_array_equal(got, ref_rows(block, 40, ks))


def test_topk_auto_keeps_small_catalogs_dense_and_prunes_from_4000_items():
    cfg = Config.from_preset("l3ae")
    assert cfg.topk == "auto"
    assert [cfg.topk_for(n) for n in (30, 3999, 4000, 57000)] == [0, 0, 500, 500]
    assert Config.from_preset("l3ae", topk=7).topk_for(30) == 7
    small = cfg.for_items(3533)  # what a model of ML-1M's size records
    assert small.topk == 0 and small.prune == "global" and small.budget == 0.0
    big = Config.from_preset("ease", prune="row", budget=0.5).for_items(8000)
    assert big.topk == 500 and big.prune == "row" and big.budget == 0.5
    with pytest.raises(ConfigError, match="topk must be an integer >= 0"):
        Config.from_preset("ease", topk=-3)
    with pytest.raises(ConfigError, match="topk must be an integer >= 0"):
        Config.from_preset("ease", topk="all")
    # files before "auto" recorded their topk
    assert Config.from_dict({"model": "ease", "reg_x": 1.0, "budget": 0.0}).topk == 500


def test_a_default_build_on_a_small_catalog_is_dense_and_records_it(tmp_path):
    from l3ae.model import Recommender

    X, _ = random_problem(m=120, n=40, seed=5)
    rec = Recommender("ease", reg_x=10.0).fit(X)
    assert rec.config.topk == "auto" and rec.config_.topk == 0
    assert isinstance(rec.B_, np.ndarray) and rec.B_.shape == (40, 40)
    rec.save(tmp_path / "m.h5")
    assert Recommender.load(tmp_path / "m.h5").config_.topk == 0


@pytest.mark.parametrize("value,ok", [("auto", True), ("0", True), ("12", True), ("-1", False),
                                      ("many", False)])
def test_the_topk_flag_takes_a_count_or_auto(tmp_path, value, ok):
    from click.testing import CliRunner

    from l3ae.cli import cli

    X, _ = random_problem(m=60, n=20, seed=1)
    rows = ["user_id,item_id"] + [f"u{u},i{i}" for u, i in zip(*X.nonzero())]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(cli, ["build", "--interactions", str(tmp_path / "r.csv"), "--model",
                                 "ease", "--reg-x", "5", "--topk", value, "--out",
                                 str(tmp_path / "m.h5"), "-q"])
    if not ok:
        assert r.exit_code == 2 and f"{value!r} is not an integer >= 0 or 'auto'" in r.output
        assert not (tmp_path / "m.h5").exists()
        return
    assert r.exit_code == 0, r.output
    from l3ae.model import Recommender

    got = Recommender.load(tmp_path / "m.h5")
    assert got.config_.topk == (0 if value == "auto" else int(value))
    said = {"auto": "(dense B, --topk auto under 4,000 items)", "0": "(dense B)"}.get(
        value) or f"({got.B_.nnz} weights)"
    assert said in r.output, r.output


def test_rows_that_do_not_fit_the_matrix_are_refused_before_the_kernel_writes():
    from l3ae.engine.prune import RowPruner

    pr = RowPruner(10, 3, np.float32)
    with pytest.raises(ValueError, match="rows 8:12 of 10 columns do not fit"):
        pr.add(np.ones((4, 10), np.float32), 8)
    with pytest.raises(ValueError, match="rows 0:2 of 9 columns do not fit"):
        pr.add(np.ones((2, 9), np.float32), 0)
    with pytest.raises(ValueError, match="exclude each other"):
        RowPruner(10, 3, np.float32, budgets=np.full(10, 3), whole=True)
