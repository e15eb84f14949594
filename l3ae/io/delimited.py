"""Delimited text files: CSV/TSV tables with a header, RecBole atomic files, sequence files.

RecBole headers carry types (``user_id:token``); the ``:type`` suffix is dropped. The delimiter is
a tab for ``.inter``/``.item``/``.tsv`` files, a comma for ``.csv``, and otherwise sniffed from
the header line. Sequence files (FAERec/SASRec: ``user item item …`` per line, time order, no
header) are read with ``fmt="sequences"``. An interactions table is read by one numba scan of
the whole file (:func:`read_table`) when it can be; anything the scan does not take (quotes, odd
bytes, a rating threshold, bad rows) goes to the csv module's reader, which reads it or reports
it. Every error names the file, the line and the value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import _fastio
from l3ae.io.interactions import FORMATS, Interactions, NotStreamable, collapsed, id_column

_TAB_SUFFIXES = {".inter", ".item", ".user", ".tsv", ".tab"}
REASONS = {
    _fastio.SHORT_ROW: "a row with too few columns",
    _fastio.EMPTY_ID: "an empty id",
    _fastio.QUOTE: "quoted fields",
    _fastio.ODD_BYTE: "a NUL byte or a carriage return inside a line",
    _fastio.NON_ASCII_BLANK: "non-ASCII whitespace",
    _fastio.SEQ_TABLE: "a ',' or ';' in a user id",
    _fastio.SEQ_NO_ITEMS: "a user without items",
}




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


@dataclass(frozen=True)
class Layout:
    """Where the fields of an interactions file are, for the numba scans."""

    seq: bool
    delim: int
    iu: int
    ii: int
    need: int
    start: int  # byte offset of the first data line


def scan_layout(path, fmt, user_col, item_col, sep):
    """The :class:`Layout` of ``path`` after the reader's own header checks (their messages);
    NotStreamable when the scans cannot take it (a delimiter beyond ASCII, a CR in the header)."""
    if fmt not in ("table", "sequences"):
        raise NotStreamable(f"format {fmt!r}")
    if fmt == "sequences":
        with open(path, "rb") as fh:
            bom = fh.read(3) == b"\xef\xbb\xbf"
        return Layout(True, 32, 0, 0, 0, 3 if bom else 0)
    names, rows = _open_rows(path, sep)  # the reader's own header checks and messages
    rows.close()
    iu, ii = _column(names, user_col, path, "user"), _column(names, item_col, path, "item")
    with open(path, "rb") as fh:
        header = fh.readline()
    delim = _delimiter(Path(path), header.decode("utf-8-sig"), sep)
    if ord(delim) > 127 or b"\r" in header.rstrip(b"\r\n"):
        raise NotStreamable(f"delimiter {delim!r}")
    return Layout(False, ord(delim), iu, ii, max(iu, ii) + 1, len(header))


def read_table(path, user_col="user_id", item_col="item_id", sep=None):
    """(users, items, user_ids, item_ids) of an interactions table, as
    :func:`read_interactions` reads it without --min-rating (duplicates not yet
    collapsed), in one numba scan of the whole file. Raises NotStreamable for anything that
    scan does not take (the caller then reads the file with the general reader)."""
    lay = scan_layout(path, "table", user_col, item_col, sep)
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
        raise NotStreamable(REASONS[status])
    uka, ukb, ika, ikb = ranges
    return (users[:rows], items[:rows],
            [str(raw[a:b], "utf-8") for a, b in zip(uka[:nu].tolist(), ukb[:nu].tolist())],
            [str(raw[a:b], "utf-8") for a, b in zip(ika[:ni].tolist(), ikb[:ni].tolist())])


def read_interactions(path, user_col="user_id", item_col="item_id", rating_col="rating",
                      min_rating=None, sep=None, fmt="table") -> Interactions:
    """Read an interactions table (or, ``fmt="sequences"``, a sequence file) into
    :class:`l3ae.io.interactions.Interactions`.

    min_rating : keep rows with rating >= min_rating (needs ``rating_col``); None keeps all.
    """
    if fmt == "sequences":
        if min_rating is not None:
            raise DataFormatError("sequence files carry no ratings; drop --min-rating", path=path)
        return read_sequences(path)
    if fmt != "table":
        raise DataFormatError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", path)
    if min_rating is None:  # the numba scan first; anything it does not take is read below
        try:
            users, items, user_ids, item_ids = read_table(path, user_col, item_col, sep)
        except NotStreamable:
            pass
        else:
            if len(users):
                return collapsed(users, items, user_ids, item_ids, path)
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
    return collapsed(np.asarray(us, np.int64), np.asarray(its, np.int64), list(umap),
                      list(imap), path)


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


def read_items(path, id_col=None, sep=None):
    """Read an item table: (ids: list[str], columns: dict[str, list[str]]).

    id_col : defaults to ``item_id`` when present, else the first column. Duplicate ids and
    empty ids are errors.
    """
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
