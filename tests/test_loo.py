"""Sequence files and the leave-one-out protocol (FAERec / SASRec), against hand-made cases
and an independent dense float64 pipeline."""

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from l3ae import api
from l3ae.cli import cli
from l3ae.engine.models import Config
from l3ae.errors import ConfigError, DataFormatError
from l3ae.evaluation import loo_split
from l3ae.io.readers import read_interactions

from conftest import dense_ease, write_sequences

SEQS = """\
1 10 11 12 13
2 11 12 14
3 12 10
4 15
5 13 14 10 11 16
"""


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def seqfile(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(SEQS)
    return p


def rows(M, inter):
    """{user id: set of item ids} of a CSR over inter's codes."""
    return {inter.user_ids[u]: {inter.item_ids[i] for i in M.indices[M.indptr[u]:M.indptr[u + 1]]}
            for u in range(M.shape[0]) if M.indptr[u + 1] > M.indptr[u]}


def test_loo_split_by_hand(seqfile):
    inter = read_interactions(seqfile, fmt="sequences")
    assert inter.ordered and inter.shape == (5, 7)
    s = loo_split(inter)
    assert rows(s.test, inter) == {"1": {"13"}, "2": {"14"}, "3": {"10"}, "4": {"15"},
                                   "5": {"16"}}
    assert rows(s.validation, inter) == {"1": {"12"}, "2": {"12"}, "3": {"12"}, "5": {"11"}}
    assert rows(s.train, inter) == {"1": {"10", "11"}, "2": {"11"}, "5": {"13", "14", "10"}}
    # the test ranks from everything before its target; validation from train only
    (_, _, hv, mv), (_, _, ht, mt) = s.targets()
    assert rows(ht, inter)["1"] == {"10", "11", "12"} == rows(mt, inter)["1"]
    assert rows(hv, inter)["1"] == {"10", "11"} == rows(mv, inter)["1"]


def faerec_head(seqs, ratio=0.2):
    """FAERec's ht_process.classify_head_and_tail, restated: Counter over all sequences, a
    stable sort by count, the first int(len * ratio) items are head."""
    cnt = Counter(i for s in seqs for i in s)
    order = sorted(cnt, key=cnt.get, reverse=True)
    return set(order[:int(len(order) * ratio)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_items_follow_faerec(tmp_path, seed):
    rng = np.random.default_rng(seed)
    # few distinct counts, so that ties decide most of the head
    seqs = [list(rng.choice(40, rng.integers(2, 6), replace=False) + 1) for _ in range(50)]
    inter = read_interactions(write_sequences(tmp_path / "s.txt", seqs), fmt="sequences")
    head = loo_split(inter).head
    ours = {int(inter.item_ids[i]) for i in np.flatnonzero(head)}
    assert ours == faerec_head(seqs)
    assert head.sum() == int(0.2 * inter.shape[1])


def test_hr_and_ndcg_by_hand(seqfile):
    inter = read_interactions(seqfile, fmt="sequences")
    s = loo_split(inter)
    n = inter.shape[1]
    code = {it: k for k, it in enumerate(inter.item_ids)}
    # ranked lists for the validation targets: user 1 hits at rank 1, user 2 at rank 3,
    # user 3 at rank 7 (outside @5), user 5 misses; user 4 has no validation target
    fill = [code[i] for i in ("15", "16", "13", "14", "10", "11", "12")]
    top = np.full((5, 20), -1, np.int64)
    lists = {0: ["12"], 1: ["15", "16", "12"], 2: ["15", "16", "13", "14", "11", "10", "12"],
             4: ["15"]}
    for u, items in lists.items():
        top[u, :len(items)] = [code[i] for i in items]
    assert top.max() < n and fill
    out = s.metrics(top, s.validation, (5, 10))
    assert out["users"] == 4
    assert out["hr@5"] == pytest.approx(2 / 4)
    assert out["hr@10"] == pytest.approx(3 / 4)
    assert out["ndcg@5"] == pytest.approx((1 + 1 / np.log2(4)) / 4)
    assert out["ndcg@10"] == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(8)) / 4)


def reference_hr(B, hist, target, k):
    """HR@k and NDCG@k: score = hist @ B, known items never ranked, ties count against."""
    hr = nd = 0.0
    users = 0
    for h, t in zip(hist, target):
        if t is None:
            continue
        users += 1
        s = h @ B
        s[h > 0] = -np.inf
        rank = int(np.sum(s > s[t]))
        if rank < k:
            hr += 1
            nd += 1 / np.log2(rank + 2)
    return hr / users, nd / users


@pytest.mark.parametrize("refit", [False, True])
def test_loo_evaluate_matches_dense_reference(tmp_path, refit):
    rng = np.random.default_rng(3)
    n = 30
    seqs = [list(rng.choice(n, rng.integers(3, 9), replace=False)) for _ in range(80)]
    p = write_sequences(tmp_path / "s.txt", seqs, user="u", item="i")
    inter = read_interactions(p, fmt="sequences")
    code = {it: k for k, it in enumerate(inter.item_ids)}
    split = loo_split(inter)
    cfg = Config.from_preset("ease", reg_x=20.0, topk=0, dtype="float64")
    res = api.evaluate_split(split, cfg, refit=refit)

    def rows_of(cut):
        M = np.zeros((len(seqs), inter.shape[1]))
        for u, s in enumerate(seqs):
            for i in s[:len(s) - cut]:
                M[u, code[f"i{i}"]] = 1
        return M

    train, known = rows_of(2), rows_of(1)
    last = [code[f"i{s[-1]}"] for s in seqs]
    B = dense_ease(known if refit else train, 20.0)
    for k in (5, 10, 20):
        hr, nd = reference_hr(B, known, last, k)
        assert res["test"]["all"][f"hr@{k}"] == pytest.approx(hr, abs=1e-12)
        assert res["test"]["all"][f"ndcg@{k}"] == pytest.approx(nd, abs=1e-9)
    Bv = dense_ease(train, 20.0)
    hr, _ = reference_hr(Bv, train, [code[f"i{s[-2]}"] for s in seqs], 10)
    assert res["validation"]["all"]["hr@10"] == pytest.approx(hr, abs=1e-12)


@pytest.mark.parametrize("body, msg", [
    ("1 10 11\n1 12 13\n", "user '1' again (first on line 1)"),
    ("1 10 11\n2\n", "user '2' has no items"),
    ("user_id,item_id\n1,2\n", "is this a table"),
    ("\n\n", "empty file"),
])
def test_sequence_reader_errors(tmp_path, body, msg):
    p = tmp_path / "bad.txt"
    p.write_text(body)
    with pytest.raises(DataFormatError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
        read_interactions(p, fmt="sequences")
    assert str(p) in str(e.value)


def test_sequence_reader_names_line_of_bad_bytes(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"1 10 11\n2 12 \xff\xfe\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt:2: not UTF-8"):
        read_interactions(p, fmt="sequences")


def test_loo_refuses_unordered_tables(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id\nu1,a\nu1,b\nu1,c\n")
    with pytest.raises(ConfigError, match="--format sequences"):
        loo_split(read_interactions(p))
    r = run("evaluate", "--interactions", p, "--protocol", "loo", "--model", "ease")
    assert r.exit_code == 2 and "--format sequences" in r.output


def test_cli_evaluate_and_tune_loo(tmp_path):
    rng = np.random.default_rng(5)
    p = write_sequences(tmp_path / "s.txt", [rng.choice(25, 6, replace=False) + 1
                                             for _ in range(60)])
    out = tmp_path / "m.json"
    r = run("evaluate", "--interactions", p, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--baseline", "rlae", "--json", out, "-q")
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert set(res["test"]) == {"all", "head", "tail"}
    assert {"hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20"} <= set(res["test"]["all"])
    assert res["test"]["head"]["users"] + res["test"]["tail"]["users"] == 60
    assert "test: ease vs rlae" in r.output and "hr@10" in r.output
    cfg = tmp_path / "best.json"
    r = run("tune", "--interactions", p, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--grid", "reg-x=5,50", "--out", cfg, "-q", "--no-extend")
    assert r.exit_code == 0, r.output
    assert json.loads(cfg.read_text())["reg_x"] in (5.0, 50.0)
    r = run("tune", "--interactions", p, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--metric", "recall@20", "--out", tmp_path / "x.json")
    assert r.exit_code == 2 and "hr@K" in r.output
    assert not (tmp_path / "x.json").exists()


def test_tune_selects_on_a_group(tmp_path):
    rng = np.random.default_rng(6)
    p = write_sequences(tmp_path / "s.txt", [rng.zipf(1.6, 7) % 40 + 1 for _ in range(80)])
    js = tmp_path / "all.json"
    r = run("tune", "--interactions", p, "--format", "sequences", "--protocol", "loo",
            "--model", "ease", "--grid", "reg-x=1,30,1000", "--metric", "tail:hr@10",
            "--out", tmp_path / "b.json", "--json", js, "-q")
    assert r.exit_code == 0, r.output
    points = json.loads(js.read_text())["points"]
    assert {"hr@10", "tail:hr@10", "head:ndcg@10"} <= set(points[0]["metrics"])
    best = json.loads((tmp_path / "b.json").read_text())
    assert best == max(points, key=lambda q: q["metrics"]["tail:hr@10"])["config"]


def test_recency_weights_history_by_age(tmp_path):
    """score = Σ_t recency^age(t) B[item_t]: the latest item weighs 1, the one before γ, …;
    a repeated item counts at its latest position."""
    rng = np.random.default_rng(4)
    n, gamma = 25, 0.5
    seqs = [list(rng.choice(n, rng.integers(3, 9))) for _ in range(70)]  # repeats allowed
    p = write_sequences(tmp_path / "s.txt", seqs, user="u", item="i")
    inter = read_interactions(p, fmt="sequences")
    code = {it: k for k, it in enumerate(inter.item_ids)}
    split = loo_split(inter)
    cfg = Config.from_preset("ease", reg_x=10.0, topk=0, dtype="float64", recency=gamma)
    res = api.evaluate_split(split, cfg)
    flat_ = api.evaluate_split(split, cfg.replace(recency=1.0))

    def history(cut):
        H = np.zeros((len(seqs), inter.shape[1]))
        for u, s in enumerate(seqs):
            past = s[:len(s) - cut]
            for age, i in enumerate(reversed(past)):
                j = code[f"i{i}"]
                H[u, j] = max(H[u, j], gamma ** age)
        return H

    train = (history(2) > 0).astype(float)
    B = dense_ease(train, 10.0)
    for name, cut, target in (("validation", 2, -2), ("test", 1, -1)):
        H = history(cut)
        hr, nd = reference_hr(B, H, [code[f"i{s[target]}"] for s in seqs], 10)
        assert res[name]["all"]["hr@10"] == pytest.approx(hr, abs=1e-12)
        assert res[name]["all"]["ndcg@10"] == pytest.approx(nd, abs=1e-9)
    assert res["test"]["all"] != flat_["test"]["all"]  # the knob does something here


def test_recency_refused_without_order(tmp_path):
    r = run("evaluate", "--interactions", tmp_path / "missing.csv", "--recency", "0.5")
    assert r.exit_code == 2
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id\n" + "".join(f"u{u},i{(u * 7 + k) % 13}\n"
                                               for u in range(30) for k in range(5)))
    r = run("evaluate", "--interactions", p, "--model", "ease", "--recency", "0.5")
    assert r.exit_code == 2 and "ordered histories" in r.output
    r = run("evaluate", "--interactions", p, "--model", "ease", "--recency", "1.5")
    assert r.exit_code == 2 and "recency must be in (0, 1]" in r.output
