"""Inputs of batch recommend: histories in chunks of users, and id lists; and the build's
whole-table scan (:func:`read_table`), which the general reader tries first.

:func:`stream_chunks` reads an interactions file whose rows are grouped by user (each user's
rows contiguous, as exports usually are; a sequence file always is) block by block, so memory
stays flat in the number of users: a 4 MB block, the users of one chunk, and 8 bytes per user
for the check that no user comes back later. It runs in two passes: a survey (user count, the
grouping check, anything the fast scan cannot take) and then the chunks. When the survey finds
the file not grouped, or not for the fast scan (quotes, odd bytes, bad rows), it raises
:class:`NotStreamable` with the reason, and the caller reads the file whole with
:func:`l3ae.io.readers.read_interactions` (:func:`memory_chunks`), which also reports bad input
with its own messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l3ae.errors import DataFormatError
from l3ae.io import _fastio
from l3ae.io.readers import (_column, _delimiter, _open_rows, first_bad_line, latest_matrix,
                              to_csr)

BLOCK = 4 << 20
_REASONS = {
    _fastio.SHORT_ROW: "a row with too few columns",
    _fastio.EMPTY_ID: "an empty id",
    _fastio.QUOTE: "quoted fields",
    _fastio.ODD_BYTE: "a NUL byte or a carriage return inside a line",
    _fastio.NON_ASCII_BLANK: "non-ASCII whitespace",
    _fastio.SEQ_TABLE: "a ',' or ';' in a user id",
    _fastio.SEQ_NO_ITEMS: "a user without items",
}


class NotStreamable(Exception):
    """The file cannot be streamed; ``str(exc)`` says why."""


@dataclass(frozen=True)
class IdTable:
    """Ids as concatenated UTF-8 bytes and a hash table: the numba side of a str -> int dict."""

    buf: np.ndarray  # (bytes,) uint8
    off: np.ndarray  # (k + 1,) int64
    table: np.ndarray  # (size,) int64

    @classmethod
    def of(cls, ids):
        buf, off = encode_fields([i.encode("utf-8") for i in ids])
        return cls(buf, off, _fastio.build_table(buf, off))


def encode_fields(fields):
    """(uint8 buffer, int64 offsets) of a list of bytes."""
    off = np.zeros(len(fields) + 1, np.int64)
    np.cumsum([len(f) for f in fields], out=off[1:])
    return np.frombuffer(b"".join(fields), np.uint8), off


@dataclass(frozen=True)
class _Layout:
    seq: bool
    delim: int
    iu: int
    ii: int
    need: int
    start: int  # byte offset of the first data line


def _layout(path, fmt, user_col, item_col, sep):
    if fmt not in ("table", "sequences"):
        raise NotStreamable(f"format {fmt!r}")
    if fmt == "sequences":
        with open(path, "rb") as fh:
            bom = fh.read(3) == b"\xef\xbb\xbf"
        return _Layout(True, 32, 0, 0, 0, 3 if bom else 0)
    names, rows = _open_rows(path, sep)  # the reader's own header checks and messages
    rows.close()
    iu, ii = _column(names, user_col, path, "user"), _column(names, item_col, path, "item")
    with open(path, "rb") as fh:
        header = fh.readline()
    delim = _delimiter(Path(path), header.decode("utf-8-sig"), sep)
    if ord(delim) > 127 or b"\r" in header.rstrip(b"\r\n"):
        raise NotStreamable(f"delimiter {delim!r}")
    return _Layout(False, ord(delim), iu, ii, max(iu, ii) + 1, len(header))


def read_table(path, user_col="user_id", item_col="item_id", sep=None):
    """(users, items, user_ids, item_ids) of an interactions table, as
    :func:`l3ae.io.readers.read_interactions` reads it without --min-rating (duplicates not yet
    collapsed), in one numba scan of the whole file. Raises NotStreamable for anything that
    scan does not take (the caller then reads the file with the general reader)."""
    lay = _layout(path, "table", user_col, item_col, sep)
    data = np.fromfile(path, np.uint8, offset=lay.start)
    raw = memoryview(data)  # no second copy of the file
    if (data >= 0x80).any():
        try:
            str(raw, "utf-8")
        except UnicodeDecodeError:
            raise NotStreamable("not UTF-8") from None
    cap = int(np.count_nonzero(data == 10)) + 1
    users, items = np.empty(cap, np.int64), np.empty(cap, np.int64)
    ranges = [np.empty(cap, np.int64) for _ in range(4)]
    rows, nu, ni, status, _ = _fastio.encode_table(data, lay.delim, lay.iu, lay.ii, lay.need,
                                                   users, items, *ranges)
    if status != _fastio.OK:
        raise NotStreamable(_REASONS[status])
    uka, ukb, ika, ikb = ranges
    return (users[:rows], items[:rows],
            [str(raw[a:b], "utf-8") for a, b in zip(uka[:nu].tolist(), ukb[:nu].tolist())],
            [str(raw[a:b], "utf-8") for a, b in zip(ika[:ni].tolist(), ikb[:ni].tolist())])


def _blocks(path, lay, lookup, block=BLOCK, check_text=False):
    """Yield (buf, rows, codes, g_ua, g_ub, g_row) per block of whole user groups: buf the bytes,
    rows how many rows of the block belong to those groups, codes (rows,) int64 item numbers in
    the IdTable ``lookup[0]`` (unknown < 0; no codes while ``lookup[0]`` is None: the caller may
    set it between blocks), per group its user id bytes and its first row."""
    none = IdTable(np.frombuffer(b"", np.uint8), np.zeros(1, np.int64), np.empty(0, np.int64))
    with open(path, "rb") as fh:
        fh.seek(lay.start)
        carry = b""
        while True:
            more = fh.read(block)
            buf = carry + more
            cut = buf.rfind(b"\n") + 1 if more else len(buf)
            if more and cut == 0:
                carry = buf
                continue
            if check_text:
                try:
                    buf[:cut].decode("utf-8")
                except UnicodeDecodeError:
                    raise NotStreamable("text that is not UTF-8") from None
            data = np.frombuffer(buf, np.uint8, count=cut)
            cap = cut // 2 + 2 if lay.seq else np.count_nonzero(data == 10) + 2
            items = lookup[0] or none
            codes = np.empty(cap if len(items.table) else 0, np.int64)
            g = [np.empty(cap, np.int64) for _ in range(4)]
            rows, ngroups, status, _ = _fastio.scan_lines(
                data, lay.seq, lay.delim, lay.iu, lay.ii, lay.need, items.table, items.buf,
                items.off, codes, *g)
            if status != _fastio.OK:
                raise NotStreamable(_REASONS[status])
            g_line, g_ua, g_ub, g_row = (a[:ngroups] for a in g)
            if more:  # the last group may go on in the next block: carry its lines over
                if ngroups <= 1:
                    carry = buf
                    continue
                carry, ngroups, rows = buf[g_line[-1]:], ngroups - 1, g_row[-1]
            yield buf, rows, codes[:rows], g_ua[:ngroups], g_ub[:ngroups], g_row[:ngroups]
            if not more:
                return


class stream_chunks:
    """Chunks of users of a grouped interactions file: iterate for (user_ids, X, unknown), X
    (k, n) binary CSR over ``item_ids``, unknown (r,) int64 < 0, one code per interaction on an
    item not in ``item_ids`` (equal codes: the same item). ``total`` is the number of users,
    ``known_any`` whether any interaction is on an item of ``item_ids``.

    Raises NotStreamable when the file is not grouped by user or not for the fast scan, and the
    reader's DataFormatError for a bad header.
    """

    def __init__(self, path, item_ids, fmt="table", user_col="user_id", item_col="item_id",
                 sep=None, chunk=8192, block=BLOCK, recency=1.0):
        self.path, self.chunk, self.block, self.recency = path, chunk, block, recency
        self.lay = _layout(path, fmt, user_col, item_col, sep)
        self.items, self.n = IdTable.of(item_ids), len(item_ids)
        hashes, lookup = [], [self.items]  # items are looked up until one is known
        for buf, _, codes, ua, ub, _ in _blocks(path, self.lay, lookup, block, True):
            hashes.append(_fastio.hash_ranges(np.frombuffer(buf, np.uint8), ua, ub))
            if lookup[0] and (codes >= 0).any():
                lookup[0] = None
        self.known_any = lookup[0] is None
        hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        if len(hashes) == 0:
            raise NotStreamable("no interactions")
        if np.unique(hashes).size < hashes.size:
            raise NotStreamable("the rows of a user are not contiguous")
        self.total = int(hashes.size)

    def __iter__(self):
        uids, lens, codes = [], [], []
        pending = 0
        for buf, rows, c, ua, ub, g_row in _blocks(self.path, self.lay, [self.items], self.block):
            uids += [buf[a:b].decode("utf-8") for a, b in zip(ua.tolist(), ub.tolist())]
            lens.append(np.diff(g_row, append=rows))
            codes.append(c)
            pending += len(g_row)
            while pending >= self.chunk:
                yield self._take(uids, lens, codes, self.chunk)
                pending -= self.chunk
        if pending:
            yield self._take(uids, lens, codes, pending)

    def _take(self, uids, lens, codes, k):
        return take_chunk(uids, lens, codes, k, self.n, self.recency)


def take_chunk(uids, lens, codes, k, n, recency=1.0):
    """Cut the first k users off the pending lists ``uids`` (ids), ``lens`` (arrays of history
    lengths), ``codes`` (arrays of item codes, < 0 unknown), in place, into a chunk:
    (user ids, X (k, n) CSR, unknown codes)."""
    ln, cd = np.concatenate(lens), np.concatenate(codes)
    r = int(ln[:k].sum())
    lens[:], codes[:] = [ln[k:]], [cd[r:]]
    head, uids[:] = uids[:k], uids[k:]
    users, cd = np.repeat(np.arange(k), ln[:k]), cd[:r]
    return head, histories_matrix(users, cd, (k, n), recency), cd[cd < 0]


def histories_matrix(users, codes, shape, recency=1.0):
    """X (m, n) CSR of (user, item code) events, codes < 0 skipped: binary, or with
    ``recency < 1`` (ordered events: each user's in time order, oldest first) recency ** age,
    age 0 for the user's latest event, of the item's latest event."""
    known = codes >= 0
    if recency == 1.0:
        return to_csr(users[known], codes[known], shape)
    order = np.argsort(users, kind="stable")
    count = np.bincount(users, minlength=shape[0])
    start = np.cumsum(count) - count
    age = np.empty(len(users), np.int64)
    age[order] = count[users[order]] - 1 - (np.arange(len(users)) - start[users[order]])
    return latest_matrix(users[known], codes[known], age[known], shape,
                         lambda a: recency ** a)


class memory_chunks:
    """Chunks of users of Interactions read whole: same interface as :class:`stream_chunks`.

    users : ids to recommend for, in this order (absent ones get an empty history); default
    every user of the histories.
    """

    def __init__(self, hist, item_ids, users=None, chunk=8192, recency=1.0):
        pos = {it: k for k, it in enumerate(item_ids)}
        known = np.array([pos.get(it, -1) for it in hist.item_ids], np.int64)
        self.known_any = bool((known >= 0).any())
        codes = known[hist.items]
        keep = codes >= 0
        m = len(hist.user_ids)
        # row m stays empty: the history of a requested user the file does not have
        self.X = histories_matrix(hist.users, codes, (m + 1, len(item_ids)), recency)
        self.unknown = -1 - hist.items[~keep]  # reported with the first chunk
        self.uids, self.rows = list(hist.user_ids), np.arange(m)
        if users is not None:
            idx = {u: k for k, u in enumerate(self.uids)}
            self.uids, self.rows = list(users), np.array([idx.get(u, m) for u in users], np.int64)
        self.total, self.chunk = len(self.uids), chunk

    def __iter__(self):
        for a in range(0, self.total, self.chunk):
            b = min(self.total, a + self.chunk)
            yield self.uids[a:b], self.X[self.rows[a:b]], self.unknown if a == 0 else \
                self.unknown[:0]


def read_id_list(path, header):
    """Ids, one per line, of a plain list file (blank lines skipped; a first line equal to
    ``header`` is a header; a BOM is dropped). An empty list is an error."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            ids = [line.strip() for line in fh if line.strip()]
    except UnicodeDecodeError:
        raise first_bad_line(path) from None
    if ids and ids[0] == header:
        ids = ids[1:]
    if not ids:
        raise DataFormatError(f"no ids (expected one {header} per line)", path=path)
    return ids
