"""Interactions files read in chunks of users, for batch recommend: memory flat in the number
of users.

:class:`stream_chunks` reads a delimited file (:mod:`l3ae.io.delimited`) whose rows are grouped
by user (each user's rows contiguous, as exports usually are; a sequence file always is) block
by block: a 4 MB block, the users of one chunk, and 8 bytes per user for the check that no user
comes back later. It runs in two passes: a survey (user count, the grouping check, anything the
fast scan cannot take) and then the chunks. When the survey finds the file not grouped, or not
for the fast scan (quotes, odd bytes, bad rows), it raises
:class:`l3ae.io.interactions.NotStreamable` with the reason, and the caller reads the file whole
(:class:`l3ae.io.interactions.memory_chunks`), which also reports bad input with the reader's
own messages.
"""

from __future__ import annotations

import numpy as np

from l3ae.io import _fastio
from l3ae.io.delimited import REASONS, scan_layout
from l3ae.io.interactions import NotStreamable, take_chunk

BLOCK = 4 << 20


def _blocks(path, lay, lookup, block=BLOCK, check_text=False):
    """Yield (buf, rows, codes, g_ua, g_ub, g_row) per block of whole user groups: buf the bytes,
    rows how many rows of the block belong to those groups, codes (rows,) int64 item numbers in
    the IdTable ``lookup[0]`` (unknown < 0; no codes while ``lookup[0]`` is None: the caller may
    set it between blocks), per group its user id bytes and its first row."""
    none = _fastio.IdTable(np.frombuffer(b"", np.uint8), np.zeros(1, np.int64),
                           np.empty(0, np.int64))
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
                raise NotStreamable(REASONS[status])
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
        self.lay = scan_layout(path, fmt, user_col, item_col, sep)
        self.items, self.n = _fastio.IdTable.of(item_ids), len(item_ids)
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
