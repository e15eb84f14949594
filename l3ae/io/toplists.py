"""Top-N lists out: CSV (``user_id,item_id,rank,score,fallback``, rank from 1) or JSONL
(``{"user_id": …, "items": […], "scores": […], "fallback": …}``), written chunk by chunk.

Scores are written like ``"%.6g"``; lines end with ``\\n``; ids are quoted as the csv module's
QUOTE_MINIMAL would (CSV) or as JSON strings (JSONL). The bytes are made by a numba kernel
(:func:`l3ae.io._fastio.format_lists`): Python's csv module would cost more than the scoring.
"""

import contextlib
import json
import re
import sys

import numpy as np

from l3ae.errors import ConfigError
from l3ae.io import _fastio, parquet
from l3ae.io.atomic import atomic_open

CSV_HEADER = b"user_id,item_id,rank,score,fallback\n"


def _csv_field(text):
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode("utf-8")


def _json_field(text):
    return json.dumps(text).encode("ascii")


# ids that come out as they are: ASCII without the format's special characters
_PLAIN = {False: re.compile(r'[^\x20-\x7e]|[,"]'), True: re.compile(r'[^\x20-\x7e]|["\\]')}


def encode_ids(ids, jsonl):
    """(uint8 buffer, int64 offsets) of ids quoted for the format (JSON strings or CSV fields)."""
    joined = "".join(ids)
    if _PLAIN[jsonl].search(joined):  # rare: quote one by one
        return _fastio.encode_fields([(_json_field if jsonl else _csv_field)(i) for i in ids])
    lens = np.fromiter(map(len, ids), np.int64, len(ids))
    if jsonl:  # each id between double quotes
        joined, lens = '"' + '""'.join(ids) + '"' if ids else "", lens + 2
    off = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    return np.frombuffer(joined.encode("ascii"), np.uint8), off


class TopListWriter:
    """Writes lists to a binary file object; ``item_ids`` name the columns of ``items``."""

    def __init__(self, fh, item_ids, jsonl=False):
        self.fh, self.jsonl = fh, jsonl
        self.kbuf, self.koff = encode_ids(item_ids, jsonl)
        self.kmax = int(np.diff(self.koff).max(initial=0))
        if not jsonl:
            fh.write(CSV_HEADER)

    def write(self, user_ids, items, scores, fallback):
        """Lists of k users: items (k, N) int64 best first (-1: no more), scores (k, N)
        float32, fallback (k,) bool."""
        ubuf, uoff = encode_ids(user_ids, self.jsonl)
        m, N = items.shape
        buf = np.empty(_fastio.bound(m, N, int(uoff[-1]), self.kmax), np.uint8)
        used = _fastio.format_lists(np.ascontiguousarray(items, np.int64),
                                    np.ascontiguousarray(scores, np.float32),
                                    np.asarray(fallback, bool), ubuf, uoff, self.kbuf,
                                    self.koff, self.jsonl, buf)
        self.fh.write(memoryview(buf)[:used])

    def close(self):
        """Nothing to finish: every chunk is complete text (the file object is the caller's)."""


def list_writer(fh, item_ids, fmt="csv"):
    """A writer of top-N lists in ``fmt`` (csv, jsonl or parquet) to the binary file ``fh``:
    ``write(user_ids, items, scores, fallback)`` per chunk, ``close()`` at the end."""
    if fmt == "parquet":
        return parquet.ParquetListWriter(fh, item_ids)
    if fmt not in ("csv", "jsonl"):
        raise ConfigError(f"unknown output format {fmt!r}; choose csv, jsonl or parquet")
    return TopListWriter(fh, item_ids, jsonl=fmt == "jsonl")


@contextlib.contextmanager
def open_sink(out=None):
    """A binary file object: ``out`` written atomically (it appears complete, or not at all), or
    standard output when ``out`` is None."""
    if out is not None:
        with atomic_open(out, "wb") as fh:
            yield fh
        return
    sys.stdout.flush()
    raw = getattr(sys.stdout, "buffer", None)
    if raw is None:  # a text-only stdout (notebooks): decode on the way
        raw = _TextSink(sys.stdout)
    try:
        yield raw
    finally:
        raw.flush()


class _TextSink:
    def __init__(self, text):
        self.text = text

    def write(self, data):
        self.text.write(bytes(data).decode("utf-8"))

    def flush(self):
        self.text.flush()
