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

Vectors made elsewhere (:mod:`l3ae.io.vectors`, :mod:`l3ae.io.parquet`) are read beside this
layout by :func:`l3ae.io.readers.read_embeddings`, so every command that takes ``--embeddings``
takes them all; ``l3ae embed --import`` converts them into this layout
(:func:`l3ae.io.readers.import_vectors`: a ``"vector:"`` hash per row and an ``encoder``
attribute ``{"imported": file name, "layout", "dim"}``).
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


def open_file(path):
    """The HDF5 file ``path`` open for reading, or DataFormatError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such embeddings file; make one with `l3ae embed`", path=path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"not an HDF5 file ({exc})", path=path) from None


def is_own(f) -> bool:
    """Whether the open HDF5 file ``f`` says it is one of l3ae's (embeddings, or another kind
    that :func:`read_own` then refuses with its reason)."""
    tag = f.attrs.get("encoding-type")
    tag = tag.decode() if isinstance(tag, bytes) else tag
    return isinstance(tag, str) and tag.startswith("l3ae")


def read_own(f, path, vectors=True):
    """(ids: list[str], E (n, d) float32 or None when not ``vectors``, meta) of the open l3ae
    embeddings file ``f``: meta holds the root attributes, ``encoder`` (a dict), ``hashes``
    (list[str]) and ``layout`` = "l3ae". Another l3ae file (a model?) or another version is
    refused, naming ``path``."""
    _check_root(f, path)
    ids = f["ids"].asstr()[...].tolist()
    meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    meta["encoder"] = _encoder(f, path)
    meta["hashes"] = f["hashes"].asstr()[...].tolist()
    meta["layout"] = "l3ae"
    E = f["embeddings"][...].astype(np.float32, copy=False) if vectors else None
    return ids, E, meta
