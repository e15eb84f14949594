"""Adding items without a rebuild: folded rows/columns against an independent dense float64
rebuild (per-column KKT solves of a catalog whose X has zero columns for the new items)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import random_problem
from test_solve import ref_semantic, ref_weights

from l3ae.cli import cli
from l3ae.engine.foldin import fold_in, fold_state
from l3ae.engine.models import Config, fit_weights
from l3ae.engine.prune import budget_scale, prune_topk, row_budgets
from l3ae.engine.solve import solve_weights
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.embeddings import text_hash, write_embeddings
from l3ae.model import Recommender

N_OLD, N_NEW = 50, 10
# name -> (preset, flags, the closed form they must build). The third column is DESIGN §2
# written out by hand (not the engine's preset table): λ_X, dropout p, λ_E, pull power (None:
# uniform w), λ_F, ξ, the additive α, and text = B is C alone.
CONFIGS = {
    "l3ae": ("l3ae", dict(reg_x=-2.0, reg_e=6.0, reg_f=0.7),  # equality, ξ = 0
             dict(lam_x=-2.0, reg_e=6.0, reg_f=0.7)),
    "l3ae-xi": ("l3ae", dict(reg_x=1.0, reg_e=3.0, reg_f=0.7, xi=0.2),  # inequality
                dict(lam_x=1.0, reg_e=3.0, reg_f=0.7, xi=0.2)),
    "l3ae-adaptive": ("l3ae", dict(reg_x=1.0, reg_e=3.0, reg_f=0.7, pull="adaptive",
                                   dropout=0.2),
                      dict(lam_x=1.0, reg_e=3.0, reg_f=0.7, pull=0.5, dropout=0.2)),
    "additive": ("additive", dict(reg_x=3.0, reg_f=0.7, alpha=0.3),
                 dict(lam_x=3.0, reg_f=0.7, additive=0.3)),
    "text": ("text", dict(reg_f=0.7), dict(reg_f=0.7, text=True)),
    # a strong text pull: new items enter the top-k of old rows
    "l3ae-pull": ("l3ae", dict(reg_x=-40.0, reg_e=50.0, reg_f=0.3),
                  dict(lam_x=-40.0, reg_e=50.0, reg_f=0.3)),
    "l3ae-pull-xi": ("l3ae", dict(reg_x=1.0, reg_e=60.0, reg_f=0.3, xi=0.2),
                     dict(lam_x=1.0, reg_e=60.0, reg_f=0.3, xi=0.2)),
    # any preset takes the text pull: EASE's defaults plus λ_E is L3AE's closed form
    "ease-pull": ("ease", dict(reg_x=2.0, reg_e=5.0, reg_f=0.5),
                  dict(lam_x=2.0, reg_e=5.0, reg_f=0.5)),
}


@pytest.fixture(scope="module")
def split():
    """X (m, n_old) of the old items, E_old, E_new; the rebuild's X' = [X, 0]."""
    X, E = random_problem(m=150, n=N_OLD + N_NEW, d=8, seed=1)
    return X[:, :N_OLD].tocsr(), E[:N_OLD], E[N_OLD:]


def rebuild_ref(form, X, E_all, constraint=None):
    """Dense float64 B' of the rebuild on X' = [X, 0], solved column by column (test_solve),
    of the closed form ``form`` (a CONFIGS third column), with the new items' pull taken at the
    build's mean popularity (what a fold-in keeps)."""
    k = len(E_all) - X.shape[1]
    Xn = sp.hstack([X, sp.csr_matrix((X.shape[0], k))]).tocsr()
    C = ref_semantic(E_all, form["reg_f"]) if "reg_f" in form else None
    if form.get("text"):
        return C
    pop = np.asarray(X.sum(axis=0)).ravel()
    power = form.get("pull")
    w = ((1 + pop.mean()) / (1 + np.concatenate([pop, np.zeros(k)]))) ** power if power \
        else np.ones(len(E_all))
    p = form.get("dropout", 0.0)
    lam = form["lam_x"] + p / (1 - p) * np.asarray(Xn.sum(axis=0)).ravel()
    xi = form.get("xi", 0.0)
    constraint = constraint or ("equality" if xi == 0 else "inequality")
    B = ref_weights(Xn, lam, form.get("reg_e", 0.0), w, C, xi, constraint)
    alpha = form.get("additive", 0.0)
    if alpha:
        diag = np.diag(B).copy()
        B = (1 - alpha) * B + alpha * C
        np.fill_diagonal(B, (1 - alpha) * diag)
    return B


def assert_rel(got, ref, scale, rtol=1e-4):
    assert np.abs(got - ref).max() <= rtol * scale, np.abs(got - ref).max() / scale


def build(cfg, X, E):
    pop = np.asarray(X.sum(axis=0)).ravel()
    w = fit_weights(cfg, X, E, keep_pwe=True)
    return w, fold_state(cfg, E, w.pwe, pop)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_dense_fold_matches_rebuild(split, name):
    X, E_old, E_new = split
    cfg = Config.from_preset(CONFIGS[name][0], topk=0, dtype="float64", **CONFIGS[name][1])
    w, state = build(cfg, X, E_old)
    B2, diag_new, state2, _ = fold_in(cfg, state, w.B, E_new)
    R = rebuild_ref(CONFIGS[name][2], X, np.vstack([E_old, E_new]))
    scale = np.abs(R).max()
    assert B2.shape == (N_OLD + N_NEW,) * 2 and B2.dtype == np.float64
    assert_rel(B2[:, N_OLD:], R[:, N_OLD:], scale)  # new columns, old and new rows
    assert_rel(B2[N_OLD:], R[N_OLD:], scale)  # new rows
    np.testing.assert_allclose(diag_new, np.diag(R)[N_OLD:], atol=1e-12)
    np.testing.assert_array_equal(B2[:N_OLD, :N_OLD], w.B)  # old–old block kept as built
    assert np.abs(B2[:N_OLD, N_OLD:]).max() > 1e-3 * scale  # the new items are placed
    # what a rebuild would move instead: nonzero (text factors shift), and stated in the docs
    assert np.abs(R[:N_OLD, :N_OLD] - w.B).max() > 1e-6 * scale
    assert len(state2.s) == N_OLD + N_NEW


@pytest.mark.parametrize("name", ["l3ae-pull", "l3ae-pull-xi", "text"])
@pytest.mark.parametrize("topk", [7, 55])  # 55: old rows kept all n − 1 = 49 and have room
@pytest.mark.parametrize("prune,budget", [("row", 0.0), ("row", 0.5), ("global", 0.0)])
def test_pruned_fold_is_top_k_of_the_folded_rows(split, name, topk, prune, budget):
    X, E_old, E_new = split
    cfg = Config.from_preset(CONFIGS[name][0], topk=topk, dtype="float64", prune=prune,
                             budget=budget, **CONFIGS[name][1])
    w, state = build(cfg, X, E_old)
    pop = np.asarray(X.sum(axis=0)).ravel()
    B2, _, _, _ = fold_in(cfg, state, w.B, E_new, popularity=pop)
    # each row's budget: the build's, for a new item that of an item of count 0
    ks = np.full(N_OLD + N_NEW, min(topk, N_OLD + N_NEW - 1))
    if budget:
        ks = row_budgets(np.r_[pop, np.zeros(N_NEW)], budget_scale(pop, topk, budget), budget,
                         N_OLD + N_NEW - 1)
        np.testing.assert_array_equal(np.diff(w.B.indptr) <= ks[:N_OLD], True)
    if prune == "global":  # an old row keeps as many as the build's selection gave it
        ks[:N_OLD] = np.diff(w.B.indptr)
        assert len(set(ks[:N_OLD].tolist())) > 1 or topk == 55
    assert sp.isspmatrix_csr(B2) and B2.indptr.dtype == np.int64 and B2.dtype == np.float64
    # reference: the old model's dense old–old block beside the rebuild's new rows/columns,
    # pruned as a build prunes (an old row's dropped entries can never come back)
    dense_old = fit_weights(cfg.replace(topk=0), X, E_old).B
    R = rebuild_ref(CONFIGS[name][2], X, np.vstack([E_old, E_new]))
    hybrid = R.copy()
    hybrid[:N_OLD, :N_OLD] = dense_old
    ref = prune_topk(hybrid, topk, budgets=ks)
    np.testing.assert_array_equal(B2.indptr, ref.indptr)
    np.testing.assert_array_equal(B2.indices, ref.indices)
    assert_rel(B2.data, ref.data, np.abs(R).max())
    old = B2[:N_OLD, :N_OLD].tocoo()
    np.testing.assert_array_equal(old.data, w.B.toarray()[old.row, old.col])
    assert (np.diff(B2[:N_OLD, N_OLD:].indptr) > 0).any()  # some new items entered old rows
    if budget or prune == "global":
        return  # a rebuild shares its weights out over n + k items: another pruning
    # new rows are exactly a rebuild's pruned rows; old–old entries kept are the model's own
    # (uniform pull: the rebuild's w of the new items is the fold-in's)
    full = fit_weights(cfg, sp.hstack([X, sp.csr_matrix((X.shape[0], N_NEW))]).tocsr(),
                       np.vstack([E_old, E_new])).B
    np.testing.assert_array_equal(B2[N_OLD:].indptr, full[N_OLD:].indptr)
    np.testing.assert_array_equal(B2[N_OLD:].indices, full[N_OLD:].indices)
    assert_rel(B2[N_OLD:].toarray(), full[N_OLD:].toarray(), np.abs(R).max())


@pytest.mark.parametrize("preset,kw,form", [
    ("ease", dict(reg_x=3.0), dict(lam_x=3.0)),
    ("rdlae", dict(reg_x=3.0, dropout=0.3, xi=0.1), dict(lam_x=3.0, dropout=0.3, xi=0.1)),
    ("l3ae", dict(reg_x=5.0, reg_e=0.0), dict(lam_x=5.0))])
@pytest.mark.parametrize("topk", [0, 6])
def test_text_free_fold_is_exact_everywhere(split, preset, kw, form, topk):
    X, E_old, E_new = split
    rec = Recommender(preset, topk=topk, dtype="float64", prune="row" if topk else None,
                      **kw).fit(X, foldable=True)
    assert rec.fold_.E is None  # nothing text-related is stored
    rec.add_items([f"new{j}" for j in range(N_NEW)])
    R = rebuild_ref(form, X, np.vstack([E_old, E_new]))
    B2 = rec.B_.toarray() if topk else rec.B_
    ref = prune_topk(R, topk).toarray() if topk else R
    np.testing.assert_allclose(B2, ref, atol=1e-10 * np.abs(R).max())
    assert not B2[:, N_OLD:].any() and not B2[N_OLD:].any()
    np.testing.assert_array_equal(rec.popularity_[N_OLD:], 0)


def test_equality_with_positive_xi_gives_new_items_diag_xi(split):
    X, E_old, E_new = split
    cfg = Config.from_preset("l3ae", reg_x=1.0, reg_e=3.0, reg_f=0.7, xi=0.3, topk=0,
                             dtype="float64")
    w = solve_weights(X, reg_x=1.0, reg_e=3.0, xi=0.3, constraint="equality", E=E_old,
                      reg_f=0.7, topk=0, dtype=np.float64, keep_pwe=True)
    state = fold_state(cfg, E_old, w.pwe, np.asarray(X.sum(axis=0)).ravel())
    B2, diag_new, _, _ = fold_in(cfg, state, w.B, E_new, constraint="equality")
    R = rebuild_ref(dict(lam_x=1.0, reg_e=3.0, reg_f=0.7, xi=0.3), X,
                    np.vstack([E_old, E_new]), constraint="equality")
    np.testing.assert_allclose(diag_new, 0.3)
    np.testing.assert_allclose(np.diag(R)[N_OLD:], 0.3, atol=1e-10)  # the reference agrees
    scale = np.abs(R).max()
    assert_rel(B2[:, N_OLD:], R[:, N_OLD:], scale)
    assert_rel(B2[N_OLD:], R[N_OLD:], scale)


def test_chained_fold_ins_match_a_rebuild_of_everything(split):
    X, E_old, E_new = split
    kw = CONFIGS["l3ae-adaptive"][1]
    rec = Recommender("l3ae", topk=0, dtype="float64", **kw).fit(X, E_old, foldable=True)
    rec.add_items(["a0", "a1", "a2", "a3"], E_new[:4])
    rec.add_items([f"b{j}" for j in range(6)], E_new[4:])  # the first four are old now
    R = rebuild_ref(CONFIGS["l3ae-adaptive"][2], X, np.vstack([E_old, E_new]))
    last = slice(N_OLD + 4, None)
    assert_rel(rec.B_[:, last], R[:, last], np.abs(R).max())
    assert_rel(rec.B_[last], R[last], np.abs(R).max())
    assert rec.item_ids_[-1] == "b5" and len(rec.diag_) == N_OLD + N_NEW


def test_float32_in_float32_out(split):
    X, E_old, E_new = split
    rec = Recommender("l3ae", topk=0, dtype="float32", **CONFIGS["l3ae"][1])
    rec.fit(X, E_old.astype(np.float32), foldable=True)
    rec.add_items([f"n{j}" for j in range(N_NEW)], E_new.astype(np.float32))
    assert rec.B_.dtype == np.float32 and rec.diag_.dtype == np.float32
    assert rec.fold_.E.dtype == np.float32 and rec.fold_.pwe.dtype == np.float32
    R = rebuild_ref(CONFIGS["l3ae"][2], X, np.vstack([E_old, E_new]))
    assert_rel(rec.B_[N_OLD:], R[N_OLD:], np.abs(R).max(), rtol=5e-4)


def test_save_load_round_trip_and_refusals(split, tmp_path):
    X, E_old, E_new = split
    ids = [f"n{j}" for j in range(N_NEW)]
    rec = Recommender("l3ae", topk=5, **CONFIGS["l3ae"][1]).fit(X, E_old, foldable=True)
    rec.save(tmp_path / "m.h5")
    loaded = Recommender.load(tmp_path / "m.h5", foldable=True).add_items(ids, E_new)
    rec.add_items(ids, E_new)
    assert (loaded.B_ != rec.B_).nnz == 0 and loaded.item_ids_ == rec.item_ids_
    assert loaded.checksum_ == rec.checksum_ != ""
    with pytest.raises(DataFormatError, match="already in the model"):
        rec.add_items(["n3"], E_new[:1])
    with pytest.raises(DataFormatError, match="listed twice"):
        rec.add_items(["x", "x"], E_new[:2])
    with pytest.raises(DataFormatError, match="8-d embeddings"):
        rec.add_items(["y"], E_new[:1, :5])
    Recommender("ease", reg_x=3.0).fit(X).save(tmp_path / "plain.h5")
    with pytest.raises(DataFormatError, match="--foldable"):
        Recommender.load(tmp_path / "plain.h5", foldable=True)
    with pytest.raises(ConfigError, match="collective"):
        Recommender("collective", reg_x=3.0).fit(X, E_old, foldable=True)


# ---- CLI ----

def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def files(tmp_path):
    """ratings (old items only), embeddings of old and new items, an item table of new ones.

    New item ``new0`` has the text (embedding) of ``i0``: a new edition of it."""
    rng = np.random.default_rng(3)
    rows = ["user_id,item_id"]
    for u in range(80):
        rows += [f"u{u},i{i}" for i in rng.choice(30, 6, replace=False)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    E = rng.standard_normal((34, 32))
    E[30] = E[0]
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    ids = [f"i{i}" for i in range(30)] + [f"new{j}" for j in range(4)]
    write_embeddings(tmp_path / "e.h5", ids, E, [text_hash(i) for i in ids], {})
    (tmp_path / "new.csv").write_text("item_id,title\n" + "".join(
        f"new{j},t{j}\n" for j in range(4)))
    return tmp_path


def test_cli_build_add_items_recommend(files):
    t = files
    # built before the new items came: --catalog interactions (the default would hold them)
    r = run("build", "--interactions", t / "r.csv", "--embeddings", t / "e.h5", "--model",
            "l3ae", "--reg-x", "1", "--reg-e", "20", "--reg-f", "0.2", "--topk", "10",
            "--catalog", "interactions", "--foldable", "--out", t / "m.h5")
    assert r.exit_code == 0, r.output
    r = run("add-items", t / "m.h5", "--items", t / "new.csv", "--embeddings", t / "e.h5",
            "--out", t / "m2.h5")
    assert r.exit_code == 0, r.output
    assert "added 4 items" in r.stderr and r.stdout == ""
    m2 = Recommender.load(t / "m2.h5", foldable=True)  # stays foldable: fold-ins chain
    assert json.loads(run("info", t / "m2.h5").stdout)["foldable"] is True
    assert m2.item_ids_[-4:] == ["new0", "new1", "new2", "new3"] and m2.B_.shape == (34, 34)
    (t / "users.txt").write_text("\n".join(f"u{u}" for u in range(80)) + "\n")
    r = run("recommend", t / "m2.h5", "--interactions", t / "r.csv", "-n", "5",
            "--out", t / "recs.csv")
    assert r.exit_code == 0, r.output
    owners = {line.split(",")[0] for line in (t / "r.csv").read_text().splitlines()
              if line.endswith(",i0")}
    got = {line.split(",")[0] for line in (t / "recs.csv").read_text().splitlines()[1:]
           if line.split(",")[1] == "new0"}
    # the new edition of i0 (no interactions yet) reaches every user who has i0, and only them
    assert got == owners and len(owners) >= 5


def test_cli_add_items_errors_exit_2_and_write_nothing(files):
    t = files
    common = ["--interactions", t / "r.csv", "--embeddings", t / "e.h5", "--model", "l3ae",
              "--reg-x", "1", "--reg-e", "20", "--reg-f", "0.2", "--topk", "10",
              "--catalog", "interactions"]  # built before the new items came
    assert run("build", *common, "--out", t / "plain.h5").exit_code == 0
    assert run("build", *common, "--foldable", "--out", t / "m.h5").exit_code == 0
    (t / "old.csv").write_text("item_id\nnew1\ni3\n")
    (t / "unknown.csv").write_text("item_id\nnew1\nnope\n")
    write_embeddings(t / "e9.h5", ["new1"], np.ones((1, 9)), ["h"], {})  # the model's are 32-d
    cases = [
        (["plain.h5", "--items", t / "new.csv", "--embeddings", t / "e.h5"],
         "built without --foldable"),
        (["m.h5", "--items", t / "old.csv", "--embeddings", t / "e.h5"],
         "already in the model"),
        (["m.h5", "--items", t / "unknown.csv", "--embeddings", t / "e.h5"],
         "have no embedding (first: 'nope')"),
        (["m.h5", "--items", t / "new.csv", "--embeddings", t / "e9.h5"],
         "have no embedding"),
        (["m.h5", "--items", t / "new.csv"], "pass --embeddings"),
    ]
    for args, message in cases:
        r = run("add-items", t / args[0], *args[1:], "--out", t / "out.h5")
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr.splitlines()[0], r.stderr
        assert not (t / "out.h5").exists()
        assert not [p for p in t.iterdir() if p.name.startswith(".out.h5")]
    (t / "one.csv").write_text("item_id\nnew1\n")
    r = run("add-items", t / "m.h5", "--items", t / "one.csv", "--embeddings", t / "e9.h5",
            "--out", t / "out.h5")
    assert r.exit_code == 2 and "9-d but the model" in r.stderr.splitlines()[0], r.stderr
    assert not (t / "out.h5").exists()


def test_add_items_help_teaches():
    r = run("add-items", "--help")
    assert r.exit_code == 0 and "l3ae add-items model.h5 --items" in r.output
    assert "--foldable" in run("build", "--help").output
