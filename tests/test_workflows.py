"""The api workflows beyond the CLI tables: what they record and pass along."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import scipy.sparse as sp
from conftest import random_problem, write_ratings

from l3ae import api
from l3ae.engine.models import Config
from l3ae.io.embeddings import text_hash, write_embeddings
from l3ae.model import Recommender


def test_model_files_store_int32_columns_and_read_back_exactly(tmp_path):
    X, _ = random_problem(m=100, n=30, seed=2)
    rec = Recommender("ease", reg_x=10.0, topk=7).fit(X)
    rec.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5") as f:
        assert f["B/indices"].dtype == np.int32 and f["B/data"].compression is None
        assert f.attrs["encoding-version"] == 4
    back = Recommender.load(tmp_path / "m.h5")
    assert (back.B_ != rec.B_).nnz == 0 and np.array_equal(back.B_.indptr, rec.B_.indptr)


def test_the_command_lets_blas_threads_sleep_unless_told_otherwise():
    code = "import os, l3ae.cli; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert got.stdout.strip() == "12"
    env["OPENBLAS_THREAD_TIMEOUT"] = "6"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert got.stdout.strip() == "6"


def test_baseline_keeps_the_models_size_and_tune_json_keeps_refused_points(tmp_path):
    inter = write_ratings(tmp_path / "r.csv", users=120, items=25, per_user=8)
    data = api.Data(interactions=str(inter))
    cfg = Config.from_preset("rdlae", reg_x=20.0, topk=5, prune="row", budget=0.5)
    res = api.evaluate(data, cfg, baseline="ease")
    base = res["baseline"]["config"]
    assert base["budget"] == 0.5 and base["topk"] == 5 and base["prune"] == "row"
    run = api.tune(data, Config.from_preset("l3ae", reg_e=0.0, reg_x=5.0),
                   grids=["reg_x=-50,10"], json_out=tmp_path / "pts.json", extend=False)
    pts = json.loads((tmp_path / "pts.json").read_text())["points"]
    assert len(pts) == 2 == len(run["results"])
    refused = [p for p in pts if p["metrics"] is None]
    assert len(refused) == 1 and "total ridge" in refused[0]["error"]


def test_add_items_warns_when_text_made_and_imported_vectors_meet(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id"] + [f"u{u},i{i}" for u in range(60)
                                  for i in rng.choice(20, 5, replace=False)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    ids = [f"i{i}" for i in range(22)]
    E = rng.standard_normal((22, 8)).astype(np.float32)
    write_embeddings(tmp_path / "text.h5", ids, E, [text_hash(i) for i in ids],
                     {"encoder": {"dim": 8}})  # no name: l3ae cannot compare encoders
    np.savez(tmp_path / "v.npz", ids=np.array(ids), embeddings=E)
    api.build(api.Data(interactions=str(tmp_path / "r.csv"), embeddings=str(tmp_path / "text.h5")),
              Config.from_preset("l3ae", reg_x=1.0, reg_e=5.0, topk=5, catalog="interactions"),
              tmp_path / "m.h5", foldable=True)  # built before i20, i21 came
    (tmp_path / "new.csv").write_text("item_id\ni20\ni21\n")
    said = []
    api.add_items(tmp_path / "m.h5", tmp_path / "new.csv", tmp_path / "m2.h5",
                  embeddings=str(tmp_path / "v.npz"), warn=said.append)
    assert len(said) == 1 and "imported vectors" in said[0] and "embedded from texts" in said[0]
    said.clear()
    api.add_items(tmp_path / "m.h5", tmp_path / "new.csv", tmp_path / "m3.h5",
                  embeddings=str(tmp_path / "text.h5"), warn=said.append)
    assert said == []
    assert sp.issparse(Recommender.load(tmp_path / "m2.h5").B_)
