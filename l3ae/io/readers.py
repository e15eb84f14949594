"""Readers for interaction and item tables: CSV/TSV with a header, and RecBole atomic files.

RecBole headers carry types (``user_id:token``); the ``:type`` suffix is dropped. The delimiter is
a tab for ``.inter``/``.item``/``.tsv`` files, a comma for ``.csv``, and otherwise sniffed from
the header line. Sequence files (FAERec/SASRec: ``user item item …`` per line, time order, no
header) are read with ``fmt="sequences"``. Parquet tables (``.parquet``, or Parquet's magic
bytes) go to :mod:`l3ae.io.parquet` with the same columns and meaning. Every error names the
file, the line (a Parquet file: the row) and the value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import _fastio, parquet

_TAB_SUFFIXES = {".inter", ".item", ".user", ".tsv", ".tab"}


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


def _delimiter(path: Path, header: str, sep):
    if sep is not None:
        delim = {"tab": "\t", "\\t": "\t", "comma": ","}.get(sep, sep)
        if len(delim) != 1:
            raise ConfigError(f"--sep takes one character (or 'tab'), got {sep!r}")
        return delim
    if path.suffix.lower() in _TAB_SUFFIXES:
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    for cand in ("\t", ",", ";", "|"):
        if cand in header:
            return cand
    raise DataFormatError(
        f"cannot tell the delimiter from the header {header.strip()[:80]!r}; pass --sep",
        path=path, line=1)


def _not_utf8(path, raw, exc, lineno):
    """The error for line ``lineno`` (bytes ``raw``) that failed to decode with ``exc``."""
    return DataFormatError(f"not UTF-8 text: {raw[exc.start:exc.end]!r} at byte {exc.start + 1} "
                           "of the line; save the file as UTF-8", path, lineno)


def first_bad_line(path):
    """The error naming the first line of ``path`` that is not UTF-8. A text-mode read fails
    a whole chunk at a time, so on that (rare) path the file is scanned again line by line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return _not_utf8(path, raw, exc, lineno)
    return DataFormatError("not UTF-8 text; save the file as UTF-8", path=path)


def _refuse_nul(path, ids, what):
    """Ids end up as HDF5 strings, which cannot hold NUL: name the first such id and its line.
    (NUL bytes in text usually mean a UTF-16 file.)"""
    bad = next((i for i in ids if "\x00" in i), None)
    if bad is None:
        return
    with open(path, encoding="utf-8-sig", newline="") as fh:
        line = next((k for k, text in enumerate(fh, 1) if bad in text), None)
    raise DataFormatError(f"{what} id {bad!r} holds a NUL byte (a UTF-16 file? save it as "
                          "UTF-8)", path, line)


def _open_rows(path, sep=None):
    """Yield (line_number, fields) after the header; returns the header names first.

    line_number is the physical line a record starts on (quoted fields may span lines).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such file", path=path)
    # utf-8-sig: spreadsheet exports start with a BOM that would stick to the first column name
    fh = open(path, encoding="utf-8-sig", errors="strict", newline="")
    try:
        header = fh.readline()
    except UnicodeDecodeError:
        fh.close()
        raise first_bad_line(path) from None
    if not header.strip():
        fh.close()
        raise DataFormatError("empty file: expected a header line", path=path, line=1)
    if "\x00" in header:
        fh.close()
        raise DataFormatError("NUL bytes in the header (a UTF-16 file? save it as UTF-8)",
                              path=path, line=1)
    delim = _delimiter(path, header, sep)
    names = [h.strip().split(":")[0] for h in next(csv.reader([header], delimiter=delim))]
    quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
    # strict: a quote left open must not swallow the rest of the file into one field
    reader = csv.reader(fh, delimiter=delim, quoting=quoting, strict=True)

    def rows():
        start = 2
        try:
            for fields in reader:
                if fields:
                    yield start, fields
                start = reader.line_num + 2
        except UnicodeDecodeError:
            raise first_bad_line(path) from None
        except csv.Error as exc:
            hint = ("; a quoted field is never closed" if "end of data" in str(exc) else "")
            raise DataFormatError(f"bad CSV: {exc}{hint}", path=path, line=start) from None
        finally:
            fh.close()

    return names, rows()


def _column(names, col, path, what):
    if col not in names:
        raise DataFormatError(
            f"no {what} column {col!r}; columns are {', '.join(names)} (choose with --{what}-col)",
            path=path, line=1)
    return names.index(col)


FORMATS = ("table", "sequences")


def read_interactions(path, user_col="user_id", item_col="item_id", rating_col="rating",
                      min_rating=None, sep=None, fmt="table") -> Interactions:
    """Read an interactions table (or, ``fmt="sequences"``, a sequence file) into
    :class:`Interactions`.

    min_rating : keep rows with rating >= min_rating (needs ``rating_col``); None keeps all.
    """
    if parquet.is_parquet(path):
        if fmt != "table":
            raise DataFormatError("a Parquet file is a table: drop --format sequences", path)
        return parquet.read_interactions(path, user_col, item_col, rating_col, min_rating)
    if fmt == "sequences":
        if min_rating is not None:
            raise DataFormatError("sequence files carry no ratings; drop --min-rating", path=path)
        return read_sequences(path)
    if fmt != "table":
        raise DataFormatError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", path)
    if min_rating is None:  # the numba scan first; anything it does not take is read below
        from l3ae.io.stream import NotStreamable, read_table

        try:
            users, items, user_ids, item_ids = read_table(path, user_col, item_col, sep)
        except NotStreamable:
            pass
        else:
            if len(users):
                return _collapsed(users, items, user_ids, item_ids, path)
    names, rows = _open_rows(path, sep)
    iu, ii = _column(names, user_col, path, "user"), _column(names, item_col, path, "item")
    ir = _column(names, rating_col, path, "rating") if min_rating is not None else None
    need = max(iu, ii, -1 if ir is None else ir) + 1
    umap, imap, us, its = {}, {}, [], []
    for lineno, f in rows:
        if len(f) < need:
            raise DataFormatError(
                f"expected {len(names)} columns ({','.join(names)}), got {len(f)}", path, lineno)
        u, i = f[iu].strip(), f[ii].strip()
        if not u or not i:
            raise DataFormatError(f"empty {'user' if not u else 'item'} id", path, lineno)
        if ir is not None:
            try:
                r = float(f[ir])
            except ValueError:
                raise DataFormatError(f"rating {f[ir]!r} is not a number", path, lineno) from None
            if math.isnan(r) or r < min_rating:
                continue
        us.append(umap.setdefault(u, len(umap)))
        its.append(imap.setdefault(i, len(imap)))
    if not us:
        raise DataFormatError("no interactions" + ("" if ir is None else
                              f" with rating >= {min_rating}"), path=path)
    _refuse_nul(path, umap, "user")
    _refuse_nul(path, imap, "item")
    return _collapsed(np.asarray(us, np.int64), np.asarray(its, np.int64), list(umap),
                      list(imap), path)


def _collapsed(users, items, user_ids, item_ids, path):
    """Interactions with duplicate (user, item) rows collapsed, first appearances in order."""
    if len(users) and (users[1:] >= users[:-1]).all():  # grouped by user, as exports are
        first = _fastio.first_pairs(users, items, len(item_ids))
    else:
        key = users * len(item_ids) + items
        _, first = np.unique(key, return_index=True)
        first.sort()
    return Interactions(users[first], items[first], user_ids, item_ids, str(path))


def read_sequences(path) -> Interactions:
    """A sequence file: one line per user, ``user_id item_id item_id …`` separated by blanks,
    items in time order (FAERec/SASRec data). Every event is kept (``ordered=True``).

    A user on two lines, a line with no item, or a file without any line is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such file", path=path)
    umap, imap, us, its = {}, {}, [], []
    lineno = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                fields = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").split()
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, raw, exc, lineno) from None
            if not fields:
                continue
            user = fields[0]
            if "," in user or ";" in user:
                raise DataFormatError(f"expected 'user item item ...' separated by blanks, got "
                                      f"{raw[:60].decode('utf-8', 'replace').strip()!r}; is this a "
                                      f"table (--format table)?", path, lineno)
            if user in umap:
                raise DataFormatError(f"user {user!r} again (first on line {umap[user][1]})",
                                      path, lineno)
            if len(fields) < 2:
                raise DataFormatError(f"user {user!r} has no items", path, lineno)
            u = len(umap)
            umap[user] = (u, lineno)
            us.extend([u] * (len(fields) - 1))
            its.extend(imap.setdefault(i, len(imap)) for i in fields[1:])
    if not us:
        raise DataFormatError("empty file: expected 'user item item ...' lines", path=path,
                              line=max(lineno, 1))
    _refuse_nul(path, umap, "user")
    _refuse_nul(path, imap, "item")
    return Interactions(np.asarray(us, np.int64), np.asarray(its, np.int64), list(umap),
                        list(imap), str(path), ordered=True)


def id_column(names, id_col=None):
    """The id column of an item table with columns ``names``: ``id_col``, else ``item_id`` when
    present, else the first column."""
    names = list(names)
    return id_col or ("item_id" if "item_id" in names else names[0])


def read_items(path, id_col=None, sep=None):
    """Read an item table: (ids: list[str], columns: dict[str, list[str]]).

    id_col : defaults to ``item_id`` when present, else the first column. Duplicate ids and
    empty ids are errors. A Parquet file is read by :func:`l3ae.io.parquet.read_items`.
    """
    if parquet.is_parquet(path):
        return parquet.read_items(path, id_col)
    names, rows = _open_rows(path, sep)
    id_col = id_column(names, id_col)
    k = _column(names, id_col, path, "item")
    ids, cols, seen = [], {n: [] for n in names}, {}
    for lineno, f in rows:
        if len(f) > len(names) or len(f) <= k:
            raise DataFormatError(f"expected {len(names)} columns, got {len(f)}", path, lineno)
        f = f + [""] * (len(names) - len(f))
        iid = f[k].strip()
        if not iid:
            raise DataFormatError("empty item id", path, lineno)
        if iid in seen:
            raise DataFormatError(f"duplicate item id {iid!r} (first on line {seen[iid]})",
                                  path, lineno)
        seen[iid] = lineno
        ids.append(iid)
        for n, v in zip(names, f):
            cols[n].append(v)
    if not ids:
        raise DataFormatError("no items", path=path)
    _refuse_nul(path, ids, "item")
    return ids, cols
