"""Read ``.safetensors`` weight files with NumPy alone (no torch, no ``safetensors`` package).

The format: 8 bytes little-endian u64 N, then N bytes of JSON ``{name: {"dtype": "F32",
"shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the raw
little-endian tensor bytes; offsets count from the first byte after the header.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from l3ae.errors import DataFormatError

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_MAX_HEADER = 100 * 2**20  # the reference implementation refuses larger headers too


def read_header(path) -> tuple[dict, int]:
    """(tensor table without ``__metadata__``, byte offset of the data section)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise DataFormatError("not a safetensors file (shorter than 8 bytes)", path=path)
        (n,) = struct.unpack("<Q", raw)
        if n > min(_MAX_HEADER, size - 8):
            raise DataFormatError(f"not a safetensors file (header length {n})", path=path)
        try:
            table = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFormatError(f"bad safetensors JSON header: {exc}", path=path) from None
    table.pop("__metadata__", None)
    return table, 8 + n


def load_safetensors(path, dtype=np.float32) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as NumPy arrays.

    Floating tensors (F64/F32/F16/BF16) are converted to ``dtype`` (float32 by default); integer
    tensors keep their type. Arrays are read-only views of a memory map when no conversion is
    needed, so a 90 MB file costs no copy until used.
    """
    path = Path(path)
    table, start = read_header(path)
    blob = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in table.items():
        try:
            code, shape, (lo, hi) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(f"tensor {name!r}: bad header entry {info!r}",
                                  path=path) from None
        raw = blob[start + lo:start + hi]
        if code == "BF16":
            # bfloat16 is the top half of a float32: shift the bits into place
            bits = raw.view("<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif code in _DTYPES:
            arr = raw.view(_DTYPES[code])
        else:
            raise DataFormatError(f"tensor {name!r}: unsupported dtype {code}", path=path)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise DataFormatError(
                f"tensor {name!r}: {hi - lo} bytes do not hold shape {list(shape)} {code}",
                path=path)
        arr = arr.reshape(shape)
        if arr.dtype.kind == "f" and dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        out[name] = arr
    return out
