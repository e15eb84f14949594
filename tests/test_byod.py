"""Bring your own data (issue 14): vectors from any model in any layout, Parquet interactions and
items, Parquet top-N lists, wide vectors.

Every layout is checked against the l3ae file of the same vectors (the same B, bit for bit), the
wide vectors against a dense float64 reference, Parquet inputs against the CSV path on the same
rows, and every bad input class exits 2 with one line naming the file, the row and the id, and
writes nothing.
"""

import json
import re
import sys

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from conftest import dense_ease, dense_l3ae, random_problem, write_ratings

from l3ae.cli import cli
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.embeddings import text_hash, write_embeddings
from l3ae.io.readers import align, read_embeddings
from l3ae.model import Recommender

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N_USERS, N_ITEMS, DIM = 60, 15, 6
IDS = [f"i{k}" for k in range(N_ITEMS)]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_error_line(res):
    """The single stderr line of a failed command, without click's 'Error: '."""
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: ")
    return lines[0][len("Error: "):]


# ------------------------------------------------------------------ writers of every layout
def vectors(ids=IDS, d=DIM, seed=1):
    return np.random.default_rng(seed).standard_normal((len(ids), d)).astype(np.float32)


def shuffled(ids, E, extra=3, seed=2):
    """Rows in another order plus ``extra`` ids no catalog has."""
    rng = np.random.default_rng(seed)
    ids = list(ids) + [f"other-{k}" for k in range(extra)]
    E = np.vstack([E, rng.standard_normal((extra, E.shape[1])).astype(E.dtype)])
    order = rng.permutation(len(ids))
    return [ids[k] for k in order], E[order]


def write_l3ae(path, ids, E):
    write_embeddings(path, ids, E.astype(np.float32), [text_hash(i) for i in ids],
                     {"encoder": {"name": "test", "dim": E.shape[1]}})


def write_hdf5(path, ids, E, id_kind="str", id_name="ids", name="embeddings"):
    with h5py.File(path, "w") as f:
        if id_kind == "str":
            f.create_dataset(id_name, data=np.array(ids, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
        elif id_kind == "bytes":  # fixed-length bytes, as numpy's "S" arrays are stored
            f.create_dataset(id_name, data=np.array([i.encode() for i in ids]))
        else:  # integers
            f.create_dataset(id_name, data=np.array([int(i.lstrip("io-ther")) for i in ids]))
        f.create_dataset(name, data=E)


def write_npz(path, ids, E, id_kind="str", id_name="ids", name="embeddings"):
    arr = np.array(ids) if id_kind == "str" else np.array([i.encode() for i in ids])
    np.savez(path, **{id_name: arr, name: E})


def write_parquet(path, ids, E, kind="list", id_name="item_id", name="embedding",
                  row_group_size=None):
    t = pa.from_numpy_dtype(E.dtype)
    flat = pa.array(E.ravel(), t)
    if kind == "fixed":
        col = pa.FixedSizeListArray.from_arrays(flat, E.shape[1])
    else:
        off = pa.array(np.arange(0, E.size + 1, max(E.shape[1], 1), dtype=np.int32)
                       if kind == "list" else np.arange(0, E.size + 1, E.shape[1]))
        col = (pa.ListArray if kind == "list" else pa.LargeListArray).from_arrays(off, flat)
    pq.write_table(pa.table({id_name: pa.array(ids, pa.string()), name: col}), path,
                   row_group_size=row_group_size)


LAYOUTS = {
    "l3ae.h5": write_l3ae,
    "plain-str.h5": write_hdf5,
    "plain-bytes.h5": lambda p, i, E: write_hdf5(p, i, E, "bytes"),
    "strings.npz": write_npz,
    "bytes.npz": lambda p, i, E: write_npz(p, i, E, "bytes"),
    "list.parquet": lambda p, i, E: write_parquet(p, i, E, "list", row_group_size=5),
    "fixed.parquet": lambda p, i, E: write_parquet(p, i, E, "fixed"),
    "large.parquet": lambda p, i, E: write_parquet(p, i, E, "large"),
}


def kind(name):
    """The ``layout`` read_embeddings reports for a file of LAYOUTS."""
    return "l3ae" if name == "l3ae.h5" else {"h5": "hdf5"}.get(name.split(".")[-1],
                                                                name.split(".")[-1])


@pytest.mark.parametrize("name,dtype", [(n, t) for n in LAYOUTS for t in
                                        (np.float16, np.float32, np.float64)
                                        if n != "l3ae.h5" or t == np.float32])
def test_every_layout_reads_the_rows_of_the_catalog(tmp_path, name, dtype):
    E = vectors().astype(dtype)
    ids, Es = shuffled(IDS, E)
    path = tmp_path / name
    LAYOUTS[name](path, ids, Es)
    got_ids, got, meta = read_embeddings(path)
    assert got.dtype == np.float32 and got_ids == ids
    catalog = IDS[::-1]
    aligned = align(path, got_ids, got, catalog, meta)
    np.testing.assert_array_equal(aligned, E[::-1].astype(np.float32))
    assert meta["layout"] == kind(name)


@pytest.mark.parametrize("batch", [1, 4, 100])
def test_parquet_vectors_read_in_batches_of_any_size(tmp_path, batch):
    from l3ae.io.parquet import read_vectors

    E = vectors().astype(np.float64)
    E[3, 1] = 1e39  # beyond float32: reported by row, whichever batch it falls in
    write_parquet(tmp_path / "v.parquet", IDS, E, "list", row_group_size=6)
    ids, got, meta = read_vectors(tmp_path / "v.parquet", batch=batch)
    assert ids == IDS and meta["where"] == "column 'embedding'" and meta["overflow"] == {3: 1e39}
    assert got.dtype == np.float32
    keep = np.ones(len(IDS), bool)
    keep[3] = False
    np.testing.assert_array_equal(got[keep], E[keep].astype(np.float32))


def test_integer_ids_are_read_as_their_decimal_text(tmp_path):
    E = vectors([str(k) for k in range(4)])
    write_hdf5(tmp_path / "e.h5", [f"i{k}" for k in range(4)], E, id_kind="int")
    np.savez(tmp_path / "e.npz", ids=np.arange(4), embeddings=E)
    col = pa.FixedSizeListArray.from_arrays(pa.array(E.ravel()), DIM)
    pq.write_table(pa.table({"item_id": pa.array(np.arange(4)), "embedding": col}),
                   tmp_path / "e.parquet")
    for name in ("e.h5", "e.npz", "e.parquet"):
        ids, got, _ = read_embeddings(tmp_path / name)
        assert ids == ["0", "1", "2", "3"], name
        np.testing.assert_array_equal(got, E)


def reference(tmp_path, ids, E):
    """ref.h5: the vectors in l3ae's layout, rows sorted by id (the ids no interaction names
    are cold items of an l3ae build: the same B whatever the rows' order)."""
    order = np.argsort(ids)
    write_l3ae(tmp_path / "ref.h5", [ids[k] for k in order], E[order])


def build_b(tmp_path, emb, *extra, name="m.h5"):
    ratings = tmp_path / "r.csv"
    if not ratings.exists():
        write_ratings(ratings, N_USERS, N_ITEMS, 4, seed=5)
    out = tmp_path / name
    res = run("build", "--interactions", ratings, "--model", "l3ae", "--reg-x", "1",
              "--reg-e", "3", "--reg-f", "0.5", "--topk", "0", "--embeddings", emb, *extra,
              "--out", out, "-q")
    assert res.exit_code == 0, (res.output, res.exception)
    rec = Recommender.load(out)
    order = np.argsort(rec.item_ids_)
    return rec, np.asarray(rec.B_)[np.ix_(order, order)]


@pytest.mark.parametrize("name", [n for n in LAYOUTS if n != "l3ae.h5"])
def test_each_layout_builds_the_b_of_the_l3ae_file(tmp_path, name):
    ids, Es = shuffled(IDS, vectors())
    reference(tmp_path, ids, Es)
    _, ref = build_b(tmp_path, tmp_path / "ref.h5", name="ref-model.h5")
    LAYOUTS[name](tmp_path / name, ids, Es)
    rec, B = build_b(tmp_path, tmp_path / name)
    np.testing.assert_array_equal(B, ref)
    # the model records where its vectors came from
    assert json.loads(rec.encoder_) == {"imported": name, "layout": kind(name), "dim": DIM}


def test_column_options_name_other_columns_and_datasets(tmp_path):
    ids, Es = shuffled(IDS, vectors())
    reference(tmp_path, ids, Es)
    _, ref = build_b(tmp_path, tmp_path / "ref.h5", name="ref-model.h5")
    write_parquet(tmp_path / "v.parquet", ids, Es, "fixed", id_name="sku", name="vec")
    write_npz(tmp_path / "v.npz", ids, Es, id_name="keys", name="vectors")
    write_hdf5(tmp_path / "v.h5", ids, Es, id_name="keys", name="vectors")
    for emb, cols in (("v.parquet", ("sku", "vec")), ("v.npz", ("keys", "vectors")),
                      ("v.h5", ("keys", "vectors"))):
        _, B = build_b(tmp_path, tmp_path / emb, "--embedding-id-col", cols[0],
                       "--embedding-col", cols[1])
        np.testing.assert_array_equal(B, ref)
    res = run("build", "--interactions", tmp_path / "r.csv", "--model", "l3ae", "--embeddings",
              tmp_path / "v.parquet", "--out", tmp_path / "x.h5")
    assert one_error_line(res) == (
        f"{tmp_path / 'v.parquet'}: no id column 'item_id'; columns are sku, vec (choose with "
        "--embedding-id-col)")


def test_evaluate_tune_and_add_items_take_every_layout(tmp_path):
    E = vectors()
    ids, Es = shuffled(IDS, E)
    write_parquet(tmp_path / "v.parquet", ids, Es, "list", id_name="sku")
    ratings = write_ratings(tmp_path / "r.csv", N_USERS, N_ITEMS, 4, seed=5)
    common = ["--interactions", ratings, "--model", "l3ae", "--reg-x", "1", "--reg-e", "3",
              "--reg-f", "0.5", "--embeddings", tmp_path / "v.parquet",
              "--embedding-id-col", "sku", "-q"]
    assert run("evaluate", *common).exit_code == 0
    res = run("tune", *common, "--grid", "reg-e=2,3", "--out", tmp_path / "best.cfg")
    assert res.exit_code == 0, res.output
    # add-items: the new items' vectors from a Parquet file equal those of an l3ae file
    write_l3ae(tmp_path / "e.h5", IDS, E)
    assert run("build", "--interactions", ratings, "--model", "l3ae", "--reg-x", "1",
               "--reg-e", "3", "--reg-f", "0.5", "--topk", "0", "--embeddings",
               tmp_path / "e.h5", "--foldable", "--out", tmp_path / "m.h5", "-q").exit_code == 0
    new = ["n0", "n1"]
    (tmp_path / "new.csv").write_text("item_id\nn0\nn1\n")
    Enew = vectors(new, seed=9)
    write_l3ae(tmp_path / "new.h5", new, Enew)
    np.savez(tmp_path / "new.npz", ids=np.array(new[::-1]), embeddings=Enew[::-1])
    models = []
    for emb in ("new.h5", "new.npz"):
        res = run("add-items", tmp_path / "m.h5", "--items", tmp_path / "new.csv",
                  "--embeddings", tmp_path / emb, "--out", tmp_path / f"m-{emb}.h5", "-q")
        assert res.exit_code == 0, (res.output, res.exception)
        models.append(np.asarray(Recommender.load(tmp_path / f"m-{emb}.h5").B_))
    np.testing.assert_array_equal(models[0], models[1])


# ------------------------------------------------------------------------ bad vector files
def nan_parquet(p):
    E = vectors()
    E[3, 2] = np.nan
    write_parquet(p, IDS, E, "list")


def ragged_parquet(p):
    rows = [list(map(float, v)) for v in vectors()]
    rows[7] = rows[7][:4]
    pq.write_table(pa.table({"item_id": IDS, "embedding": rows}), p)


def null_vector_parquet(p):
    rows = [list(map(float, v)) for v in vectors()]
    rows[2] = None
    pq.write_table(pa.table({"item_id": IDS, "embedding": rows}), p)


def null_value_parquet(p):
    rows = [list(map(float, v)) for v in vectors()]
    rows[4][1] = None
    pq.write_table(pa.table({"item_id": IDS, "embedding": rows}), p)


def empty_parquet(p):
    pq.write_table(pa.table({"item_id": IDS, "embedding": [[] for _ in IDS]},
                            schema=pa.schema([("item_id", pa.string()),
                                              ("embedding", pa.list_(pa.float32()))])), p)


def dup_npz(p):
    ids = list(IDS)
    ids[9] = "i2"
    write_npz(p, ids, vectors())


def dup_parquet(p):
    ids = list(IDS)
    ids[9] = "i2"
    write_parquet(p, ids, vectors())


def inf_h5(p):
    E = vectors()
    E[5, 0] = -np.inf
    write_hdf5(p, IDS, E)


def overflow_npz(p):
    E = vectors().astype(np.float64)
    E[6, 3] = 1e300
    write_npz(p, IDS, E)


def overflow_h5(p):
    E = vectors().astype(np.float64)
    E[11, 0] = -3e39
    write_hdf5(p, IDS, E)


def overflow_parquet(p):
    E = vectors().astype(np.float64)
    E[12, 5] = 5e38
    write_parquet(p, IDS, E, "fixed")


def zero_width_npz(p):
    write_npz(p, IDS, np.zeros((N_ITEMS, 0), np.float32))


def zero_width_h5(p):
    write_hdf5(p, IDS, np.zeros((N_ITEMS, 0), np.float32))


def int_vectors_npz(p):
    write_npz(p, IDS, np.ones((N_ITEMS, DIM), np.int64))


def object_ids_npz(p):
    np.savez(p, ids=np.array(IDS, dtype=object), embeddings=vectors())


def missing_ids_h5(p):
    write_hdf5(p, IDS[:5], vectors(IDS[:5]))


def empty_id_parquet(p):
    ids = list(IDS)
    ids[8] = " "
    write_parquet(p, ids, vectors())


def bad_utf8_npz(p):
    np.savez(p, ids=np.array([b"i0", b"\xff"] + [i.encode() for i in IDS[2:]]),
             embeddings=vectors())


BAD = [  # (case, file name, maker, expected message after "{path}: ")
    ("nan", "v.parquet", nan_parquet, "1 embeddings hold NaN or inf (first: id 'i3'): row 3 "
     "(from 0) of column 'embedding' holds nan; fix the file"),
    ("inf", "v.h5", inf_h5, "1 embeddings hold NaN or inf (first: id 'i5'): row 5 (from 0) of "
     "/embeddings holds -inf; fix the file"),
    ("float64-overflow", "v.npz", overflow_npz, "1 embeddings hold NaN or inf (first: id 'i6'): "
     "row 6 (from 0) of array 'embeddings' holds 1e+300, beyond float32's range; fix the file"),
    ("float64-overflow-h5", "v.h5", overflow_h5, "1 embeddings hold NaN or inf (first: id "
     "'i11'): row 11 (from 0) of /embeddings holds -3e+39, beyond float32's range; fix the file"),
    ("float64-overflow-parquet", "v.parquet", overflow_parquet, "1 embeddings hold NaN or inf "
     "(first: id 'i12'): row 12 (from 0) of column 'embedding' holds 5e+38, beyond float32's "
     "range; fix the file"),
    ("ragged", "v.parquet", ragged_parquet, "row 7 (from 0), id 'i7': 4 values, but row 0 has 6 "
     "(ragged vectors in column 'embedding')"),
    ("null-vector", "v.parquet", null_vector_parquet, "row 2 (from 0), id 'i2': no vector "
     "(null)"),
    ("null-value", "v.parquet", null_value_parquet, "row 4 (from 0), id 'i4': value 1 is null"),
    ("zero-width-parquet", "v.parquet", empty_parquet, "row 0 (from 0), id 'i0': an empty "
     "vector (width 0) in column 'embedding'"),
    ("zero-width-npz", "v.npz", zero_width_npz, "embeddings of shape (15, 0) have no dimensions "
     "(row 0, id 'i0', is an empty vector)"),
    ("zero-width-h5", "v.h5", zero_width_h5, "embeddings of shape (15, 0) have no dimensions "
     "(row 0, id 'i0', is an empty vector)"),
    ("duplicate-npz", "v.npz", dup_npz, "duplicate id 'i2' at rows 2 and 9 (from 0) of array "
     "'embeddings'"),
    ("duplicate-parquet", "v.parquet", dup_parquet, "duplicate id 'i2' at rows 2 and 9 (from 0) "
     "of column 'embedding'"),
    ("empty-id", "v.parquet", empty_id_parquet, "row 8 (from 0): empty item id"),
    ("not-utf8-id", "v.npz", bad_utf8_npz, "row 1 (from 0) of array 'ids': id b'\\xff' is not "
     "UTF-8 (invalid start byte)"),
    ("integer-vectors", "v.npz", int_vectors_npz, "embeddings of dtype int64 in array "
     "'embeddings': expected float16, float32 or float64"),
    ("object-ids", "v.npz", object_ids_npz, "array 'ids' holds Python objects: save the ids as a "
     "string array, np.array(ids, dtype=str)"),
    ("missing-ids", "v.h5", missing_ids_h5, "10 of 15 item ids have no embedding (first: …, "
     "...); add their vectors to the file"),
    ("garbage-parquet", "v.parquet", lambda p: p.write_bytes(b"not parquet"),
     "not a Parquet file (…)"),
    ("garbage-npz", "v.npz", lambda p: p.write_bytes(b"not a zip"),
     "not an .npz file (not a zip archive)"),
]


@pytest.fixture
def ratings_folder(tmp_path):
    write_ratings(tmp_path / "r.csv", N_USERS, N_ITEMS, 4, seed=5)
    return tmp_path


@pytest.mark.parametrize("case,name,make,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_vectors_exit_2_naming_file_row_and_id(ratings_folder, case, name, make, expected):
    path = ratings_folder / name
    make(path)
    before = snapshot(ratings_folder)
    for argv in (["build", "--interactions", ratings_folder / "r.csv", "--model", "l3ae",
                  "--embeddings", path, "--out", ratings_folder / "m.h5"],
                 ["embed", "--import", path, "--out", ratings_folder / "e.h5"]):
        if case == "missing-ids" and argv[0] == "embed":
            continue  # an import has no catalog: every row is wanted
        msg = one_error_line(run(*argv))
        pattern = ".*".join(re.escape(part) for part in f"{path}: {expected}".split("…"))
        assert re.fullmatch(pattern, msg), msg
        assert snapshot(ratings_folder) == before  # nothing written, no temporary left


# ------------------------------------------------------------------------------- the import
def test_import_converts_every_layout_and_is_incremental(tmp_path):
    E = vectors()
    for name, write in LAYOUTS.items():
        ids, Es = shuffled(IDS, E)
        write(tmp_path / name, ids, Es)
        out = tmp_path / f"imported-{name}.h5"
        res = run("embed", "--import", tmp_path / name, "--out", out)
        assert res.exit_code == 0, (res.output, res.exception)
        assert res.stderr.startswith(f"{len(ids)} vectors ({DIM}-d) from ")
        got_ids, got, meta = read_embeddings(out)
        assert meta["layout"] == "l3ae" and got_ids == ids
        np.testing.assert_array_equal(got, Es)
        assert meta["encoder"] == {"imported": name, "dim": DIM, "layout": kind(name)}
        assert all(h.startswith("vector:") and len(h) == 71 for h in meta["hashes"])
        # a built model from the imported file equals one from the source
        np.testing.assert_array_equal(build_b(tmp_path, out, name="a.h5")[1],
                                      build_b(tmp_path, tmp_path / name, name="b.h5")[1])
    # unchanged: the file is left alone; changed: only new and changed rows count as imported
    src, out = tmp_path / "list.parquet", tmp_path / "imported-list.parquet.h5"
    before = out.read_bytes()
    res = run("embed", "--import", src, "--out", out)
    assert res.exit_code == 0 and res.stderr.rstrip().endswith("(already up to date)")
    assert out.read_bytes() == before
    ids, Es = shuffled(IDS, E)
    Es[0] += 1
    write_parquet(src, ids + ["new"], np.vstack([Es, np.ones((1, DIM), np.float32)]))
    res = run("embed", "--import", src, "--out", out)
    assert res.exit_code == 0
    assert f"{len(ids) + 1} vectors ({DIM}-d) from {src}: 2 imported, {len(ids) - 1} " \
           "unchanged" in res.stderr


def test_the_two_kinds_of_vectors_never_mix(tmp_path):
    from l3ae.embed.pipeline import _previous

    write_parquet(tmp_path / "v.parquet", IDS, vectors())
    assert run("embed", "--import", tmp_path / "v.parquet", "--out",
               tmp_path / "imp.h5").exit_code == 0
    # texts into a file of imported vectors: refused (l3ae could not make them again)
    identity = {"name": "all-MiniLM-L6-v2", "fingerprint": "sha256:x", "pooling": "mean",
                "normalize": True, "max_length": 256, "dim": 384, "output": "x"}
    with pytest.raises(DataFormatError, match=r"imp.h5: refusing to overwrite it: it holds 15 "
                       r"vectors imported from v.parquet \(`l3ae embed --import`\)"):
        _previous(tmp_path / "imp.h5", identity)
    # nor a plain HDF5 file someone else wrote
    write_hdf5(tmp_path / "plain.h5", IDS, vectors())
    with pytest.raises(DataFormatError, match="refusing to overwrite it: it is not an l3ae"):
        _previous(tmp_path / "plain.h5", identity)
    # an import over vectors embedded from texts: refused, the file untouched
    write_l3ae(tmp_path / "texts.h5", IDS, vectors())
    before = snapshot(tmp_path)
    msg = one_error_line(run("embed", "--import", tmp_path / "v.parquet", "--out",
                             tmp_path / "texts.h5"))
    assert msg == (f"{tmp_path / 'texts.h5'}: refusing to overwrite it: it holds 15 vectors "
                   "embedded from texts by test, which the import would replace; delete it or "
                   "choose another output")
    assert snapshot(tmp_path) == before
    res = run("embed", "--import", tmp_path / "v.parquet", "--template", "{x}", "--out",
              tmp_path / "x.h5")
    assert res.exit_code == 2 and "--template: for texts, not with --import" in res.stderr
    res = run("embed", "--import", tmp_path / "v.parquet", "--items", tmp_path / "v.parquet",
              "--out", tmp_path / "x.h5")
    assert res.exit_code == 2 and "give exactly one of --items" in res.stderr


# ------------------------------------------------------------------------------ wide vectors
@pytest.mark.parametrize("n,d", [(40, 4096), (300, 1024)])
def test_wide_vectors_match_the_dense_float64_reference(n, d):
    X, _ = random_problem(m=200, n=n, d=2, seed=3)
    rng = np.random.default_rng(4)
    E = rng.standard_normal((n, d)) + 3 * rng.standard_normal(d)  # anisotropic, as LLM vectors
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    ref = dense_l3ae(X, E, 1.0, 5.0, 0.05)
    got = Recommender("l3ae", reg_x=1.0, reg_e=5.0, reg_f=0.05, topk=0,
                      dtype="float64").fit(X, E)
    np.testing.assert_allclose(np.asarray(got.B_), ref, atol=1e-9, rtol=1e-7)
    got32 = Recommender("l3ae", reg_x=1.0, reg_e=5.0, reg_f=0.05, topk=0).fit(
        X, E.astype(np.float32))
    assert np.asarray(got32.B_).dtype == np.float32
    np.testing.assert_allclose(np.asarray(got32.B_), ref, atol=5e-4 * np.abs(ref).max())
    # EASE on the same X, for scale: the semantic pull moved B
    assert np.abs(ref - dense_ease(X, 6.0)).max() > 1e-3


@pytest.mark.parametrize("n,d", [(50, 8), (20, 1100), (600, 700)])
def test_phase_1_basis_and_factors_equal_the_direct_inverse(n, d):
    from l3ae.engine.semantic import semantic_basis, semantic_factors

    E = np.random.default_rng(n).standard_normal((n, d))
    K = np.linalg.inv(E.T @ E + 0.3 * np.eye(d))
    S = E @ K @ E.T
    b = semantic_basis(E, 0.3, want_ete=True)
    np.testing.assert_allclose(b.Y @ b.Y.T, S, atol=1e-10)
    np.testing.assert_allclose(b.s, np.diag(S), atol=1e-10)
    np.testing.assert_allclose(b.delta, 1 - np.diag(S), atol=1e-10)
    np.testing.assert_allclose(b.ete, E.T @ E, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(semantic_factors(E, 0.3).K, K, rtol=1e-9, atol=1e-12)
    b32 = semantic_basis(E.astype(np.float32), 0.3)
    assert b32.Y.dtype == np.float32 and b32.s.dtype == np.float64 and b32.ete is None


def test_wide_fold_in_matches_a_rebuild():
    X, _ = random_problem(m=150, n=30, d=2, seed=6)
    E = np.random.default_rng(7).standard_normal((32, 2048))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    kw = dict(reg_x=1.0, reg_e=4.0, reg_f=0.1, topk=0, dtype="float64")
    ids = [f"i{k}" for k in range(32)]
    rec = Recommender("l3ae", **kw).fit(X, E[:30], item_ids=ids[:30], foldable=True)
    rec.add_items(ids[30:], E[30:])
    full = Recommender("l3ae", **kw).fit(sp.hstack([X, sp.csr_matrix((150, 2))]).tocsr(), E,
                                         item_ids=ids)
    B, R = np.asarray(rec.B_), np.asarray(full.B_)
    np.testing.assert_allclose(B[30:], R[30:], atol=1e-9)  # new rows and columns: exact
    np.testing.assert_allclose(B[:, 30:], R[:, 30:], atol=1e-9)


# --------------------------------------------------------------------- Parquet interactions
def ratings_rows(seed=0, users=50, items=25):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for i in rng.choice(items, rng.integers(1, 8), replace=False):
            rows.append((f"u{u}", f"i{i}", int(rng.integers(1, 6))))
    rows.append(rows[3])  # a repeated pair
    return rows


def write_both(tmp_path, rows, name="r", row_group_size=17):
    csv = tmp_path / f"{name}.csv"
    csv.write_text("user_id,item_id,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    pqf = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table({"user_id": [u for u, _, _ in rows], "item_id": [i for _, i, _ in rows],
                             "rating": pa.array([r for *_, r in rows], pa.int8())}), pqf,
                   row_group_size=row_group_size)
    return csv, pqf


@pytest.mark.parametrize("min_rating", [None, 3])
def test_parquet_interactions_equal_the_csv_path(tmp_path, min_rating):
    from l3ae.io.readers import read_interactions

    csv, pqf = write_both(tmp_path, ratings_rows())
    a, b = (read_interactions(p, min_rating=min_rating) for p in (csv, pqf))
    assert (a.user_ids, a.item_ids) == (b.user_ids, b.item_ids)
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.items, b.items)


def test_parquet_ids_blanks_and_integers_read_as_the_csv_reader_does(tmp_path):
    from l3ae.io.readers import read_interactions

    (tmp_path / "r.csv").write_text("user_id,item_id\n7, a\n7,b \n8,a\n")
    pq.write_table(pa.table({"user_id": pa.array([7, 7, 8], pa.int64()),
                             "item_id": [" a", "b ", "a"]}), tmp_path / "r.parquet")
    a, b = (read_interactions(tmp_path / f) for f in ("r.csv", "r.parquet"))
    assert (a.user_ids, a.item_ids) == (b.user_ids, b.item_ids) == (["7", "8"], ["a", "b"])


def test_build_from_parquet_equals_build_from_csv(tmp_path):
    csv, pqf = write_both(tmp_path, ratings_rows())
    models = []
    for path in (csv, pqf):
        out = tmp_path / f"{path.suffix[1:]}.h5"
        res = run("build", "--interactions", path, "--model", "ease", "--reg-x", "3",
                  "--min-rating", "2", "--topk", "0", "--out", out, "-q")
        assert res.exit_code == 0, (res.output, res.exception)
        models.append(Recommender.load(out))
    assert models[0].item_ids_ == models[1].item_ids_
    np.testing.assert_array_equal(np.asarray(models[0].B_), np.asarray(models[1].B_))


@pytest.fixture
def grouped(tmp_path):
    """A grouped ratings CSV and its Parquet twin (small row groups), and an EASE model."""
    csv = write_ratings(tmp_path / "r.csv", 70, 20, 5, seed=8)
    with open(csv, "a") as fh:
        fh.write("u70,zz\nu70,i3\nghost,zz\n")  # an unknown item; a user with only that
    text = csv.read_text().splitlines()[1:]
    pairs = [line.split(",") for line in text]
    pqf = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs]}),
                   pqf, row_group_size=23)
    from l3ae.io.readers import read_interactions

    it = read_interactions(csv)
    known = [i for i in it.item_ids if i != "zz"]
    Recommender("ease", reg_x=2.0, topk=8).fit(it.matrix(item_ids=known),
                                               item_ids=known).save(tmp_path / "m.h5")
    return tmp_path, csv, pqf


def test_recommend_all_from_parquet_streams_the_csv_paths_lists(grouped):
    tmp, csv, pqf = grouped
    outs = []
    for src in (csv, pqf):
        out = tmp / f"recs-{src.suffix[1:]}.csv"
        res = run("recommend", tmp / "m.h5", "--interactions", src, "--all", "-n", "5",
                  "--chunk", "7", "--out", out)
        assert res.exit_code == 0, (res.output, res.exception)
        assert "reading the whole file" not in res.stderr  # streamed
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("batch,chunk", [(1, 1), (4, 3), (23, 100), (1000, 5)])
def test_parquet_chunks_equal_the_file_read_whole(grouped, batch, chunk):
    from l3ae.io.parquet import ParquetChunks
    from l3ae.io.readers import read_interactions
    from l3ae.io.interactions import memory_chunks

    tmp, csv, pqf = grouped
    item_ids = Recommender.load(tmp / "m.h5").item_ids_
    got = list(ParquetChunks(pqf, item_ids, chunk=chunk, batch=batch))
    want = list(memory_chunks(read_interactions(csv), item_ids, chunk=10 ** 6))
    assert [u for c in got for u in c[0]] == want[0][0]
    Xg = sp.vstack([c[1] for c in got]).toarray()
    np.testing.assert_array_equal(Xg, want[0][1].toarray())
    unknown = np.concatenate([c[2] for c in got])
    assert len(unknown) == len(want[0][2]) == 2 and unknown[0] == unknown[1]  # 'zz' twice
    assert all(len(c[0]) == chunk for c in got[:-1])


def test_ungrouped_parquet_is_read_whole_with_the_same_lists(grouped):
    tmp, csv, pqf = grouped
    t = pq.read_table(pqf)
    order = np.random.default_rng(0).permutation(t.num_rows)
    pq.write_table(t.take(pa.array(order)), tmp / "mixed.parquet")
    res = run("recommend", tmp / "m.h5", "--interactions", tmp / "mixed.parquet", "-n", "5",
              "--out", tmp / "mixed.csv")
    assert res.exit_code == 0
    assert "the rows of a user are not contiguous: reading the whole file" in res.stderr
    res = run("recommend", tmp / "m.h5", "--interactions", csv, "-n", "5", "--users",
              _users(tmp, csv), "--out", tmp / "want.csv")
    assert res.exit_code == 0
    rows = lambda p: sorted(p.read_text().splitlines())  # noqa: E731 (user order differs)
    assert rows(tmp / "mixed.csv") == rows(tmp / "want.csv")


def _users(tmp, csv):
    users = list(dict.fromkeys(line.split(",")[0] for line in csv.read_text().splitlines()[1:]))
    (tmp / "users.txt").write_text("\n".join(users) + "\n")
    return tmp / "users.txt"


def test_recommend_refuses_parquet_as_sequences(grouped):
    tmp, _, pqf = grouped
    msg = one_error_line(run("recommend", tmp / "m.h5", "--interactions", pqf, "--format",
                             "sequences", "--out", tmp / "x.csv"))
    assert msg == f"{pqf}: a Parquet file is a table: drop --format sequences"


def test_recommend_writes_parquet_lists_equal_to_the_csv(grouped):
    tmp, csv, pqf = grouped
    assert run("recommend", tmp / "m.h5", "--interactions", pqf, "-n", "5", "--out",
               tmp / "recs.csv").exit_code == 0
    res = run("recommend", tmp / "m.h5", "--interactions", pqf, "-n", "5", "--out",
              tmp / "recs.parquet", "--chunk", "9")
    assert res.exit_code == 0, (res.output, res.exception)
    t = pq.read_table(tmp / "recs.parquet")
    assert t.schema.names == ["user_id", "item_id", "rank", "score", "fallback"]
    assert str(t.schema.field("score").type) == "float"
    lines = (tmp / "recs.csv").read_text().splitlines()
    assert lines[0] == "user_id,item_id,rank,score,fallback"
    rows = [line.split(",") for line in lines[1:]]
    assert t.num_rows == len(rows)
    assert t.column("user_id").to_pylist() == [r[0] for r in rows]
    assert t.column("item_id").to_pylist() == [r[1] for r in rows]
    assert t.column("rank").to_pylist() == [int(r[2]) for r in rows]
    assert [f"{s:.6g}" for s in t.column("score").to_pylist()] == [r[3] for r in rows]
    assert t.column("fallback").to_pylist() == [r[4] == "1" for r in rows]
    # --out-format parquet wins over the name
    assert run("recommend", tmp / "m.h5", "--interactions", csv, "-n", "5", "--out-format",
               "parquet", "--out", tmp / "recs.bin").exit_code == 0
    assert pq.read_table(tmp / "recs.bin").equals(t)


def test_parquet_items_read_as_the_csv_items(tmp_path):
    from l3ae.io.readers import read_items

    (tmp_path / "items.csv").write_text("item_id,title\na,Heat\nb,Up\n")
    pq.write_table(pa.table({"item_id": ["a", "b"], "title": ["Heat", "Up"]}),
                   tmp_path / "items.parquet")
    assert read_items(tmp_path / "items.csv") == read_items(tmp_path / "items.parquet")
    pq.write_table(pa.table({"item_id": ["a", "b", "a"]}), tmp_path / "dup.parquet")
    with pytest.raises(DataFormatError, match=r"dup.parquet: row 2 \(from 0\): duplicate item "
                       r"id 'a' \(first at row 0\)"):
        read_items(tmp_path / "dup.parquet")


BAD_PARQUET = [  # (case, table maker, extra argv, message after "{path}: ")
    ("missing-column", lambda: pa.table({"user": ["u"], "item_id": ["a"]}), [],
     "no user column 'user_id'; columns are user, item_id (choose with --user-col)"),
    ("empty-user-id", lambda: pa.table({"user_id": ["u", None], "item_id": ["a", "b"]}), [],
     "row 1 (from 0): empty user id"),
    ("float-ids", lambda: pa.table({"user_id": ["u"], "item_id": [1.5]}), [],
     "item column 'item_id' holds double: expected strings or integers"),
    ("rating-not-a-number", lambda: pa.table({"user_id": ["u", "v"], "item_id": ["a", "b"],
                                              "rating": ["4", "five"]}), ["--min-rating", "4"],
     "row 1 (from 0): rating 'five' is not a number"),
    ("null-rating", lambda: pa.table({"user_id": ["u", "v"], "item_id": ["a", "b"],
                                      "rating": pa.array([4, None], pa.int32())}),
     ["--min-rating", "4"], "row 1 (from 0): rating is empty (null)"),
    ("no-interactions", lambda: pa.table({"user_id": ["u"], "item_id": ["a"], "rating": [1]}),
     ["--min-rating", "4"], "no interactions with rating >= 4.0"),
    ("sequences", lambda: pa.table({"user_id": ["u"], "item_id": ["a"]}),
     ["--format", "sequences"], "a Parquet file is a table: drop --format sequences"),
]


@pytest.mark.parametrize("case,make,extra,expected", BAD_PARQUET, ids=[b[0] for b in BAD_PARQUET])
def test_bad_parquet_interactions_exit_2(tmp_path, case, make, extra, expected):
    path = tmp_path / "r.parquet"
    pq.write_table(make(), path)
    before = snapshot(tmp_path)
    msg = one_error_line(run("build", "--interactions", path, "--model", "ease", *extra,
                             "--out", tmp_path / "m.h5"))
    assert msg == f"{path}: {expected}"
    assert snapshot(tmp_path) == before


def test_without_pyarrow_a_parquet_path_exits_2_with_the_install_line(tmp_path, monkeypatch):
    pq.write_table(pa.table({"user_id": ["u"], "item_id": ["a"]}), tmp_path / "r.parquet")
    (tmp_path / "r.csv").write_text("user_id,item_id\nu,a\nv,a\nv,b\n")
    for name in ("pyarrow", "pyarrow.parquet", "pyarrow.compute"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    msg = one_error_line(run("build", "--interactions", tmp_path / "r.parquet", "--model",
                             "ease", "--out", tmp_path / "m.h5"))
    assert msg == (f"{tmp_path / 'r.parquet'}: Parquet needs pyarrow, an optional extra: "
                   'pip install "l3ae[parquet]"')
    # CSV does not need it
    assert run("build", "--interactions", tmp_path / "r.csv", "--model", "ease", "--out",
               tmp_path / "m.h5", "-q").exit_code == 0
    with pytest.raises(ConfigError, match="pip install"):
        from l3ae.io.parquet import arrow

        arrow()
