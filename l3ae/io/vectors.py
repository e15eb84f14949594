"""Vectors from elsewhere: item embeddings made by any model, in the layouts people have.

:func:`l3ae.io.embeddings.read_embeddings` sends every file that is not l3ae's own layout here:

    HDF5     datasets ``ids`` (n,) (UTF-8 strings or bytes, or integers) and ``embeddings``
             (n, d); no attributes needed
    .npz     arrays ``ids`` (n,) (str, bytes or integers; not objects) and ``embeddings`` (n, d)
    Parquet  an id column (``item_id``) and a list or fixed-size-list column (``embedding``)

``id_col`` / ``col`` rename the id and vector dataset, array or column (the commands'
``--embedding-id-col`` / ``--embedding-col``). Vectors are float16, float32 or float64 on disk
and float32 in memory (a float64 value beyond float32's range is reported, not turned into
inf). Rows may come in any order. Refused, each naming the file, the row (from 0) and the id:
a zero width, ragged rows (Parquet lists of unequal length), null vectors or values, empty and
repeated ids. NaN and inf are refused by :func:`l3ae.io.embeddings.align` in the rows a
catalog asks for (ids outside the catalog are ignored).

:func:`import_vectors` (``l3ae embed --import``) turns any of these into the l3ae layout.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import h5py
import numpy as np

from l3ae.errors import DataFormatError
from l3ae.io import parquet

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
#: how the messages of a file of another layout end (l3ae's own say "re-run `l3ae embed`")
REMEDY = "fix the file"
LAYOUTS = ("HDF5 (from `l3ae embed`, or datasets ids and embeddings), .npz (arrays ids and "
           "embeddings) or Parquet (columns item_id and embedding)")


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
    """The error for a file of no layout this module reads."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return DataFormatError("not an HDF5 file (no HDF5 signature)", path=path)
    if suffix == ".npz":
        return DataFormatError("not an .npz file (not a zip archive)", path=path)
    return DataFormatError(f"not an embeddings file: expected {LAYOUTS}", path=path)


def read_hdf5(f, path, id_col=None, col=None):
    """(ids, E, meta) of an open HDF5 file with datasets ``ids`` and ``embeddings``."""
    ic, ec = id_col or "ids", col or "embeddings"
    missing = [k for k in (ic, ec) if not isinstance(f.get(k), h5py.Dataset)]
    if missing:
        has = ", ".join(repr(k) for k in f.keys()) or "nothing"
        raise DataFormatError(f"no dataset {' or '.join(repr(k) for k in missing)} (the file "
                              f"has {has}): expected '{ic}' (n,) and '{ec}' (n, d), or a file "
                              "from `l3ae embed`", path=path)
    ds = f[ic]
    if h5py.check_string_dtype(ds.dtype) is not None:
        raw = ds[...]
        ids = _decode(raw.ravel().tolist(), path, f"dataset {ic!r}")
    elif ds.dtype.kind in "iu":
        ids = [str(v) for v in ds[...].ravel().tolist()]
    else:
        raise DataFormatError(f"dataset {ic!r} holds {ds.dtype}: expected strings or integers",
                              path=path)
    if ds.ndim != 1:
        raise DataFormatError(f"dataset {ic!r} has shape {ds.shape}: expected (n,)", path=path)
    ds = f[ec]
    if ds.ndim != 2 or ds.dtype.kind != "f" or ds.dtype.itemsize == 4:
        return finish(path, ids, ds[...], "hdf5", f"/{ec}")  # finish words what is wrong
    # float16/64 on disk: cast a block of rows at a time, not the whole file at its width
    E, overflow = np.empty(ds.shape, np.float32), {}
    step = max(1, (64 << 20) // max(ds.shape[1] * ds.dtype.itemsize, 1))
    for r0 in range(0, ds.shape[0], step):
        E[r0:r0 + step], over = to_float32(ds[r0:r0 + step])
        overflow.update({r0 + r: v for r, v in over.items()})
    return finish(path, ids, E, "hdf5", f"/{ec}", overflow)


def read_npz(path, id_col=None, col=None):
    """(ids, E, meta) of an .npz archive with arrays ``ids`` and ``embeddings``."""
    ic, ec = id_col or "ids", col or "embeddings"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (ic, ec) if k not in z.files]
            if missing:
                raise DataFormatError(
                    f"no array {' or '.join(repr(k) for k in missing)} (the archive has "
                    f"{', '.join(repr(k) for k in z.files) or 'nothing'}): expected '{ic}' (n,) "
                    f"and '{ec}' (n, d)", path=path)
            try:
                raw = z[ic]
            except ValueError:  # object arrays need pickle, which is never allowed
                raise DataFormatError(f"array {ic!r} holds Python objects: save the ids as a "
                                      "string array, np.array(ids, dtype=str)", path=path) from None
            try:
                E = z[ec]
            except ValueError:
                raise DataFormatError(f"array {ec!r} holds Python objects (ragged rows?): save "
                                      "an (n, d) float array", path=path) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataFormatError(f"not an .npz file ({exc})", path=path) from None
    if raw.ndim != 1:
        raise DataFormatError(f"array {ic!r} has shape {raw.shape}: expected (n,)", path=path)
    if raw.dtype.kind == "U":
        ids = raw.tolist()
    elif raw.dtype.kind == "S":
        ids = _decode(raw.tolist(), path, f"array {ic!r}")
    elif raw.dtype.kind in "iu":
        ids = [str(v) for v in raw.tolist()]
    else:
        raise DataFormatError(f"array {ic!r} holds {raw.dtype}: expected strings or integers",
                              path=path)
    return finish(path, ids, E, "npz", f"array {ec!r}")


def read_parquet(path, id_col=None, col=None):
    """(ids, E, meta) of a Parquet file with an id column and a list-of-floats column."""
    ids, E, where, overflow = parquet.read_vectors(path, id_col, col)
    return finish(path, ids, E, "parquet", where, overflow)


def _decode(values, path, what):
    """str ids from a list of str or UTF-8 bytes; the first that is not UTF-8 is named."""
    out = []
    for r, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(f"row {r} (from 0) of {what}: id {v!r} is not UTF-8 "
                                      f"({exc.reason})", path=path) from None
        out.append(v)
    return out


def finish(path, ids, E, kind, where, overflow=None):
    """Checks common to every layout, and the cast to float32: (ids, E (n, d) float32, meta).

    ``where`` names the vectors in messages ("/embeddings", "column 'embedding'"); overflow:
    {row: value} of a cast done before (E already float32).
    """
    path = Path(path)
    ids = [i.strip() for i in ids]
    if E.ndim != 2 or E.shape[0] != len(ids):
        raise DataFormatError(f"{len(ids)} ids and embeddings of shape {E.shape} do not match: "
                              f"expected {where} of shape ({len(ids)}, d)", path=path)
    if E.dtype.kind != "f":
        raise DataFormatError(f"embeddings of dtype {E.dtype} in {where}: expected float16, "
                              "float32 or float64", path=path)
    if ids and E.shape[1] == 0:
        raise DataFormatError(f"embeddings of shape {E.shape} have no dimensions (row 0, id "
                              f"{ids[0]!r}, is an empty vector)", path=path)
    seen = {}
    for r, i in enumerate(ids):
        if not i:
            raise DataFormatError(f"row {r} (from 0) of {where}: empty id", path=path)
        if "\x00" in i:
            raise DataFormatError(f"row {r} (from 0) of {where}: id {i!r} holds a NUL byte",
                                  path=path)
        first = seen.setdefault(i, r)
        if first != r:
            raise DataFormatError(f"duplicate id {i!r} at rows {first} and {r} (from 0) of "
                                  f"{where}", path=path)
    E32, over = to_float32(E)
    overflow = {**(overflow or {}), **over}
    meta = {"layout": kind, "where": where, "remedy": REMEDY, "hashes": None,
            "overflow": overflow,
            "encoder": {"imported": path.name, "layout": kind, "dim": int(E.shape[1])}}
    return ids, E32, meta


def to_float32(E):
    """(E as float32 C-contiguous, {row: value} of finite values beyond float32's range)."""
    if E.dtype == np.float32:
        return np.ascontiguousarray(E), {}
    with np.errstate(over="ignore"):  # reported below, by row
        E32 = np.ascontiguousarray(E, dtype=np.float32)
    overflow = {}
    if E.dtype.itemsize > 4:
        rows = np.flatnonzero(np.isinf(E32).any(axis=1))
        for r in rows.tolist():
            hit = np.isinf(E32[r]) & np.isfinite(E[r])
            if hit.any():
                overflow[r] = float(E[r][hit][0])
    return E32, overflow


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
    import time

    from l3ae.io.embeddings import align, read_embeddings, replaceable, write_embeddings

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
