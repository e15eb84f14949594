"""The catalog of a build (--catalog): a text-aware model holds the embeddings' items without
interactions (cold, placed by their text alone, DESIGN §2 Scoring) beside the interactions'."""

import csv
import json
from collections import Counter

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import dense_l3ae, write_sequences

from l3ae import api
from l3ae.cli import cli
from l3ae.engine.models import Config
from l3ae.errors import ConfigError
from l3ae.io.readers import load_aligned
from l3ae.io.readers import read_interactions
from l3ae.model import Recommender

N_WARM, N_COLD, CLUSTERS, D = 30, 10, 4, 8
L3AE = dict(reg_x=1.0, reg_e=20.0, reg_f=0.5, topk=0, dtype="float64")
FLAGS = ["--model", "l3ae", "--reg-x", "1", "--reg-e", "20", "--reg-f", "0.5", "--topk", "0",
         "--dtype", "float64"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def cluster_of(item):
    """w<k> and c<k>: items of cluster k mod 4 (their vectors lie around its centre)."""
    return int(item[1:]) % CLUSTERS


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Interactions on 30 warm items (each user keeps to one cluster, plus one item
    anywhere) and vectors of those and 10 cold items, in a shuffled order."""
    tmp = tmp_path_factory.mktemp("shop")
    rng = np.random.default_rng(0)
    warm, cold = [f"w{i}" for i in range(N_WARM)], [f"c{i}" for i in range(N_COLD)]
    rows = []
    for u in range(80):
        mine = [w for w in warm if cluster_of(w) == u % CLUSTERS]
        picks = list(rng.choice(mine, 5, replace=False)) + [str(rng.choice(warm))]
        rows += [(f"u{u}", i) for i in dict.fromkeys(picks)]
    with open(tmp / "r.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("user_id", "item_id"), *rows])
    centres = 2 * rng.standard_normal((CLUSTERS, D))
    ids = [str(i) for i in rng.permutation(warm + cold)]
    E = np.array([centres[cluster_of(i)] for i in ids]) + 0.3 * rng.standard_normal((len(ids), D))
    E = (E / np.linalg.norm(E, axis=1, keepdims=True)).astype(np.float32)
    np.savez(tmp / "v.npz", ids=np.array(ids), embeddings=E)
    return {"dir": tmp, "csv": tmp / "r.csv", "vectors": tmp / "v.npz", "rows": rows,
            "ids": ids, "E": dict(zip(ids, E)), "cold": [str(i) for i in ids if i in cold]}


def matrix_of(rows, item_ids):
    """X (users, len(item_ids)) dense float64 of (user, item) rows, in item_ids' order."""
    users = list(dict.fromkeys(u for u, _ in rows))
    X = np.zeros((len(users), len(item_ids)))
    col = {i: k for k, i in enumerate(item_ids)}
    for u, i in rows:
        if i in col:
            X[users.index(u), col[i]] = 1
    return X


def build(shop, out, **cfg):
    data = api.Data(interactions=str(shop["csv"]), embeddings=str(cfg.pop("vectors", shop["vectors"])))
    said = []
    rec, _, _ = api.build(data, Config.from_preset(cfg.pop("model", "l3ae"), **cfg), out,
                          warn=said.append, quiet=True)
    return rec, said


def test_a_text_aware_build_holds_every_item_of_its_embeddings_and_matches_dense_float64(
        shop, tmp_path):
    rec, said = build(shop, tmp_path / "m.h5", **L3AE)
    warm = list(dict.fromkeys(i for _, i in shop["rows"]))  # order of first appearance
    assert rec.item_ids_ == warm + sorted(shop["cold"]) and said == []
    assert sorted(rec.item_ids_) == sorted(shop["ids"])
    counts = Counter(i for _, i in shop["rows"])
    np.testing.assert_array_equal(rec.popularity_, [counts[i] for i in rec.item_ids_])
    X = matrix_of(shop["rows"], rec.item_ids_)
    E = np.array([shop["E"][i] for i in rec.item_ids_], np.float64)
    ref = dense_l3ae(sp.csr_matrix(X), E, L3AE["reg_x"], L3AE["reg_e"], L3AE["reg_f"])
    np.testing.assert_allclose(rec.B_, ref, atol=1e-9, rtol=1e-7)
    # the cold items' columns carry weight from their text (their G columns are zero)
    assert np.abs(ref[:N_WARM, N_WARM:]).max() > 0.05 * np.abs(ref).max()
    # the vectors' rows in another order: the same model, bit for bit
    np.savez(tmp_path / "rev.npz", ids=np.array(shop["ids"][::-1]),
             embeddings=np.array([shop["E"][i] for i in shop["ids"][::-1]]))
    rev, _ = build(shop, tmp_path / "rev.h5", vectors=tmp_path / "rev.npz", **L3AE)
    assert rev.item_ids_ == rec.item_ids_
    np.testing.assert_array_equal(rev.B_, rec.B_)
    rec32, _ = build(shop, tmp_path / "m32.h5", **dict(L3AE, dtype="float32"))
    assert rec32.B_.dtype == np.float32
    np.testing.assert_allclose(rec32.B_, ref, atol=5e-4 * np.abs(ref).max())


# pruned: a cold item's incoming weights are a text pull spread over its neighbours, smaller
# than co-occurrences, so magnitude pruning thins them first (here topk 8 of 40 drops them
# from this top-3, 12 keeps two of three)
@pytest.mark.parametrize("topk", ["0", "16"])
def test_a_user_near_a_cold_item_in_text_gets_it_recommended(shop, tmp_path, topk):
    out = tmp_path / "m.h5"
    flags = [f if f != "0" else topk for f in FLAGS]
    assert run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"], *flags,
               "--out", out).exit_code == 0
    # a new user who bought every warm item of cluster 1: its cold items are the text's pick
    probe = tmp_path / "probe.csv"
    mine = [f"w{i}" for i in range(N_WARM) if i % CLUSTERS == 1]
    probe.write_text("user_id,item_id\n" + "".join(f"probe,{i}\n" for i in mine))
    recs = tmp_path / "recs.csv"
    r = run("recommend", out, "--interactions", probe, "-n", "3", "--out", recs)
    assert r.exit_code == 0, r.output
    top = [row["item_id"] for row in csv.DictReader(open(recs))]
    assert len(top) == 3 and all(i in shop["cold"] and cluster_of(i) == 1 for i in top), top
    if topk != "0":
        assert sp.issparse(Recommender.load(out).B_)


def test_catalog_interactions_is_the_model_built_before_the_catalog(shop, tmp_path):
    cfg = Config.from_preset("l3ae", catalog="interactions", **L3AE)
    rec, _ = build(shop, tmp_path / "m.h5", **dict(L3AE, catalog="interactions"))
    inter = read_interactions(str(shop["csv"]))  # the build of l3ae before --catalog
    X, ids = inter.matrix(np.float32), inter.item_ids
    E, _ = load_aligned(shop["vectors"], ids)
    before = Recommender(cfg).fit(X, E, item_ids=ids)
    assert rec.item_ids_ == ids and rec.config_ == before.config_
    np.testing.assert_array_equal(rec.B_, before.B_)
    np.testing.assert_array_equal(rec.diag_, before.diag_)


def test_the_model_records_the_catalog_and_info_counts_cold_items(shop, tmp_path):
    for catalog, cold in (("both", N_COLD), ("interactions", 0)):
        out = tmp_path / f"{catalog}.h5"
        r = run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"], *FLAGS,
                "--catalog", catalog, "--out", out)
        assert r.exit_code == 0, r.output
        n = N_WARM + cold
        assert r.stderr.startswith(f"l3ae: {n} items ({cold} cold: no interactions), 80 users, "
                                   f"{len(shop['rows'])} interactions -> {out}"), r.stderr
        info = json.loads(run("info", out).output)
        assert info["config"]["catalog"] == catalog and info["cold items"] == cold
        assert info["items"] == n
    # a file of format 3 knows no catalog: it was built on the interactions' items
    with h5py.File(out, "a") as f:
        cfg = json.loads(f.attrs["config"])
        f.attrs["config"] = json.dumps({k: v for k, v in cfg.items() if k != "catalog"})
        f.attrs["encoding-version"] = 3
    assert Recommender.load(out).config_.catalog == "interactions"
    assert Config.from_preset("l3ae").catalog == "both"
    assert Config.from_preset("ease", reg_e=5.0).catalog == "both"  # text enters: its default


def test_catalog_embeddings_holds_exactly_the_vectors_items_and_says_what_it_left_out(shop,
                                                                                  tmp_path):
    gone = ["w3", "w7", "w11"]
    ids = [i for i in shop["ids"] if i not in gone]
    part = tmp_path / "part.npz"
    np.savez(part, ids=np.array(ids), embeddings=np.array([shop["E"][i] for i in ids]))
    rec, said = build(shop, tmp_path / "m.h5", vectors=part, catalog="embeddings", **L3AE)
    assert sorted(rec.item_ids_) == sorted(ids)
    lost = sum(i in gone for _, i in shop["rows"])
    assert said == [f"--catalog embeddings: 3 items of the interactions have no vector in {part}; "
                    f"their {lost} interactions are left out"]
    counts = Counter(i for _, i in shop["rows"])
    np.testing.assert_array_equal(rec.popularity_, [counts[i] for i in rec.item_ids_])
    kept = [(u, i) for u, i in shop["rows"] if i not in gone]
    X = sp.csr_matrix(matrix_of(kept, rec.item_ids_))
    E = np.array([shop["E"][i] for i in rec.item_ids_], np.float64)
    np.testing.assert_allclose(rec.B_, dense_l3ae(X, E, 1.0, 20.0, 0.5), atol=1e-9, rtol=1e-7)
    # the default (both) refuses interaction items without a vector, naming the count
    r = run("build", "--interactions", shop["csv"], "--embeddings", part, *FLAGS, "--out",
            tmp_path / "x.h5")
    assert r.exit_code == 2 and f"3 of {N_WARM} item ids have no embedding" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_text_free_presets_keep_the_interactions_items_and_say_the_vectors_went_unused(
        shop, tmp_path):
    rec, said = build(shop, tmp_path / "m.h5", model="ease", reg_x=10.0)
    assert len(rec.item_ids_) == N_WARM and rec.config_.catalog == "interactions"
    assert said == [f"--embeddings {shop['vectors']}: not used, model 'ease' uses no text (its "
                    "items are the interactions')"]
    for catalog in ("both", "embeddings"):  # refused: a cold item of EASE has zero weights
        r = run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"],
                "--model", "ease", "--catalog", catalog, "--out", tmp_path / "x.h5")
        assert r.exit_code == 2 and r.stderr.splitlines() == [
            f"Error: --catalog {catalog}: a catalog taken from the embeddings' items does not "
            "enter model 'ease', which uses no text (an item without interactions gets zero "
            "weights); drop it (or give --reg-e, the pull towards C)"]
    r = run("build", "--interactions", shop["csv"], "--model", "ease", "--catalog",
            "interactions", "--out", tmp_path / "x.h5")
    assert r.exit_code == 0 and r.stderr.startswith(f"ease: {N_WARM} items, 80 users")


def test_bad_catalog_values_exit_2_with_one_line(shop, tmp_path):
    r = run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"],
            "--catalog", "all", "--out", tmp_path / "x.h5")
    assert r.exit_code == 2 and r.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--catalog': 'all' is not one of 'interactions', "
        "'embeddings', 'both'.")
    (tmp_path / "c.json").write_text(json.dumps({"model": "l3ae", "catalog": "all"}))
    r = run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"],
            "--config", tmp_path / "c.json", "--out", tmp_path / "x.h5")
    assert r.exit_code == 2 and r.stderr.splitlines() == [
        f"Error: {tmp_path / 'c.json'}: catalog must be one of interactions, embeddings, both, "
        "got 'all'"]
    with pytest.raises(ConfigError, match="catalog must be one of"):
        Recommender("l3ae", catalog="every")
    assert not (tmp_path / "x.h5").exists()


def test_evaluate_and_tune_rank_the_catalogs_items_with_interactions(shop, tmp_path):
    data = api.Data(interactions=str(shop["csv"]), embeddings=str(shop["vectors"]))
    res = api.evaluate(data, Config.from_preset("l3ae", **L3AE), baseline="ease", quiet=True)
    d = res["data"]
    assert d["items"] == N_WARM and d["train"] + d["validation"] + d["test"] == len(shop["rows"])
    assert res["config"]["catalog"] == "both" and res["baseline"]["config"]["catalog"] == (
        "interactions")
    gone = ["w3", "w7"]
    ids = [i for i in shop["ids"] if i not in gone]
    np.savez(tmp_path / "part.npz", ids=np.array(ids),
             embeddings=np.array([shop["E"][i] for i in ids]))
    part = api.Data(interactions=str(shop["csv"]), embeddings=str(tmp_path / "part.npz"))
    cfg = Config.from_preset("l3ae", catalog="embeddings", **L3AE)
    d = api.evaluate(part, cfg, quiet=True)["data"]
    kept = sum(i not in gone for _, i in shop["rows"])
    assert d["items"] == N_WARM - 2 and d["train"] + d["validation"] + d["test"] == kept
    run_ = api.tune(part, cfg, grids=["reg_x=1,3"], quiet=True, out=tmp_path / "best.json",
                    extend=False)
    assert len(run_["results"]) == 2 and all(r["metrics"] for r in run_["results"])
    assert json.loads((tmp_path / "best.json").read_text())["catalog"] == "embeddings"


def test_add_items_on_a_model_with_cold_items(shop, tmp_path):
    out = tmp_path / "m.h5"
    data = api.Data(interactions=str(shop["csv"]), embeddings=str(shop["vectors"]))
    api.build(data, Config.from_preset("l3ae", **L3AE), out, foldable=True, quiet=True)
    (tmp_path / "again.csv").write_text(f"item_id\n{shop['cold'][0]}\n")
    r = run("add-items", out, "--items", tmp_path / "again.csv", "--embeddings",
            shop["vectors"], "--out", tmp_path / "x.h5")
    assert r.exit_code == 2 and r.stderr.splitlines() == [
        f"Error: {tmp_path / 'again.csv'}: 1 item ids are already in the model {out} (first: "
        f"{shop['cold'][0]!r}) (built with --catalog both, it holds every item of its "
        "embeddings, those without interactions too); list only new items"]
    # a new item folded in equals a rebuild that holds it as one more cold item
    rng = np.random.default_rng(5)
    new = rng.standard_normal(D).astype(np.float32)
    new /= np.linalg.norm(new)
    np.savez(tmp_path / "new.npz", ids=np.array(["n1"]), embeddings=new[None])
    (tmp_path / "new.csv").write_text("item_id\nn1\n")
    r = run("add-items", out, "--items", tmp_path / "new.csv", "--embeddings",
            tmp_path / "new.npz", "--out", tmp_path / "folded.h5")
    assert r.exit_code == 0, r.output
    folded = Recommender.load(tmp_path / "folded.h5")
    np.savez(tmp_path / "all.npz", ids=np.array(shop["ids"] + ["n1"]),
             embeddings=np.array([shop["E"][i] for i in shop["ids"]] + [new]))
    rebuilt, _ = build(shop, tmp_path / "r.h5", vectors=tmp_path / "all.npz", **L3AE)
    assert folded.item_ids_ == rebuilt.item_ids_ and folded.item_ids_[-1] == "n1"
    np.testing.assert_allclose(folded.B_[-1], rebuilt.B_[-1], atol=1e-9)
    np.testing.assert_allclose(folded.B_[:, -1], rebuilt.B_[:, -1], atol=1e-9)
    assert np.abs(rebuilt.B_[:, -1]).max() > 1e-3  # the new item is reached by its text


def test_a_ridge_that_only_the_cold_items_lack_is_refused_naming_one(shop, tmp_path):
    """With dropout, Λ_j = λ_X + p/(1−p)·G_jj: an item without interactions has the least."""
    fewest = min(Counter(i for _, i in shop["rows"]).values())
    reg_x = -20.0 - fewest / 2  # a = λ_X + 20 + count: > 0 for the warm, < 0 for the cold
    r = run("build", "--interactions", shop["csv"], "--embeddings", shop["vectors"],
            "--model", "l3ae", "--reg-e", "20", "--dropout", "0.5", "--reg-x", reg_x,
            "--out", tmp_path / "x.h5")
    assert r.exit_code == 2
    line = r.stderr.splitlines()[-1]
    assert f"a = {-fewest / 2:g} at item 'c" in line and f"({N_COLD} items)" in line, line


def test_slist_with_text_leaves_out_the_events_of_items_without_a_vector(tmp_path):
    rng = np.random.default_rng(3)
    seqs = [list(rng.choice(12, 6)) for _ in range(40)]
    write_sequences(tmp_path / "s.txt", seqs, user="u", item="i")
    write_sequences(tmp_path / "t.txt", [[i for i in s if i != 4] for s in seqs], user="u",
                    item="i")
    ids = [f"i{i}" for i in range(12) if i != 4]
    np.savez(tmp_path / "v.npz", ids=np.array(ids),
             embeddings=rng.standard_normal((11, 5)).astype(np.float32))
    cfg = dict(model="slist", reg_e=5.0, reg_f=0.5, alpha=0.5, topk=0, dtype="float64")
    models = []
    for name, catalog in (("s.txt", "embeddings"), ("t.txt", "both")):
        data = api.Data(interactions=str(tmp_path / name), fmt="sequences",
                        embeddings=str(tmp_path / "v.npz"))
        rec, _, _ = api.build(data, Config.from_preset(catalog=catalog, **cfg),
                              tmp_path / f"{name}.h5", quiet=True, warn=lambda m: None)
        models.append(rec)
    assert models[0].item_ids_ == models[1].item_ids_ and "i4" not in models[0].item_ids_
    np.testing.assert_allclose(models[0].B_, models[1].B_, atol=1e-12)


def test_a_dataset_folders_split_follows_the_catalog(tmp_path):
    rng = np.random.default_rng(1)
    mats = [sp.random(30, 8, density=p, random_state=rng, format="csr") for p in (.4, .1, .1)]
    for m, name in zip(mats, ("trn_mat.npz", "val_mat.npz", "tst_mat.npz")):
        m.data[:] = 1
        sp.save_npz(tmp_path / name, m)
    (tmp_path / "diverse_item_profile_0.json").write_text(
        "".join(json.dumps({"item_id": i, "profile": f"item {i}"}) + "\n" for i in range(8)))
    ids = [str(i) for i in range(1, 8)] + ["x"]  # item 0 has no vector, x no interactions
    np.savez(tmp_path / "v.npz", ids=np.array(ids),
             embeddings=rng.standard_normal((8, 4)).astype(np.float32))
    data = api.Data(dataset_dir=str(tmp_path), embeddings=str(tmp_path / "v.npz"))
    said = []
    rec, _, nnz = api.build(data, Config.from_preset("l3ae", catalog="embeddings", **L3AE),
                            tmp_path / "m.h5", quiet=True, warn=said.append)
    total = (mats[0] + mats[1] + mats[2]).tocsc()
    total.data[:] = 1
    assert rec.item_ids_ == ids and nnz == total[:, 1:].nnz
    np.testing.assert_array_equal(rec.popularity_, np.r_[np.diff(total.indptr)[1:], 0])
    lost = sum(m[:, 0].nnz for m in mats)
    assert said == [f"--catalog embeddings: 1 items of the interactions have no vector in "
                    f"{tmp_path / 'v.npz'}; their {lost} interactions are left out"]
