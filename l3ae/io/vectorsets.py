"""What every reader of vectors made elsewhere returns, whatever the layout: (ids, E, meta),
checked the same way, E cast to float32.

Below the layout modules (:mod:`.vectors` for HDF5 and .npz, :mod:`.parquet`), which know
nothing of each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from l3ae.errors import DataFormatError

#: how the messages of a file of another layout end (l3ae's own say "re-run `l3ae embed`")
REMEDY = "fix the file"


def checked(path, ids, E, kind, where, overflow=None):
    """Checks common to every layout, and the cast to float32: (ids, E (n, d) float32, meta).

    ``where`` names the vectors in messages ("/embeddings", "column 'embedding'"); overflow:
    {row: value} of a cast done before (E already float32). Refused, naming the row (from 0):
    ids and rows that do not match, a zero width, non-float values, empty, NUL-holding and
    repeated ids.
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
