import numpy as np
import pytest

from l3ae.errors import DataFormatError
from l3ae.io.datasets import load_interactions, load_items
from l3ae.io.readers import read_interactions, read_items


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_csv_duplicates_collapsed_and_ids_stable(tmp_path):
    p = write(tmp_path, "r.csv", "user_id,item_id,rating\nu1,a,5\nu2,b,3\nu1,a,4\nu1,c,1\n")
    it = read_interactions(p)
    assert it.user_ids == ["u1", "u2"] and it.item_ids == ["a", "b", "c"]
    X = it.matrix()
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 1], [0, 1, 0]])
    assert X.indptr.dtype == np.int64
    thr = read_interactions(p, min_rating=4)
    assert thr.item_ids == ["a"] and len(thr.users) == 1


def test_custom_columns_and_recbole_headers(tmp_path):
    p = write(tmp_path, "x.inter", "uid:token\tiid:token\tt:float\n1\t10\t0\n2\t10\t1\n")
    it = read_interactions(p, user_col="uid", item_col="iid")
    assert it.shape == (2, 1)


@pytest.mark.parametrize("body,msg", [
    ("user_id,item_id\nu1\n", "r.csv:2: expected 2 columns"),
    ("user,item\nu1,a\n", "r.csv:1: no user column 'user_id'"),
    ("", "r.csv:1: empty file"),
    ("user_id,item_id,rating\nu1,a,five\n", "r.csv:2: rating 'five' is not a number"),
    ("user_id,item_id\nu1,\n", "r.csv:2: empty item id"),
])
def test_reader_errors_name_file_and_line(tmp_path, body, msg):
    p = write(tmp_path, "r.csv", body)
    with pytest.raises(DataFormatError) as e:
        read_interactions(p, min_rating=4 if "rating" in body else None)
    assert msg in str(e.value)


def test_non_utf8_is_reported_with_line(tmp_path):
    p = write(tmp_path, "r.csv", b"user_id,item_id\nu1,a\nu2,\xff\xfe\n", mode="wb")
    with pytest.raises(DataFormatError, match="r.csv:.*not UTF-8"):
        read_interactions(p)


def test_items_reader_rejects_duplicates(tmp_path):
    p = write(tmp_path, "i.csv", "item_id,title\na,A\nb,B\na,C\n")
    with pytest.raises(DataFormatError, match="i.csv:4: duplicate item id 'a'"):
        read_items(p)
    ids, cols = read_items(write(tmp_path, "j.csv", 'item_id,title\na,"A, the film"\n'))
    assert ids == ["a"] and cols["title"] == ["A, the film"]


def test_packaged_movielens():
    it = load_interactions("ml-1m")
    assert it.shape == (6038, 3533) and len(it.users) == 575281  # rating >= 4
    ids, cols = load_items("ml-1m")
    assert len(ids) == 3883 and cols["title"][0] == "Toy Story" and cols["year"][0] == "1995"
    assert set(it.item_ids) <= set(ids)
    assert load_interactions("ml-100k").shape[1] == 1447


def test_duplicates_collapse_to_first_appearances_grouped_or_not():
    from l3ae.io.interactions import collapsed as _collapsed

    rng = np.random.default_rng(3)
    users = np.sort(rng.integers(0, 30, 400))  # grouped by user, as exports are
    items = rng.integers(0, 12, 400)
    for u, i in ((users, items), (rng.permutation(users), items)):  # and not grouped
        got = _collapsed(u, i, [str(k) for k in range(30)], [str(k) for k in range(12)], "x")
        seen, want = set(), []
        for r, pair in enumerate(zip(u.tolist(), i.tolist())):
            if pair not in seen:
                seen.add(pair)
                want.append(r)
        np.testing.assert_array_equal(got.users, u[want])
        np.testing.assert_array_equal(got.items, i[want])
