"""Batch recommend: chunked scoring and streaming, --exclude/--candidates, output formats, the
sparse-accumulator kernel and the score formatter — each against an independent reference
(dense float64 numpy scoring, Python's csv/json/"%.6g")."""

import csv
import dataclasses
import io
import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import write_ratings

from l3ae.cli import cli
from l3ae.engine import topn
from l3ae.io import _fastio
from l3ae.io.interactions import NotStreamable
from l3ae.io.stream import stream_chunks
from l3ae.model import Recommender

N_ITEMS = 30


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An EASE model pruned to 6 weights per row (so many items get no score from a history and
    rank on 0 — the kernel's untouched-item path), and its grouped ratings file."""
    tmp = tmp_path_factory.mktemp("rec")
    ratings = write_ratings(tmp / "r.csv", 80, N_ITEMS, 6, seed=3)
    X = sp.lil_matrix((80, N_ITEMS))
    for user, items in histories(ratings).items():
        X[int(user[1:]), [int(i[1:]) for i in items]] = 1
    with open(ratings, "a") as fh:  # an item the model does not know; a user with only that
        fh.write("u80,zz\nu80,i3\nghost,zz\n")
    rec = Recommender("ease", reg_x=2.0, topk=6).fit(X.tocsr(),
                                                     item_ids=[f"i{j}" for j in range(N_ITEMS)])
    path = tmp / "m.h5"
    rec.save(path)
    return path, ratings


def histories(path):
    """{user: [items]} of a user_id,item_id file, users in order of first appearance."""
    hist = {}
    with open(path, newline="") as fh:
        for row in list(csv.reader(fh))[1:]:
            hist.setdefault(row[0], []).append(row[1])
    return hist


def reference(model_path, ratings, N, allowed=None):
    """{user: [(item, score)]}: dense float64 x_u·B, seen and disallowed items excluded, ties to
    the smaller item index; users with no known item get the most popular allowed items."""
    rec = Recommender.load(model_path)
    B = rec.B_.toarray().astype(np.float64)
    n = B.shape[0]
    allowed = np.ones(n, bool) if allowed is None else allowed
    pos = {it: k for k, it in enumerate(rec.item_ids_)}
    out = {}
    for user, items in histories(ratings).items():
        seen = [pos[i] for i in items if i in pos]
        if not seen:
            popular = [j for j in np.argsort(-rec.popularity_, kind="stable") if allowed[j]]
            out[user] = [(rec.item_ids_[j], float(rec.popularity_[j])) for j in popular[:N]]
            continue
        s = B[seen].sum(axis=0)
        s[seen] = -np.inf
        s[~allowed] = -np.inf
        order = np.lexsort((np.arange(n), -s))
        out[user] = [(rec.item_ids_[j], s[j]) for j in order[:N] if s[j] > -np.inf]
    return out


def parse_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["user_id", "item_id", "rank", "score", "fallback"]
    out = {}
    for user, item, rank, score, _ in rows[1:]:
        out.setdefault(user, []).append((item, float(score)))
        assert int(rank) == len(out[user])
    return out


def assert_same_lists(got, ref):
    assert list(got) == [u for u in ref if ref[u]]
    for user, lst in ref.items():
        if lst:
            assert [i for i, _ in got[user]] == [i for i, _ in lst], user
            np.testing.assert_allclose([s for _, s in got[user]], [s for _, s in lst],
                                       rtol=1e-5, atol=1e-6)


def test_chunked_output_equals_unchunked_and_the_dense_reference(model, tmp_path):
    path, ratings = model
    whole = run("recommend", path, "--interactions", ratings, "-n", "7", "--all")
    assert whole.exit_code == 0, whole.output
    assert "skipped 2 interactions on 1 items" in whole.stderr
    assert_same_lists(parse_csv(whole.stdout), reference(path, ratings, 7))
    for chunk in (1, 3, 7, 80, 1000):
        out = tmp_path / f"c{chunk}.csv"
        r = run("recommend", path, "--interactions", ratings, "-n", "7", "--chunk", chunk,
                "--out", out)
        assert r.exit_code == 0, r.output
        assert out.read_text() == whole.stdout, chunk


def test_stream_blocks_cut_anywhere_give_the_same_histories(model):
    path, ratings = model
    ids = Recommender.load(path).item_ids_
    hist = histories(ratings)
    for block in (7, 64, 1000, 1 << 20):
        users, rows = [], []
        for uids, X, unknown in stream_chunks(ratings, ids, chunk=5, block=block):
            users += uids
            rows += [sorted(ids[j] for j in X[k].indices) for k in range(X.shape[0])]
        assert users == list(hist)
        assert rows == [sorted(i for i in hist[u] if i != "zz") for u in users]


def test_exclude_never_appears_and_lists_stay_full(model, tmp_path):
    path, ratings = model
    ref = reference(path, ratings, 5)
    banned = sorted({lst[0][0] for lst in ref.values() if lst})[:4]  # some users' top items
    (tmp_path / "ex.txt").write_text("item_id\n" + "\n".join(banned + ["nope1", "nope2"]) + "\n")
    r = run("recommend", path, "--interactions", ratings, "-n", "5", "--exclude",
            tmp_path / "ex.txt")
    assert r.exit_code == 0, r.output
    assert "2 of 6 item ids are not in the model (first: nope1, nope2)" in r.stderr
    got = parse_csv(r.stdout)
    assert all(i not in banned for lst in got.values() for i, _ in lst)
    assert all(len(lst) == 5 for lst in got.values())
    allowed = np.array([f"i{j}" not in banned for j in range(N_ITEMS)])
    assert_same_lists(got, reference(path, ratings, 5, allowed))


def test_candidates_restrict_lists_which_stay_full_when_enough_remain(model, tmp_path):
    path, ratings = model
    cand = [f"i{j}" for j in range(0, N_ITEMS, 2)]  # 15 items; a history holds at most 7
    (tmp_path / "c.txt").write_text("\n".join(cand) + "\n")
    r = run("recommend", path, "--interactions", ratings, "-n", "6", "--candidates",
            tmp_path / "c.txt")
    assert r.exit_code == 0, r.output
    got = parse_csv(r.stdout)
    assert all(i in cand for lst in got.values() for i, _ in lst)
    assert all(len(lst) == 6 for lst in got.values())
    allowed = np.array([f"i{j}" in cand for j in range(N_ITEMS)])
    assert_same_lists(got, reference(path, ratings, 6, allowed))
    # fewer allowed items than N: each list holds exactly the unseen candidates
    (tmp_path / "c3.txt").write_text("i1\ni2\ni3\n")
    r = run("recommend", path, "--interactions", ratings, "-n", "6", "--candidates",
            tmp_path / "c3.txt")
    got, hist = parse_csv(r.stdout), histories(ratings)
    for user, lst in got.items():
        known = [i for i in hist[user] if i != "zz"]
        want = {"i1", "i2", "i3"} - set(known) if known else {"i1", "i2", "i3"}
        assert {i for i, _ in lst} == want, user


def test_all_and_users_clash(model, tmp_path):
    path, ratings = model
    (tmp_path / "u.txt").write_text("u1\n")
    r = run("recommend", path, "--interactions", ratings, "--all", "--users", tmp_path / "u.txt")
    assert r.exit_code == 2
    assert "give --all or --users FILE, not both" in r.stderr


def test_users_keep_their_order_and_unknown_users_get_popular_items(model, tmp_path):
    path, ratings = model
    (tmp_path / "u.txt").write_text("user_id\nu7\nnobody\nu2\n")
    r = run("recommend", path, "--interactions", ratings, "--users", tmp_path / "u.txt",
            "-n", "4")
    assert r.exit_code == 0, r.output
    got, ref = parse_csv(r.stdout), reference(path, ratings, 4)
    assert list(got) == ["u7", "nobody", "u2"]
    ref["nobody"] = ref["ghost"]  # both have no known item: the popular items
    assert_same_lists(got, {u: ref[u] for u in got})
    assert all(line.endswith(",1") for line in r.stdout.splitlines() if "nobody" in line)


def test_grouped_and_shuffled_files_give_the_same_lists(model, tmp_path):
    path, ratings = model
    lines = ratings.read_text().splitlines()
    rows = lines[1:]
    np.random.default_rng(1).shuffle(rows)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([lines[0]] + rows) + "\n")
    a = run("recommend", path, "--interactions", ratings, "-n", "5")
    b = run("recommend", path, "--interactions", shuffled, "-n", "5")
    assert a.exit_code == b.exit_code == 0
    assert "not contiguous" in b.stderr and "reading the whole file" in b.stderr
    assert "reading the whole file" not in a.stderr
    assert parse_csv(a.stdout) == parse_csv(b.stdout)


def test_sequences_tsv_crlf_bom_and_blanks_stream_to_the_same_lists(model, tmp_path):
    path, ratings = model
    hist = histories(ratings)
    seq = tmp_path / "s.txt"
    seq.write_bytes(b"\xef\xbb\xbf" + "".join(f"{u}  {' '.join(i)}\n" for u, i in hist.items())
                    .encode())
    tsv = tmp_path / "r.tsv"
    tsv.write_bytes(b"\xef\xbb\xbfuser_id\titem_id\r\n" + b"".join(
        f" {u}\t{i} \r\n\r\n".encode() for u, items in hist.items() for i in items))
    ref = run("recommend", path, "--interactions", ratings, "-n", "5")
    for args in (["--interactions", seq, "--format", "sequences"], ["--interactions", tsv]):
        r = run("recommend", path, *args, "-n", "5")
        assert r.exit_code == 0, r.output
        assert "whole file" not in r.stderr  # streamed
        assert r.stdout == ref.stdout


def test_quoted_fields_fall_back_to_the_csv_reader(model, tmp_path):
    path, ratings = model
    quoted = tmp_path / "q.csv"
    quoted.write_text("user_id,item_id\n" + "".join(
        f'"{u}","{i}"\n' for u, items in histories(ratings).items() for i in items))
    with pytest.raises(NotStreamable, match="quoted"):
        stream_chunks(quoted, [f"i{j}" for j in range(N_ITEMS)])
    a = run("recommend", path, "--interactions", ratings, "-n", "5")
    b = run("recommend", path, "--interactions", quoted, "-n", "5")
    assert b.exit_code == 0 and "quoted fields: reading the whole file" in b.stderr
    assert b.stdout == a.stdout


def test_recency_weighs_sequence_items_by_age_streamed_or_not(model, tmp_path):
    path, ratings = model
    rec = Recommender.load(path)
    rec.config_ = dataclasses.replace(rec.config_, recency=0.5)
    weighted = tmp_path / "m05.h5"
    rec.save(weighted)
    seqs = {u: items for u, items in histories(ratings).items()}
    seqs["u1"] = seqs["u1"] + ["zz", seqs["u1"][0]]  # a repeat: its latest event counts
    seq = tmp_path / "s.txt"
    seq.write_text("".join(f"{u} {' '.join(i)}\n" for u, i in seqs.items()))
    B = rec.B_.toarray().astype(np.float64)
    ref = {}
    for user, items in seqs.items():
        x = np.zeros(N_ITEMS)
        for age, item in enumerate(reversed(items)):  # age 0: the latest event
            if item != "zz" and x[int(item[1:])] == 0:
                x[int(item[1:])] = 0.5 ** age
        s = x @ B
        s[x > 0] = -np.inf
        order = np.lexsort((np.arange(N_ITEMS), -s))[:4]
        ref[user] = [(f"i{j}", s[j]) for j in order if s[j] > -np.inf]
    del ref["ghost"]
    (tmp_path / "u.txt").write_text("\n".join(ref) + "\n")
    for extra in ([], ["--users", tmp_path / "u.txt"]):
        r = run("recommend", weighted, "--interactions", seq, "--format", "sequences", "-n", "4",
                *extra)
        assert r.exit_code == 0, r.output
        got = parse_csv(r.stdout)
        got.pop("ghost", None)
        assert_same_lists(got, ref)
    r = run("recommend", weighted, "--interactions", ratings, "-n", "4")
    assert "needs ordered histories" in r.stderr
    assert parse_csv(r.stdout) == parse_csv(run("recommend", path, "--interactions", ratings,
                                                "-n", "4").stdout)


def test_bad_sequence_files_get_the_readers_errors(model, tmp_path):
    path, ratings = model
    twice = tmp_path / "twice.txt"
    twice.write_text("u1 i1 i2\nu2 i3\nu1 i4\n")
    r = run("recommend", path, "--interactions", twice, "--format", "sequences")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines()[-1].endswith("twice.txt:3: user 'u1' again (first on "
                                                      "line 1)")
    r = run("recommend", path, "--interactions", ratings, "--format", "sequences")
    assert r.exit_code == 2 and "is this a table (--format table)?" in r.stderr


def test_out_format_from_the_suffix_unless_given(model, tmp_path):
    path, ratings = model
    for name, extra, jsonl in (("a.jsonl", [], True), ("a.JSON", [], True), ("a.csv", [], False),
                               ("a.txt", [], False), ("b.csv", ["--out-format", "jsonl"], True)):
        out = tmp_path / name
        r = run("recommend", path, "--interactions", ratings, "-n", "3", "--out", out, *extra)
        assert r.exit_code == 0, r.output
        text = out.read_text()
        assert text.startswith("{") == jsonl and text.startswith("user_id,") != jsonl
    got = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    ref = reference(path, ratings, 3)
    assert [g["user_id"] for g in got] == list(ref)
    for g in got:
        assert g["items"] == [i for i, _ in ref[g["user_id"]]]
        np.testing.assert_allclose(g["scores"], [s for _, s in ref[g["user_id"]]], rtol=1e-5)
        assert g["fallback"] == (g["user_id"] == "ghost")


def test_nothing_written_at_out_on_error(model, tmp_path):
    path, ratings = model
    out = tmp_path / "out" / "recs.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\nu1,i1\nu1\n")
    other = tmp_path / "other.csv"
    other.write_text("user_id,item_id\nu1,x1\nu2,x2\n")
    cases = [(["--interactions", bad], "bad.csv:3: expected 2 columns"),
             (["--interactions", other], "another catalog"),
             (["--interactions", ratings, "--candidates", tmp_path / "none.txt"], "no item may")]
    (tmp_path / "none.txt").write_text("nope\n")
    for args, msg in cases:
        r = run("recommend", path, *args, "--out", out)
        assert r.exit_code == 2, r.output
        assert msg in r.stderr.strip().splitlines()[-1]
        assert not out.parent.exists() or list(out.parent.iterdir()) == []
    out.parent.mkdir(exist_ok=True)
    out.write_text("old\n")
    r = run("recommend", path, "--interactions", bad, "--out", out)
    assert r.exit_code == 2 and out.read_text() == "old\n"
    assert list(out.parent.iterdir()) == [out]


def test_progress_on_request(model):
    path, ratings = model
    r = run("recommend", path, "--interactions", ratings, "--chunk", "50", "--progress")
    assert r.exit_code == 0
    assert "recommend  82/82 (100%)" in r.stderr and "users/s" in r.stderr
    assert "users/s" not in run("recommend", path, "--interactions", ratings).stderr


def test_sparse_kernel_matches_dense_reference_with_masks_ties_and_zero_scores():
    rng = np.random.default_rng(7)
    m, n = 40, 25
    X = sp.csr_matrix((rng.random((m, n)) < 0.15).astype(np.float32))
    B = sp.random(n, n, density=0.08, random_state=1, dtype=np.float32).tocsr()
    B.data = np.round(B.data * 4) - 2  # integers: exact sums, ties, negative and zero scores
    mask = sp.csr_matrix(X.toarray() + (rng.random((m, n)) < 0.1))
    allowed = rng.random(n) < 0.8
    for N in (1, 4, 30):
        top, scores = topn(X, B, N, allowed=allowed, mask=mask)
        assert top.dtype == np.int64 and scores.dtype == np.float32
        S = X.toarray().astype(np.float64) @ B.toarray().astype(np.float64)
        S[mask.toarray() > 0] = -np.inf
        S[:, ~allowed] = -np.inf
        for u in range(m):
            order = np.lexsort((np.arange(n), -S[u]))
            want = [j for j in order[:N] if S[u, j] > -np.inf]
            assert top[u, :len(want)].tolist() == want, (N, u)
            assert (top[u, len(want):] == -1).all()
            np.testing.assert_array_equal(scores[u, :len(want)], S[u, want])


@pytest.mark.parametrize("values", [
    np.array([0.0, -0.0, 1.0, 0.5, 123456.5, 123457.5, 999999.5, 9999995, 0.0001, 1e-5,
              99999.95, 1e16, 3.4e38, 1e-45, -2.5e-7, np.inf, -np.inf, np.nan], np.float32),
    np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    * 10.0 ** np.random.default_rng(1).integers(-9, 10, 20000),
    np.random.default_rng(2).integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    .view(np.float32),
])
def test_score_formatter_matches_python_g6(values):
    buf = np.empty(16 * len(values), np.uint8)
    p, got = 0, []
    for v in values.astype(np.float32):
        q = _fastio.put_g6(buf, p, v)
        got.append(bytes(buf[p:q]).decode())
        p = q
    assert got == ["%.6g" % float(v) for v in values.astype(np.float32)]
