"""HDF5 and .npz files of vectors made elsewhere (any model), in the layouts people have:

    HDF5     datasets ``ids`` (n,) (UTF-8 strings or bytes, or integers) and ``embeddings``
             (n, d); no attributes needed
    .npz     arrays ``ids`` (n,) (str, bytes or integers; not objects) and ``embeddings`` (n, d)

(Parquet: :func:`l3ae.io.parquet.read_vectors`; l3ae's own layout: :mod:`l3ae.io.embeddings`;
which reader a file goes to: :func:`l3ae.io.readers.read_embeddings`.)
``id_col`` / ``col`` rename the id and vector dataset or array (the commands'
``--embedding-id-col`` / ``--embedding-col``). Vectors are float16, float32 or float64 on disk
and float32 in memory (a float64 value beyond float32's range is reported, not turned into
inf). Rows may come in any order. Refused, each naming the file, the row (from 0) and the id:
a zero width, empty and repeated ids (:func:`l3ae.io.vectorsets.checked`).
"""

from __future__ import annotations

import zipfile

import h5py
import numpy as np

from l3ae.errors import DataFormatError
from l3ae.io.vectorsets import checked, to_float32


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
        return checked(path, ids, ds[...], "hdf5", f"/{ec}")  # finish words what is wrong
    # float16/64 on disk: cast a block of rows at a time, not the whole file at its width
    E, overflow = np.empty(ds.shape, np.float32), {}
    step = max(1, (64 << 20) // max(ds.shape[1] * ds.dtype.itemsize, 1))
    for r0 in range(0, ds.shape[0], step):
        E[r0:r0 + step], over = to_float32(ds[r0:r0 + step])
        overflow.update({r0 + r: v for r, v in over.items()})
    return checked(path, ids, E, "hdf5", f"/{ec}", overflow)


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
    return checked(path, ids, E, "npz", f"array {ec!r}")


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
