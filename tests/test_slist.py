"""The order-aware slist preset: S and T against hand-built examples, B against a dense float64
per-column KKT reference (S and T rebuilt by plain loops), and the optimality conditions."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from l3ae.engine.models import Config, fit_weights
from l3ae.engine.sequences import from_events, slist_inputs, transitions
from l3ae.errors import ConfigError

from test_solve import ref_semantic


def seqs_of(lists):
    users = np.repeat(np.arange(len(lists)), [len(s) for s in lists])
    return from_events(users, np.concatenate([np.asarray(s, np.int64) for s in lists]
                                             + [np.zeros(0, np.int64)]), len(lists))


def rows_of(M):
    """[{item: weight}] per row of a CSR."""
    M = sp.csr_matrix(M)
    return [dict(zip(M.indices[M.indptr[r]:M.indptr[r + 1]].tolist(),
                     M.data[M.indptr[r]:M.indptr[r + 1]].tolist())) for r in range(M.shape[0])]


def test_prefixes_hold_the_last_window_events_with_decay():
    a, b, c, d = 0, 1, 2, 3
    S, T = transitions(seqs_of([[a, b, c, a]]), 4, window=2, decay=0.5)
    assert rows_of(S) == [{a: 1.0}, {a: 0.5, b: 1.0}, {b: 0.5, c: 1.0}]
    assert rows_of(T) == [{b: 1.0}, {c: 1.0}, {a: 1.0}]
    S, _ = transitions(seqs_of([[a, b, c, d]]), 4, window=3, decay=0.5)
    assert rows_of(S)[2] == {a: 0.25, b: 0.5, c: 1.0}


def test_a_repeated_item_keeps_its_most_recent_weight():
    a, b, c = 0, 1, 2
    S, _ = transitions(seqs_of([[a, b, a, c]]), 3, window=3, decay=0.5)
    assert rows_of(S)[2] == {a: 1.0, b: 0.5}  # a at k = 0 and k = 2: 1, not 0.25 or 1.25


def test_following_targets_are_the_next_window_events():
    a, b, c, d = 0, 1, 2, 3
    _, T = transitions(seqs_of([[a, b, c, d]]), 4, window=2, decay=0.5, targets="following")
    assert rows_of(T) == [{b: 1.0, c: 0.5}, {c: 1.0, d: 0.5}, {d: 1.0}]


def test_users_with_zero_one_or_two_events():
    S, T = transitions(seqs_of([[], [3], [1, 2], []]), 4, window=5, decay=0.9)
    assert S.shape == T.shape == (1, 4)  # only the two-event user has a prefix
    assert rows_of(S) == [{1: 1.0}] and rows_of(T) == [{2: 1.0}]


def test_events_must_be_grouped_by_user():
    with pytest.raises(ValueError, match="grouped"):
        from_events(np.array([0, 1, 0]), np.array([1, 2, 3]), 2)


# -- the closed form against a dense float64 reference ---------------------------------------
def random_sequences(m=50, n=20, seed=0):
    rng = np.random.default_rng(seed)
    lists = [list(rng.integers(0, n, rng.integers(1, 12))) for _ in range(m)]
    lists[0] = list(range(n))  # every item seen
    seqs = seqs_of(lists)
    users = np.repeat(np.arange(m), [len(s) for s in lists])
    X = sp.csr_matrix((np.ones(len(users)), (users, seqs[1])), shape=(m, n))
    X.data[:] = 1
    return lists, seqs, X


def loop_S_T(lists, n, window, decay, targets):
    """S, T (p, n) dense by plain loops over every prefix (the module docstring, restated)."""
    S, T = [], []
    for s in lists:
        for t in range(1, len(s)):
            srow, trow = np.zeros(n), np.zeros(n)
            for k in range(min(window, t)):
                srow[s[t - 1 - k]] = max(srow[s[t - 1 - k]], decay ** k)
            for j in range(1 if targets == "next" else window):
                if t + j < len(s):
                    trow[s[t + j]] = max(trow[s[t + j]], decay ** j)
            S.append(srow)
            T.append(trow)
    return np.array(S), np.array(T)


def reference(lists, X, cfg, E=None):
    """B (n, n) float64 column by column: min α||x − Xb||² + (1−α)||t − Sb||² + bᵀDg(a)b
    [+ λ_E Σ w (b − c)²] s.t. b_j = ξ (ξ = 0) or b_j ≤ ξ, by np.linalg.solve of the KKT system."""
    Xd = X.toarray()
    n = Xd.shape[1]
    S, T = loop_S_T(lists, n, cfg.window, cfg.decay, cfg.targets)
    al = cfg.alpha
    G = al * Xd.T @ Xd + (1 - al) * S.T @ S
    R = al * Xd.T @ Xd + (1 - al) * S.T @ T
    lam = cfg.reg_x + cfg.dropout / (1 - cfg.dropout) * np.diag(G)
    A = G + np.diag(lam + cfg.reg_e)
    if cfg.reg_e:
        R = R + cfg.reg_e * ref_semantic(E, cfg.reg_f)
    B = np.zeros((n, n))
    for j in range(n):
        b = np.linalg.solve(A, R[:, j])
        if cfg.xi == 0 or b[j] > cfg.xi:
            K = np.zeros((n + 1, n + 1))
            K[:n, :n], K[n, j], K[j, n] = A, 1, 1
            b = np.linalg.solve(K, np.r_[R[:, j], cfg.xi])[:n]
        B[:, j] = b
    return B, A, R


CASES = [dict(alpha=a, xi=xi) for a in (0.0, 0.5, 1.0) for xi in (0.0, 0.3)] + [
    dict(alpha=0.3, window=2, decay=0.3, targets="following"),
    dict(alpha=0.6, dropout=0.2, xi=0.1),
    dict(alpha=0.5, reg_e=20.0, reg_f=1.0, reg_x=-5.0),  # order + text
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_slist_equals_the_dense_kkt_reference(kw):
    lists, seqs, X = random_sequences()
    E = np.random.default_rng(1).standard_normal((X.shape[1], 6))
    order = {"window": 3, "decay": 0.6} if kw["alpha"] != 1 else {}  # SLIS has no order
    cfg = Config.from_preset("slist", **{"reg_x": 8.0, **order, **kw}, topk=0, dtype="float64")
    B = fit_weights(cfg, X, E if cfg.reg_e else None, sequences=seqs).B
    ref, A, R = reference(lists, X, cfg, E)
    np.testing.assert_allclose(B, ref, atol=1e-9)
    # optimality: A B − R is zero off the diagonal, −μ on it with μ ≥ 0 (= 0 where diag < ξ)
    M = A @ B - R
    np.testing.assert_allclose(M - np.diag(np.diag(M)), 0, atol=1e-8)
    mu = -np.diag(M)
    if cfg.xi > 0:
        assert np.all(np.diag(B) <= cfg.xi + 1e-10) and np.all(mu >= -1e-8)
        np.testing.assert_allclose(mu * (cfg.xi - np.diag(B)), 0, atol=1e-8)
    else:
        np.testing.assert_allclose(np.diag(B), 0, atol=1e-10)


def test_the_transition_term_moves_b():
    lists, seqs, X = random_sequences()
    kw = dict(reg_x=8.0, topk=0, dtype="float64")
    slis = fit_weights(Config.from_preset("slist", alpha=1.0, **kw), X).B  # needs no order
    slist = fit_weights(Config.from_preset("slist", alpha=0.5, **kw), X, sequences=seqs).B
    assert np.abs(slis - slist).max() > 1e-2  # order enters
    ease = fit_weights(Config.from_preset("rlae", xi=0.1, **kw), X).B
    np.testing.assert_allclose(slis, ease, atol=1e-12)  # α = 1 is SLIS: the relaxed EASE
    with pytest.raises(ConfigError, match=r"--decay 0.3: .* with alpha 1 \(SLIS.*below 1"):
        Config.from_preset("slist", alpha=1.0, decay=0.3)


@pytest.mark.parametrize("where", [dict(tile=8), dict(max_memory=None)])
def test_tiled_and_pruned_builds_equal_the_reference(where):
    lists, seqs, X = random_sequences(m=80, n=30, seed=3)
    cfg = Config.from_preset("slist", reg_x=5.0, window=4, decay=0.5, topk=6, prune="row",
                             dtype="float64")
    B = fit_weights(cfg, X, sequences=seqs, **where).B
    ref, _, _ = reference(lists, X, cfg)
    for i in range(ref.shape[0]):
        row = ref[i].copy()
        row[i] = 0
        keep = np.argsort(-np.abs(row), kind="stable")[:6]
        got = B[i].toarray().ravel()
        np.testing.assert_allclose(got[keep], row[keep], atol=1e-9)
        assert np.count_nonzero(got) == 6


def test_float32_tiled_equals_float64():
    lists, seqs, X = random_sequences(m=80, n=30, seed=4)
    cfg = Config.from_preset("slist", reg_x=5.0, topk=0)
    B = fit_weights(cfg, X, sequences=seqs, tile=8).B
    ref, _, _ = reference(lists, X, cfg)
    assert B.dtype == np.float32
    np.testing.assert_allclose(B, ref, atol=2e-5 * np.abs(ref).max())


def test_slist_refuses_unordered_histories_and_bad_knobs():
    _, _, X = random_sequences()
    with pytest.raises(ConfigError, match="order of events"):
        fit_weights(Config.from_preset("slist"), X)
    with pytest.raises(ConfigError, match="--window 3: the prefix window"):
        Config.from_preset("ease", window=3)
    with pytest.raises(ConfigError, match="or use --model slist"):
        Config.from_preset("ease", targets="following")
    for bad, match in [(dict(alpha=1.5), "alpha"), (dict(window=0), "window"),
                       (dict(window=2.5), "window"), (dict(decay=0.0), "decay"),
                       (dict(targets="all"), "targets")]:
        with pytest.raises(ConfigError, match=match):
            Config.from_preset("slist", **bad)


def test_slist_inputs_stack_x_and_s():
    lists, seqs, X = random_sequences()
    Xs, N = slist_inputs(X, seqs, 0.25, 3, 0.5)
    S, T = loop_S_T(lists, X.shape[1], 3, 0.5, "next")
    np.testing.assert_allclose((Xs.T @ Xs).toarray(),
                               0.25 * (X.T @ X).toarray() + 0.75 * S.T @ S, atol=1e-12)
    np.testing.assert_allclose(N.toarray(), 0.75 * S.T @ (T - S), atol=1e-12)
    assert slist_inputs(X, seqs, 1.0, 3, 0.5)[1] is None


# -- through the workflows: leave-one-out, build, evaluate, tune -----------------------------
def test_loo_evaluate_fits_slist_on_the_train_prefixes(tmp_path):
    from l3ae import api
    from l3ae.evaluation import loo_split
    from l3ae.io.readers import read_interactions

    from conftest import write_sequences
    from test_loo import reference_hr

    rng = np.random.default_rng(3)
    seqs = [list(rng.integers(0, 25, rng.integers(3, 10))) for _ in range(70)]
    inter = read_interactions(write_sequences(tmp_path / "s.txt", seqs, item="i"),
                              fmt="sequences")
    code = {it: k for k, it in enumerate(inter.item_ids)}
    coded = [[code[f"i{i}"] for i in s] for s in seqs]
    n = inter.shape[1]
    cfg = Config.from_preset("slist", reg_x=6.0, window=3, decay=0.7, topk=0, dtype="float64")
    for refit, cut in ((False, 2), (True, 1)):
        res = api.evaluate_split(loo_split(inter), cfg, refit=refit)
        prefixes = [s[:len(s) - cut] for s in coded]
        X = sp.lil_matrix((len(seqs), n))
        for u, s in enumerate(prefixes):
            X[u, s] = 1
        B, _, _ = reference(prefixes, X.tocsr(), cfg)
        known = np.zeros((len(seqs), n))
        for u, s in enumerate(coded):
            known[u, s[:-1]] = 1
        hr, nd = reference_hr(B, known, [s[-1] for s in coded], 10)
        assert res["test"]["all"]["hr@10"] == pytest.approx(hr, abs=1e-12)
        assert res["test"]["all"]["ndcg@10"] == pytest.approx(nd, abs=1e-9)


def run(*args):
    from click.testing import CliRunner

    from l3ae.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def seqfile(tmp_path):
    from conftest import write_sequences

    rng = np.random.default_rng(5)
    return write_sequences(tmp_path / "s.txt", [list(rng.integers(1, 30, rng.integers(2, 12)))
                                                for _ in range(80)], item="i")


def test_cli_build_equals_the_api_on_the_file_order(seqfile, tmp_path):
    from l3ae.io.readers import read_interactions
    from l3ae.model import Recommender

    r = run("build", "--interactions", seqfile, "--format", "sequences", "--model", "slist",
            "--alpha", "0.4", "--window", "3", "--decay", "0.6", "--targets", "following",
            "--topk", "0", "--out", tmp_path / "m.h5", "-q")
    assert r.exit_code == 0, r.output
    got = Recommender.load(tmp_path / "m.h5")
    assert (got.config_.alpha, got.config_.window, got.config_.decay,
            got.config_.targets) == (0.4, 3, 0.6, "following")
    inter = read_interactions(seqfile, fmt="sequences")
    lists = [[] for _ in inter.user_ids]
    for u, i in zip(inter.users, inter.items):
        lists[u].append(int(i))
    X = inter.matrix(np.float64)
    ref, _, _ = reference(lists, X, got.config_.replace(dtype="float64"))
    np.testing.assert_allclose(got.B_, ref, atol=2e-5 * np.abs(ref).max())


def test_cli_refuses_slist_without_order(seqfile, tmp_path):
    table = tmp_path / "r.csv"
    table.write_text("user_id,item_id\nu1,a\nu1,b\nu2,a\n")
    r = run("build", "--interactions", table, "--model", "slist", "--out", tmp_path / "m.h5")
    assert r.exit_code == 2 and "learns from the order of events" in r.output
    assert not (tmp_path / "m.h5").exists()
    r = run("evaluate", "--interactions", seqfile, "--format", "sequences", "--model", "slist")
    assert r.exit_code == 2 and "--protocol loo" in r.output


def test_cli_evaluate_and_tune_slist(seqfile, tmp_path):
    r = run("evaluate", "--interactions", seqfile, "--format", "sequences", "--protocol", "loo",
            "--model", "slist", "--baseline", "rlae", "--refit", "-q")
    assert r.exit_code == 0, r.output
    assert "test: slist vs rlae" in r.output
    js, best = tmp_path / "all.json", tmp_path / "best.json"
    r = run("tune", "--interactions", seqfile, "--format", "sequences", "--protocol", "loo",
            "--model", "slist", "--grid", "alpha=0.2,0.8", "--grid", "targets=next,following",
            "--grid", "window=2,4", "--out", best, "--json", js, "-q", "--no-extend")
    assert r.exit_code == 0, r.output
    points = json.loads(js.read_text())["points"]
    assert len(points) == 8 and all(p["metrics"] for p in points)
    assert {(p["config"]["targets"], p["config"]["window"]) for p in points} == {
        ("next", 2), ("next", 4), ("following", 2), ("following", 4)}
    assert json.loads(best.read_text()) == max(
        points, key=lambda q: q["metrics"]["hr@10"])["config"]
    r = run("tune", "--interactions", seqfile, "--format", "sequences", "--protocol", "loo",
            "--model", "slist", "--grid", "targets=nearby", "--out", best, "-q")
    assert r.exit_code == 2 and "targets must be one of next, following" in r.output


def test_weighted_gram_kernels_equal_the_sparse_product():
    """The stacked X̃ is weighted: both Gram kernels multiply its values (binary X skips it)."""
    from l3ae.engine import _kernels
    from l3ae.engine.gram import _csr_csc, gram

    X = sp.random(60, 23, density=0.3, random_state=1, format="csr") * 3.0
    G = (X.T @ X).toarray()
    np.testing.assert_allclose(gram(X, dtype=np.float64), G, atol=1e-12)
    out = np.zeros((23 - 5, 8))
    _kernels.gram_cols(*_csr_csc(X), 5, 4, out)
    want = np.tril(G, 0)[5:, 4:12]  # lower part of the block: rows i >= columns j
    np.testing.assert_allclose(out, want, atol=1e-12)


def test_sequences_of_another_matrix_are_refused():
    _, seqs, X = random_sequences()
    cfg = Config.from_preset("slist")
    with pytest.raises(ConfigError, match=r"not of X \(49 users"):
        fit_weights(cfg, X[:49], sequences=seqs)
    with pytest.raises(ConfigError, match="not of X"):
        fit_weights(cfg, X[:, :5], sequences=seqs)


def test_the_transition_pass_reports_progress():
    _, seqs, X = random_sequences(m=80, n=30, seed=3)
    seen = []
    fit_weights(Config.from_preset("slist", topk=5), X, sequences=seqs, tile=8,
                progress=lambda phase, done, total, info="": seen.append((phase, done, total)))
    steps = [(d, t) for p, d, t in seen if p == "transitions"]
    assert steps and steps[-1] == (30, 30)


def test_grid_words_only_for_word_fields():
    from l3ae.tune import parse_grid

    assert parse_grid(["targets=next, following", "window=2,4"]) == {
        "targets": ["next", "following"], "window": [2.0, 4.0]}
    with pytest.raises(ConfigError, match="values must be numbers"):
        parse_grid(["reg-x=abc"])
