"""The embeddings file: item ids, their text embeddings and the hash of each text, in HDF5.

Layout (version 1):

    /ids          (n,) UTF-8 variable-length strings, unique
    /embeddings   (n, d) float32, row i for ids[i]
    /hashes       (n,) UTF-8 strings: sha256 hex of the UTF-8 text that was embedded
    root attrs    encoding-type = "l3ae-embeddings", encoding-version = "1",
                  encoder = JSON {name, fingerprint, pooling, normalize, max_length, dim, ...},
                  template = the template that rendered the texts, l3ae-version

Rows of items whose text was empty are all zeros (see :mod:`l3ae.embed.pipeline`). Files are
written to a temporary sibling and renamed (:func:`l3ae.io.atomic.atomic_path`): a reader sees
the old file or the new one, never half of one.

:func:`read_embeddings` also reads vectors made elsewhere — a plain HDF5 file with ``ids`` and
``embeddings``, an ``.npz``, a Parquet table — by their content (:mod:`l3ae.io.vectors`), so
every command that takes ``--embeddings`` takes them all. ``l3ae embed --import`` converts them
into this layout (:func:`l3ae.io.vectors.import_vectors`: a ``"vector:"`` hash per row and an
``encoder`` attribute ``{"imported": file name, "layout", "dim"}``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from l3ae.errors import DataFormatError
from l3ae.io.atomic import atomic_path

ENCODING_TYPE = "l3ae-embeddings"
ENCODING_VERSION = "1"
_SHOW = 5  # ids named in an error message


def text_hash(text: str) -> str:
    """sha256 hex digest of the UTF-8 bytes of ``text``: what decides whether to re-embed."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def write_embeddings(path, ids, E, hashes, attrs=None) -> Path:
    """Write ids (n,) str, E (n, d) float32, hashes (n,) str and root ``attrs`` to ``path``.

    attrs values that are dicts or lists are stored as JSON strings. Raises ValueError on
    mismatched lengths or duplicate ids (a programming error, not bad user data).
    """
    from l3ae import __version__

    ids, hashes = [str(i) for i in ids], [str(h) for h in hashes]
    E = np.asarray(E, dtype=np.float32)
    if E.ndim != 2 or E.shape[0] != len(ids) or len(hashes) != len(ids):
        raise ValueError(f"{len(ids)} ids, {len(hashes)} hashes and embeddings of shape "
                         f"{E.shape} do not match")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids")
    path = Path(path)
    str_t = h5py.string_dtype(encoding="utf-8")
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["encoding-type"] = ENCODING_TYPE
            f.attrs["encoding-version"] = ENCODING_VERSION
            f.attrs["l3ae-version"] = __version__
            for k, v in (attrs or {}).items():
                f.attrs[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
            f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=str_t)
            f.create_dataset("embeddings", data=E)
            f.create_dataset("hashes", data=np.array(hashes, dtype=object), dtype=str_t)
    return path


def _check_root(f, path):
    kind = f.attrs.get("encoding-type")
    if kind != ENCODING_TYPE:
        raise DataFormatError(f"not an l3ae embeddings file (encoding-type {kind!r}, expected "
                              f"{ENCODING_TYPE!r}); make one with `l3ae embed`", path=path)
    version = str(f.attrs.get("encoding-version"))
    if version != ENCODING_VERSION:
        newer = version.isdigit() and int(version) > int(ENCODING_VERSION)
        raise DataFormatError(
            f"embeddings format version {version} is not readable by this l3ae (reads "
            f"{ENCODING_VERSION}){'; upgrade l3ae' if newer else '; re-run `l3ae embed`'}",
            path=path)
    missing = [k for k in ("ids", "embeddings", "hashes") if k not in f]
    if missing:
        raise DataFormatError(f"embeddings file lacks dataset(s) {', '.join(missing)}", path=path)
    n, shape = f["ids"].shape[0], f["embeddings"].shape
    if len(shape) != 2 or shape[0] != n or f["hashes"].shape[0] != n:
        raise DataFormatError(f"{n} ids, {f['hashes'].shape[0]} hashes and embeddings of shape "
                              f"{shape} do not match", path=path)
    dim = _encoder(f, path).get("dim")
    if n and shape[1] == 0:
        raise DataFormatError(f"embeddings of shape {shape} have no dimensions; re-run "
                              "`l3ae embed`", path=path)
    if isinstance(dim, int) and dim != shape[1]:
        raise DataFormatError(f"embeddings are {shape[1]}-d but the file's encoder makes "
                              f"{dim}-d vectors; re-run `l3ae embed`", path=path)


def _encoder(f, path) -> dict:
    """The root attribute ``encoder`` decoded from JSON ({} when absent or empty)."""
    raw = f.attrs.get("encoder") or "{}"
    try:
        enc = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, json.JSONDecodeError):
        raise DataFormatError("attribute 'encoder' is not JSON", path=path) from None
    if not isinstance(enc, dict):
        raise DataFormatError(f"attribute 'encoder' is {enc!r}, not a JSON object", path=path)
    return enc


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such embeddings file; make one with `l3ae embed`", path=path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"not an HDF5 file ({exc})", path=path) from None


def read_embeddings(path, vectors: bool = True, id_col=None, col=None):
    """(ids: list[str], E: (n, d) float32 or None when not ``vectors``, meta: dict) of an
    embeddings file of any layout, told apart by its content (see :mod:`l3ae.io.vectors`).

    meta holds ``layout`` ("l3ae", "hdf5", "npz" or "parquet"), ``encoder`` (a dict), ``hashes``
    (list[str]; None for another layout) and, for l3ae's layout, the root attributes.
    id_col, col : the id and vector dataset/array/column of another layout (defaults ids and
    embeddings; item_id and embedding for Parquet); ignored for l3ae's own.
    Raises DataFormatError for a missing, unreadable, inconsistent or other-version file.
    """
    from l3ae.io import vectors as other

    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such embeddings file; make one with `l3ae embed`", path=path)
    kind = other.layout(path)
    if kind == "npz":
        ids, E, meta = other.read_npz(path, id_col, col)
    elif kind == "parquet":
        ids, E, meta = other.read_parquet(path, id_col, col)
    elif kind != "hdf5":
        raise other.unknown_layout(path)
    else:
        with _open(path) as f:
            tag = f.attrs.get("encoding-type")
            tag = tag.decode() if isinstance(tag, bytes) else tag
            if not (isinstance(tag, str) and tag.startswith("l3ae")):
                ids, E, meta = other.read_hdf5(f, path, id_col, col)
            else:
                _check_root(f, path)  # another l3ae file (a model?) is refused here
                ids = f["ids"].asstr()[...].tolist()
                meta = {k: (v.decode() if isinstance(v, bytes) else v)
                        for k, v in f.attrs.items()}
                meta["encoder"] = _encoder(f, path)
                meta["hashes"] = f["hashes"].asstr()[...].tolist()
                meta["layout"] = "l3ae"
                E = f["embeddings"][...].astype(np.float32, copy=False) if vectors else None
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
