import json

import numpy as np
import pytest
from click.testing import CliRunner

from l3ae.cli import cli
from l3ae.io.embeddings import write_embeddings, text_hash
from l3ae.model import Recommender


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,rating"]
    for u in range(60):
        for i in rng.choice(25, 8, replace=False):
            rows.append(f"u{u},i{i},{rng.integers(1, 6)}")
    inter = tmp_path / "r.csv"
    inter.write_text("\n".join(rows) + "\n")
    ids = [f"i{i}" for i in range(25)]
    E = rng.standard_normal((25, 6)).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    emb = tmp_path / "e.h5"
    write_embeddings(emb, ids, E, [text_hash(i) for i in ids], {})
    return tmp_path, inter, emb


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_every_help_exits_zero():
    for cmd in ([], ["build"], ["evaluate"], ["recommend"], ["info"], ["embed"], ["tune"],
                ["export-encoder"]):
        r = run(*cmd, "--help")
        assert r.exit_code == 0, (cmd, r.output)
        assert "Usage" in r.output


def test_build_recommend_info(data):
    tmp, inter, emb = data
    out = tmp / "m.h5"
    r = run("build", "--interactions", inter, "--embeddings", emb, "--model", "l3ae",
            "--reg-x", "1", "--reg-e", "2", "--reg-f", "0.5", "--topk", "10", "--out", out)
    assert r.exit_code == 0, r.output
    recs = tmp / "recs.csv"
    (tmp / "users.txt").write_text("u3\nnobody\n")
    r = run("recommend", out, "--interactions", inter, "--users", tmp / "users.txt", "-n", "5",
            "--out", recs)
    assert r.exit_code == 0, r.output
    lines = recs.read_text().splitlines()
    assert lines[0] == "user_id,item_id,rank,score,fallback"
    u3 = [line.split(",") for line in lines[1:] if line.startswith("u3,")]
    assert [row[2] for row in u3] == ["1", "2", "3", "4", "5"]
    seen = {line.split(",")[1] for line in inter.read_text().splitlines() if line.startswith("u3,")}
    assert not seen & {row[1] for row in u3} and all(row[4] == "0" for row in u3)
    fb = [line.split(",") for line in lines[1:] if line.startswith("nobody,")]
    assert len(fb) == 5 and all(row[4] == "1" for row in fb)
    r = run("info", out)
    assert r.exit_code == 0 and json.loads(r.output)["config"]["model"] == "l3ae"
    info = json.loads(r.output)
    assert info["foldable"] is False
    m = Recommender.load(out)
    per_row = np.diff(m.B_.indptr)
    assert info["weights"] == m.B_.nnz and info["storage"] == "csr"
    assert info["weights per item"] == {"min": int(per_row.min()),
                                        "median": float(np.median(per_row)),
                                        "max": int(per_row.max())}
    assert info["of dense"] == m.B_.nnz / len(per_row) ** 2
    assert info["file bytes"] == out.stat().st_size and info["dense float32 bytes"] == 4 * len(per_row) ** 2


def test_evaluate_writes_json(data):
    tmp, inter, _ = data
    r = run("evaluate", "--interactions", inter, "--model", "ease", "--reg-x", "5",
            "--json", tmp / "m.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp / "m.json").read_text())
    assert set(res["test"]) == {"all", "head", "tail"}
    assert 0 <= res["validation"]["all"]["recall@20"] <= 1
    assert "recall@20" in r.stdout.splitlines()[0]  # stdout holds only the table


def test_evaluate_with_baseline_compares_on_one_split(data):
    tmp, inter, emb = data
    r = run("evaluate", "--interactions", inter, "--embeddings", emb, "--model", "l3ae",
            "--reg-x", "1", "--reg-e", "4", "--reg-f", "0.5", "--baseline", "ease",
            "--json", tmp / "m.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp / "m.json").read_text())
    assert res["baseline"]["config"]["model"] == "ease"
    a, b = res["test"]["all"]["recall@20"], res["baseline"]["test"]["all"]["recall@20"]
    assert f"recall@20 {a:.4f} vs {b:.4f}" in r.stdout
    assert res["data"] == res["baseline"]["data"]  # the same split


def test_bad_input_exit_code_2_and_nothing_written(data):
    tmp, inter, emb = data
    bad = tmp / "bad.csv"
    bad.write_text("user_id,item_id\nu1\n")
    r = run("build", "--interactions", bad, "--model", "ease", "--out", tmp / "x.h5")
    assert r.exit_code == 2
    assert "bad.csv:2: expected 2 columns" in r.output
    assert not (tmp / "x.h5").exists()
    # text-aware model without embeddings
    r = run("build", "--interactions", inter, "--model", "l3ae", "--out", tmp / "x.h5")
    assert r.exit_code == 2 and "--embeddings" in r.output
    # total ridge not positive
    r = run("build", "--interactions", inter, "--model", "ease", "--reg-x", "-1",
            "--out", tmp / "x.h5")
    assert r.exit_code == 2 and "total ridge" in r.output
    assert not (tmp / "x.h5").exists()


def test_refuses_foreign_model_file(data):
    tmp, inter, emb = data
    r = run("info", emb)
    assert r.exit_code == 2 and "not an l3ae model" in r.output
