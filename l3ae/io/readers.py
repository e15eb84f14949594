"""The one reader API of l3ae's inputs: interactions, items, histories in chunks and item
vectors, each told apart by the file (its name or its first bytes) and sent to its format module.

    interactions, items   CSV/TSV, RecBole atomic files, sequence files (:mod:`.delimited`),
                          Parquet (:mod:`.parquet`)
    histories in chunks   :mod:`.stream` (delimited), :class:`l3ae.io.parquet.ParquetChunks`
    vectors               l3ae's embeddings file (:mod:`.embeddings`), HDF5 or .npz made
                          elsewhere (:mod:`.vectors`), Parquet (:mod:`.parquet`)

Every error is a DataFormatError naming the file and the line (text files, from 1) or the row
(Parquet, HDF5 and .npz, from 0), and the value. :func:`import_vectors` writes vectors of any
layout in l3ae's own (``l3ae embed --import``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import h5py
import numpy as np

from l3ae.errors import DataFormatError
from l3ae.io import delimited, embeddings, parquet
from l3ae.io.delimited import read_id_list  # noqa: F401 (the API's names)
from l3ae.io.embeddings import write_embeddings
from l3ae.io.interactions import FORMATS, Interactions, NotStreamable, id_column  # noqa: F401
from l3ae.io.stream import stream_chunks
from l3ae.io.vectors import read_hdf5, read_npz

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
LAYOUTS = ("HDF5 (from `l3ae embed`, or datasets ids and embeddings), .npz (arrays ids and "
           "embeddings) or Parquet (columns item_id and embedding)")
_SHOW = 5  # ids named in an error message


# -- interactions and items ------------------------------------------------------------------
def _parquet_table(path, fmt):
    """Whether ``path`` is a Parquet file; refused with --format sequences (a Parquet file is a
    table)."""
    if not parquet.is_parquet(path):
        return False
    if fmt != "table":
        raise DataFormatError("a Parquet file is a table: drop --format sequences", path=path)
    return True


def read_interactions(path, user_col="user_id", item_col="item_id", rating_col="rating",
                      min_rating=None, sep=None, fmt="table") -> Interactions:
    """:class:`l3ae.io.interactions.Interactions` of a table (or, ``fmt="sequences"``, a
    sequence file): Parquet or delimited text.

    min_rating : keep rows with rating >= min_rating (needs ``rating_col``); None keeps all.
    """
    if _parquet_table(path, fmt):
        return parquet.read_interactions(path, user_col, item_col, rating_col, min_rating)
    return delimited.read_interactions(path, user_col, item_col, rating_col, min_rating, sep,
                                       fmt)


def read_items(path, id_col=None, sep=None):
    """An item table: (ids: list[str], columns: dict[str, list]). id_col : defaults to
    ``item_id`` when present, else the first column. Duplicate and empty ids are errors."""
    if parquet.is_parquet(path):
        return parquet.read_items(path, id_col)
    return delimited.read_items(path, id_col, sep)


def history_chunks(path, item_ids, fmt="table", user_col="user_id", item_col="item_id",
                   sep=None, chunk=8192, recency=1.0):
    """Chunks of users of an interactions file grouped by user, read as they come: iterate for
    (user_ids, X (k, n) CSR over ``item_ids``, unknown (r,) int64 < 0); ``total`` users,
    ``known_any``. Raises NotStreamable when the file cannot be streamed (the caller reads it
    whole: :class:`l3ae.io.interactions.memory_chunks`)."""
    if _parquet_table(path, fmt):  # row groups, not bytes
        return parquet.ParquetChunks(path, item_ids, user_col, item_col, chunk, recency)
    return stream_chunks(path, item_ids, fmt, user_col, item_col, sep, chunk, recency=recency)


# -- vectors ---------------------------------------------------------------------------------
def layout(path) -> str | None:
    """"hdf5", "npz" or "parquet" from the file's first bytes (Parquet also by its name), else
    None."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n" or h5py.is_hdf5(path):  # is_hdf5: also after a user block
        return "hdf5"
    if head[:4] == b"PK\x03\x04" or (head[:4] == b"PK\x05\x06"):
        return "npz"
    if parquet.is_parquet(path):
        return "parquet"
    return None


def unknown_layout(path):
    """The error for a file of none of the layouts :func:`read_embeddings` reads."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return DataFormatError("not an HDF5 file (no HDF5 signature)", path=path)
    if suffix == ".npz":
        return DataFormatError("not an .npz file (not a zip archive)", path=path)
    return DataFormatError(f"not an embeddings file: expected {LAYOUTS}", path=path)


def read_embeddings(path, vectors: bool = True, id_col=None, col=None):
    """(ids: list[str], E: (n, d) float32 or None when not ``vectors``, meta: dict) of an
    embeddings file of any layout, told apart by its content (:func:`layout`).

    meta holds ``layout`` ("l3ae", "hdf5", "npz" or "parquet"), ``encoder`` (a dict), ``hashes``
    (list[str]; None for another layout) and, for l3ae's layout, the root attributes.
    id_col, col : the id and vector dataset/array/column of another layout (defaults ids and
    embeddings; item_id and embedding for Parquet); ignored for l3ae's own.
    Raises DataFormatError for a missing, unreadable, inconsistent or other-version file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such embeddings file; make one with `l3ae embed`", path=path)
    kind = layout(path)
    if kind == "npz":
        ids, E, meta = read_npz(path, id_col, col)
    elif kind == "parquet":
        ids, E, meta = parquet.read_vectors(path, id_col, col)
    elif kind != "hdf5":
        raise unknown_layout(path)
    else:
        with embeddings.open_file(path) as f:
            if embeddings.is_own(f):
                ids, E, meta = embeddings.read_own(f, path, vectors)
            else:
                ids, E, meta = read_hdf5(f, path, id_col, col)
    return ids, (E if vectors else None), meta


def load_aligned(path, item_ids, id_col=None, col=None):
    """(embeddings of ``item_ids`` in that order (len(item_ids), d) float32, the file's
    metadata), from one read of a file of any layout (:func:`read_embeddings`).

    Raises DataFormatError naming the file when it is not a readable embeddings file, or as
    :func:`align` does.
    """
    ids, E, meta = read_embeddings(path, id_col=id_col, col=col)
    return align(path, ids, E, item_ids, meta), meta


def replaceable(out, vectors=False):
    """(ids, E or None, meta) of an existing l3ae embeddings file that a write may replace;
    DataFormatError when ``out`` is anything else (never overwrite a foreign file)."""
    try:
        ids, E, meta = read_embeddings(out, vectors=vectors)
    except DataFormatError as exc:
        raise DataFormatError(f"refusing to overwrite it: {exc.reason}; delete it or choose "
                              "another output", path=out) from None
    if meta.get("layout") != "l3ae":
        raise DataFormatError("refusing to overwrite it: it is not an l3ae embeddings file; "
                              "delete it or choose another output", path=out)
    return ids, E, meta


def align(path, ids, E, item_ids, meta=None) -> np.ndarray:
    """Rows of E (n, d) float32 (row r for ids[r], read from ``path``) in the order of
    ``item_ids``: (len(item_ids), d) float32, C-contiguous. Rows of other ids are ignored.

    Ids are compared as strings. Raises DataFormatError naming ``path`` for a repeated id (its
    rows), when ids have no row (the count and the first few), or when a needed row holds
    NaN/inf (its id, row and value). ``meta`` (from :func:`read_embeddings`) words the messages
    for the file's layout.
    """
    path, meta = Path(path), meta or {}
    where, remedy = meta.get("where", "/embeddings"), meta.get("remedy", "re-run `l3ae embed`")
    row = {i: r for r, i in enumerate(ids)}
    if len(row) != len(ids):
        r, dup = next((k, i) for k, i in enumerate(ids) if row[i] != k)
        first = ids.index(dup)
        raise DataFormatError(f"duplicate id {dup!r} at rows {first} and {r} (from 0) of "
                              f"{where}", path=path)
    wanted = [str(i) for i in item_ids]
    missing = [i for i in wanted if i not in row]
    if missing:
        first = ", ".join(repr(i) for i in missing[:_SHOW])
        fix = ("re-run `l3ae embed` on the item file that lists them" if remedy.startswith(
            "re-run") else "add their vectors to the file")
        raise DataFormatError(
            f"{len(missing)} of {len(wanted)} item ids have no embedding (first: {first}"
            f"{', ...' if len(missing) > _SHOW else ''}); {fix}", path=path)
    rows = np.fromiter((row[i] for i in wanted), dtype=np.int64, count=len(wanted))
    out = E[rows]
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        k = np.flatnonzero(bad)
        r = int(rows[k[0]])
        value = meta.get("overflow", {}).get(r)
        value = (f"{value!r}, beyond float32's range" if value is not None else
                 E[r][~np.isfinite(E[r])][0])
        raise DataFormatError(f"{len(k)} embeddings hold NaN or inf (first: id {wanted[k[0]]!r}): "
                              f"row {r} (from 0) of {where} holds {value}; {remedy}", path=path)
    return np.ascontiguousarray(out, dtype=np.float32)


def vector_hash(row) -> str:
    """What stands for a text hash in an imported file: ``"vector:"`` + sha256 of the float32
    bytes (little-endian) of the row. Never equal to a text hash (64 hex digits)."""
    data = np.ascontiguousarray(row, dtype="<f4").tobytes()
    return "vector:" + hashlib.sha256(data).hexdigest()


def import_vectors(src, out, id_col=None, col=None) -> dict:
    """Write the vectors of ``src`` (any layout above, or l3ae's) to ``out`` in the l3ae layout.

    The result holds exactly the rows of ``src`` (every row is checked: NaN/inf refused too),
    float32, with per row the :func:`vector_hash` where a text would have its hash, and the
    encoder attribute ``{"imported": <src's file name>, "layout": ..., "dim": d}`` — no encoder
    name or fingerprint: the vectors' model is unknown to l3ae, so ``add-items`` checks only
    the width against a model built on them. Incremental as ``l3ae embed`` is: rows whose id
    and vector are unchanged are counted as reused, and an ``out`` already holding the same ids,
    vectors and source is left untouched.

    An existing ``out`` is never silently replaced by vectors of another kind: one made by
    ``l3ae embed`` from texts is refused here, and (see :mod:`l3ae.embed.pipeline`) an imported
    one is refused by ``l3ae embed`` on texts: l3ae cannot make either again. Delete it or
    choose another ``out``.

    Returns {vectors, imported, reused, dim, written, out, seconds}.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise DataFormatError("is a directory; --out takes a file name like emb.h5", path=out)
    ids, E, meta = read_embeddings(src, id_col=id_col, col=col)
    E = align(src, ids, E, ids, meta)  # every row is wanted: NaN/inf anywhere is refused
    hashes = [vector_hash(row) for row in E]
    identity = {"imported": Path(src).name, "layout": meta.get("layout", "l3ae"),
                "dim": int(E.shape[1])}
    stats = {"vectors": len(ids), "imported": len(ids), "reused": 0, "dim": int(E.shape[1]),
             "written": False, "out": str(out)}
    if out.exists():
        old_ids, _, old = replaceable(out)
        if not old["encoder"].get("imported"):
            name = old["encoder"].get("name") or "an encoder"
            raise DataFormatError(f"refusing to overwrite it: it holds {len(old_ids)} vectors "
                                  f"embedded from texts by {name}, which the import would "
                                  "replace; delete it or choose another output", path=out)
        before = set(old["hashes"])
        stats["reused"] = sum(h in before for h in hashes)
        stats["imported"] = len(ids) - stats["reused"]
        if old_ids == ids and old["hashes"] == hashes and old["encoder"] == identity:
            stats["seconds"] = time.perf_counter() - t0
            return stats
    write_embeddings(out, ids, E, hashes, {"encoder": identity, "template": ""})
    stats.update(written=True, seconds=time.perf_counter() - t0)
    return stats
