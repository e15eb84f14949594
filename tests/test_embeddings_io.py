"""The embeddings file: round trip, aligned loading, and refusals that name the problem."""

import h5py
import numpy as np
import pytest

from l3ae.errors import DataFormatError
from l3ae.io.embeddings import ENCODING_TYPE, text_hash, write_embeddings
from l3ae.io.readers import load_aligned, read_embeddings


def _sample(n=7, d=5, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"item-{k}" for k in range(n - 2)] + ["Amélie (2001)", "東京物語"]
    E = rng.standard_normal((n, d)).astype(np.float32)
    texts = [f"text {k} ✓" for k in range(n)]
    return ids, E, [text_hash(t) for t in texts]


def test_round_trip_keeps_ids_vectors_hashes_and_attrs(tmp_path):
    ids, E, hashes = _sample()
    enc = {"name": "m", "fingerprint": "sha256:ab", "dim": 5}
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes,
                            {"encoder": enc, "template": "{title}"})
    got_ids, got_E, meta = read_embeddings(path)
    assert got_ids == ids and meta["hashes"] == hashes
    assert got_E.dtype == np.float32 and np.array_equal(got_E, E)
    assert meta["encoder"] == enc and meta["template"] == "{title}"
    assert meta["encoding-type"] == ENCODING_TYPE and meta["encoding-version"] == "1"
    with h5py.File(path) as f:  # the layout other tools rely on
        assert f["embeddings"].dtype == np.float32 and f["embeddings"].shape == (7, 5)
        assert h5py.check_string_dtype(f["ids"].dtype).encoding == "utf-8"
    assert not list(tmp_path.glob(".e.h5.*"))  # no temporary left behind


def test_text_hash_is_sha256_of_utf8():
    import hashlib

    assert text_hash("Amélie") == hashlib.sha256("Amélie".encode()).hexdigest()


def test_empty_file_round_trips(tmp_path):
    path = write_embeddings(tmp_path / "e.h5", [], np.zeros((0, 3), np.float32), [])
    ids, E, meta = read_embeddings(path)
    assert ids == [] and E.shape == (0, 3) and meta["hashes"] == []


def test_write_rejects_mismatched_lengths_and_duplicates(tmp_path):
    ids, E, hashes = _sample()
    with pytest.raises(ValueError, match="do not match"):
        write_embeddings(tmp_path / "e.h5", ids[:-1], E, hashes)
    with pytest.raises(ValueError, match="duplicate"):
        write_embeddings(tmp_path / "e.h5", [ids[0]] * len(ids), E, hashes)
    assert not (tmp_path / "e.h5").exists()


def test_load_aligned_follows_the_given_order(tmp_path):
    ids, E, hashes = _sample()
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes)
    order = [ids[3], ids[0], ids[6], ids[3]]
    got, _ = load_aligned(path, order)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, E[[3, 0, 6, 3]])


def test_load_aligned_names_missing_ids(tmp_path):
    ids, E, hashes = _sample()
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes)
    wanted = ids[:2] + [f"ghost-{k}" for k in range(8)]
    with pytest.raises(DataFormatError) as err:
        load_aligned(path, wanted)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": 8 of 10 item ids have no embedding")
    assert "'ghost-0', 'ghost-1', 'ghost-2', 'ghost-3', 'ghost-4', ..." in msg
    assert "ghost-5" not in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_aligned_refuses_non_finite_rows(tmp_path, bad):
    ids, E, hashes = _sample()
    E[4, 2] = bad
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes)
    with pytest.raises(DataFormatError, match=r"NaN or inf \(first: id 'item-4'\)"):
        load_aligned(path, ids)
    load_aligned(path, ids[:4])  # rows not asked for do not matter


def test_hdf5_without_ids_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["embeddings"] = np.zeros((2, 2), np.float32)
    with pytest.raises(DataFormatError, match=r"no dataset 'ids' \(the file has 'embeddings'\)"):
        read_embeddings(path)


def test_newer_version_is_refused(tmp_path):
    ids, E, hashes = _sample()
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes)
    with h5py.File(path, "a") as f:
        f.attrs["encoding-version"] = "2"
    with pytest.raises(DataFormatError, match="version 2 is not readable.*upgrade l3ae"):
        load_aligned(path, ids)


def test_not_hdf5_and_missing_file(tmp_path):
    (tmp_path / "x.h5").write_text("id,title\n")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        read_embeddings(tmp_path / "x.h5")
    with pytest.raises(DataFormatError, match="no such embeddings file"):
        load_aligned(tmp_path / "absent.h5", ["a"])


def test_inconsistent_lengths_are_refused(tmp_path):
    ids, E, hashes = _sample()
    path = write_embeddings(tmp_path / "e.h5", ids, E, hashes)
    with h5py.File(path, "a") as f:
        del f["hashes"]
        f.create_dataset("hashes", data=np.array(hashes[:3], dtype=object),
                         dtype=h5py.string_dtype())
    with pytest.raises(DataFormatError, match="do not match"):
        read_embeddings(path)
