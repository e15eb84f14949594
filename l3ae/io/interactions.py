"""What every interactions reader returns, whatever the file's format: :class:`Interactions`,
its CSR matrices, and chunks of users' histories for batch recommend.

The bottom of :mod:`l3ae.io`: no file is read here, so the format modules (:mod:`.delimited`,
:mod:`.parquet`) build on it without knowing of each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

FORMATS = ("table", "sequences")  # what an interactions file holds: rows, or users' sequences


class NotStreamable(Exception):
    """A file cannot be read in chunks of users; ``str(exc)`` says why (the caller reads it
    whole with the general reader, which also reports bad input with its own messages)."""


@dataclass
class Interactions:
    """Implicit-feedback interactions with stable string-id maps.

    users, items : (nnz,) int64 codes into ``user_ids`` / ``item_ids``; duplicates collapsed.
    user_ids, item_ids : list[str] in order of first appearance in the file.
    ordered : True for sequence files: every event is kept (repeats too), each user's events
    in time order, so that leave-one-out splits and position-aware scoring can use them.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: list
    item_ids: list
    path: str = "<memory>"
    ordered: bool = False

    @property
    def shape(self):
        return len(self.user_ids), len(self.item_ids)

    def matrix(self, dtype=np.float32, item_ids=None):
        """Binary CSR X (m, n) with int64 indptr, sorted column indices.

        item_ids : optional catalog order; interactions on items outside it are dropped.
        """
        items, n = self.items, len(self.item_ids)
        users = self.users
        if item_ids is not None:
            pos = {it: k for k, it in enumerate(item_ids)}
            remap = np.array([pos.get(it, -1) for it in self.item_ids], dtype=np.int64)
            items = remap[items] if len(items) else items
            keep = items >= 0
            users, items, n = users[keep], items[keep], len(item_ids)
        return to_csr(users, items, (len(self.user_ids), n), dtype)


def collapsed(users, items, user_ids, item_ids, path):
    """Interactions of (nnz,) int64 code pairs with duplicate (user, item) rows collapsed to
    their first appearance, in order."""
    # here, not at the top: this module is light enough for `l3ae --help` (no numba)
    from l3ae.io import _fastio

    if len(users) and (users[1:] >= users[:-1]).all():  # grouped by user, as exports are
        first = _fastio.first_pairs(users, items, len(item_ids))
    else:
        key = users * len(item_ids) + items
        _, first = np.unique(key, return_index=True)
        first.sort()
    return Interactions(users[first], items[first], user_ids, item_ids, str(path))


def id_column(names, id_col=None):
    """The id column of an item table with columns ``names``: ``id_col``, else ``item_id`` when
    present, else the first column."""
    names = list(names)
    return id_col or ("item_id" if "item_id" in names else names[0])


def to_csr(users, items, shape, dtype=np.float32):
    """Binary CSR (m, n) from code pairs; duplicates collapse to 1, indptr is int64."""
    X = sp.csr_matrix((np.ones(len(users), dtype=dtype), (users, items)), shape=shape)
    X.sum_duplicates()
    X.data[:] = 1
    X.indptr = X.indptr.astype(np.int64)
    X.indices = X.indices.astype(np.int64)
    return X


def latest_matrix(users, items, age, shape, value):
    """(m, n) CSR (int64 indices, sorted) of each (user, item)'s most recent event, the one of
    smallest ``age`` (int64 per event), holding ``value(age)`` as float32."""
    latest = np.lexsort((age, items, users))
    key = users[latest] * shape[1] + items[latest]
    latest = latest[np.r_[True, key[1:] != key[:-1]]]
    X = sp.csr_matrix((value(age[latest]).astype(np.float32), (users[latest], items[latest])),
                      shape=shape)
    X.sort_indices()
    X.indptr, X.indices = X.indptr.astype(np.int64), X.indices.astype(np.int64)
    return X


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


class memory_chunks:
    """Chunks of users of Interactions read whole: iterate for (user_ids, X (k, n) CSR over
    ``item_ids``, unknown (r,) int64 < 0 codes of items not in ``item_ids``), as the streaming
    readers give them (:class:`l3ae.io.delimited.stream_chunks`); ``total`` users,
    ``known_any`` whether any interaction is on an item of ``item_ids``.

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
