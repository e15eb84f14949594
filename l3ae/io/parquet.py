"""Parquet tables: interactions and items in, vectors in, top-N lists out (pyarrow, optional).

pyarrow is the optional extra ``parquet`` (``pip install "l3ae[parquet]"``) and is imported only
when a Parquet file is met: :func:`arrow` raises a ConfigError (exit 2) with the install line
when it is missing. Files are read with ``ParquetFile.iter_batches(columns=[...])``: only the
columns needed, batch by batch, so the batch readers (:class:`ParquetChunks`) keep memory flat
in the number of rows.

Columns and flags mean what they mean for CSV (:mod:`l3ae.io.delimited`): ``--user-col``,
``--item-col``, ``--rating-col``, ``--min-rating``; ids are strings (integer columns are read as
their decimal text, surrounding blanks are dropped, ids are numbered in order of first
appearance), so a Parquet file and a CSV file of the same rows give the same Interactions.
Errors name the file and the row (from 0, as pandas and pyarrow count them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import _fastio
from l3ae.io.interactions import NotStreamable, collapsed, id_column, take_chunk
from l3ae.io.vectorsets import checked, to_float32

INSTALL = 'pip install "l3ae[parquet]"'
MAGIC = b"PAR1"
SUFFIXES = (".parquet", ".pq")
BATCH = 1 << 18  # rows per batch: about a chunk of users (8192 × ~16), large for Arrow


def arrow(path=None):
    """(pyarrow, pyarrow.compute, pyarrow.parquet), or a ConfigError with the install line."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}Parquet needs pyarrow, an optional extra: {INSTALL}") from None
    return pa, pc, pq


def is_parquet(path) -> bool:
    """A ``.parquet``/``.pq`` name, or a file that starts with Parquet's magic bytes."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def open_file(path):
    """A pyarrow ParquetFile, or DataFormatError naming the file."""
    _, _, pq = arrow(path)
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("no such file", path=path)
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DataFormatError(f"not a Parquet file ({exc})", path=path) from None


def column(pf, name, path, what, flag=None):
    """Check that the file has column ``name``; the error lists the columns and the flag."""
    names = pf.schema_arrow.names
    if name not in names:
        hint = f" (choose with --{flag or what + '-col'})"
        raise DataFormatError(f"no {what} column {name!r}; columns are {', '.join(names)}{hint}",
                              path=path)
    return name


def _first(mask):
    """Index of the first True of a pyarrow boolean array (nulls count as False), or None."""
    k = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(k[0]) if k.size else None


def ids_of(arr, path, what, name, row0=0):
    """A pyarrow string array of ids from a column chunk: strings (or UTF-8 bytes, or integers
    as decimal text) without surrounding blanks. Empty or null ids, NUL bytes, bytes that are
    not UTF-8 and other types are refused, naming the row (row0 + position)."""
    pa, pc, _ = arrow(path)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_integer(t):
        arr = pc.cast(arr, pa.string())
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            arr = pc.cast(arr, pa.large_string() if pa.types.is_large_binary(t) else pa.string())
        except pa.ArrowInvalid:
            for k, v in enumerate(arr.to_pylist()):
                try:
                    v is None or v.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataFormatError(f"row {row0 + k} (from 0): {what} id {v!r} is not "
                                          f"UTF-8 ({exc.reason})", path=path) from None
            raise
    elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise DataFormatError(f"{what} column {name!r} holds {t}: expected strings or integers",
                              path=path)
    arr = pc.utf8_trim_whitespace(arr)
    k = _first(pc.or_kleene(pc.is_null(arr), pc.equal(pc.utf8_length(arr), 0)))
    if k is not None:
        raise DataFormatError(f"row {row0 + k} (from 0): empty {what} id", path=path)
    k = _first(pc.match_substring(arr, "\x00"))
    if k is not None:
        raise DataFormatError(f"row {row0 + k} (from 0): {what} id {arr[k].as_py()!r} holds a "
                              "NUL byte", path=path)
    return arr


def _ratings(arr, path, name, row0):
    """(n,) float64 ratings of a column chunk; null or non-numbers are refused by row."""
    pa, pc, _ = arrow(path)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    k = _first(pc.is_null(arr))
    if k is not None:
        raise DataFormatError(f"row {row0 + k} (from 0): rating is empty (null)", path=path)
    try:
        return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for k, v in enumerate(arr.to_pylist()):
            try:
                float(v)
            except (TypeError, ValueError):
                raise DataFormatError(f"row {row0 + k} (from 0): rating {v!r} is not a number",
                                      path=path) from None
        raise DataFormatError(f"rating column {name!r} holds {arr.type}: expected numbers",
                              path=path) from None


def read_interactions(path, user_col="user_id", item_col="item_id", rating_col="rating",
                      min_rating=None):
    """:class:`l3ae.io.interactions.Interactions` of a Parquet table, as the CSV reader gives
    them: rows with rating < min_rating (or NaN) dropped first, ids numbered by first appearance
    among the rows kept, repeated (user, item) pairs collapsed to the first."""
    pa, pc, _ = arrow(path)
    pf = open_file(path)
    cols = [column(pf, user_col, path, "user"), column(pf, item_col, path, "item")]
    if min_rating is not None:
        cols.append(column(pf, rating_col, path, "rating"))
    us, its, row0 = [], [], 0
    for batch in pf.iter_batches(batch_size=BATCH, columns=cols, use_threads=False):
        u = ids_of(batch.column(0), path, "user", user_col, row0)
        i = ids_of(batch.column(1), path, "item", item_col, row0)
        if min_rating is not None:
            r = _ratings(batch.column(2), path, rating_col, row0)
            keep = pa.array(r >= min_rating)  # NaN compares False: dropped, as in the CSV path
            u, i = u.filter(keep), i.filter(keep)
        us.append(pc.cast(u, pa.large_string()))
        its.append(pc.cast(i, pa.large_string()))
        row0 += batch.num_rows
    n_rows = sum(len(u) for u in us)
    if not n_rows:
        raise DataFormatError("no interactions" + ("" if min_rating is None else
                              f" with rating >= {min_rating}"), path=path)
    users, user_ids = _codes(pa.chunked_array(us, pa.large_string()), pc)
    items, item_ids = _codes(pa.chunked_array(its, pa.large_string()), pc)
    return collapsed(users, items, user_ids, item_ids, path)


def _codes(chunked, pc):
    """(codes (n,) int64, ids in order of first appearance) of a chunked string array."""
    enc = pc.dictionary_encode(chunked)
    if enc.num_chunks == 0:
        return np.empty(0, np.int64), []
    ids = enc.chunk(0).dictionary.to_pylist()  # one dictionary for every chunk
    codes = np.concatenate([np.asarray(c.indices.to_numpy(zero_copy_only=False), np.int64)
                            for c in enc.chunks])
    return codes, ids


def read_items(path, id_col=None):
    """(ids: list[str], columns: dict[str, list]) of a Parquet item table, as
    :func:`l3ae.io.delimited.read_items`: id column item_id if present, else the first; empty
    or repeated ids refused by row. Values other than ids stay Python values (None for null)."""
    pf = open_file(path)
    names = pf.schema_arrow.names
    if not names:
        raise DataFormatError("no columns", path=path)
    id_col = id_column(names, id_col)
    column(pf, id_col, path, "item", flag="id-col")
    ids, cols, seen, row0 = [], {n: [] for n in names}, {}, 0
    for batch in pf.iter_batches(batch_size=BATCH, use_threads=False):
        got = ids_of(batch.column(names.index(id_col)), path, "item", id_col, row0).to_pylist()
        for k, iid in enumerate(got):
            if iid in seen:
                raise DataFormatError(f"row {row0 + k} (from 0): duplicate item id {iid!r} "
                                      f"(first at row {seen[iid]})", path=path)
            seen[iid] = row0 + k
        ids += got
        for n in names:
            cols[n] += got if n == id_col else batch.column(names.index(n)).to_pylist()
        row0 += batch.num_rows
    if not ids:
        raise DataFormatError("no items", path=path)
    return ids, cols


def read_vectors(path, id_col=None, col=None, batch=4096):
    """(ids: list[str], E (n, d) float32, meta) of a Parquet file with an id column
    (``item_id``) and a list or fixed-size-list float column (``embedding``), checked as every
    layout is (:func:`l3ae.io.vectorsets.checked`).

    Read ``batch`` rows at a time (wide vectors: 64 MB at d = 4096) and cast to float32 on the
    way; ``meta["overflow"]`` holds the float64 values beyond float32's range, by row. Null
    vectors, null values inside one, rows of another length than row 0 (ragged) and a width of
    0 are refused, naming the row and its id. ``meta["where"]`` names the column in messages.
    """
    pa, pc, _ = arrow(path)
    pf = open_file(path)
    id_col, col = id_col or "item_id", col or "embedding"
    column(pf, id_col, path, "id", flag="embedding-id-col")
    column(pf, col, path, "vector", flag="embedding-col")
    t = pf.schema_arrow.field(col).type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise DataFormatError(f"column {col!r} holds {t}: expected a list of floats per row",
                              path=path)
    vt = t.value_type
    if not pa.types.is_floating(vt):
        raise DataFormatError(f"column {col!r} holds lists of {vt}: expected float16, float32 "
                              "or float64", path=path)
    n = pf.metadata.num_rows
    dtype = np.dtype(vt.to_pandas_dtype())
    ids, E, row0, d, overflow = [], None, 0, None, {}
    for b in pf.iter_batches(batch_size=batch, columns=[id_col, col], use_threads=False):
        bid = ids_of(b.column(0), path, "item", id_col, row0).to_pylist()
        lists = b.column(1)
        if len(bid) == 0:
            continue
        k = _first(pc.is_null(lists))
        if k is not None:
            raise DataFormatError(f"row {row0 + k} (from 0), id {bid[k]!r}: no vector (null)",
                                  path=path)
        lens = np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False), np.int64)
        if d is None:
            d = int(lens[0])
            if d == 0:
                raise DataFormatError(f"row {row0} (from 0), id {bid[0]!r}: an empty vector "
                                      f"(width 0) in column {col!r}", path=path)
            E = np.empty((n, d), np.float32)
        k = np.flatnonzero(lens != d)
        if k.size:
            k = int(k[0])
            raise DataFormatError(f"row {row0 + k} (from 0), id {bid[k]!r}: {lens[k]} values, "
                                  f"but row 0 has {d} (ragged vectors in column {col!r})",
                                  path=path)
        values = lists.flatten()  # the values of these rows only, whatever the list offsets
        k = _first(pc.is_null(values))
        if k is not None:
            raise DataFormatError(f"row {row0 + k // d} (from 0), id {bid[k // d]!r}: value "
                                  f"{k % d} is null", path=path)
        block, over = to_float32(np.asarray(values.to_numpy(zero_copy_only=False),
                                            dtype).reshape(-1, d))
        E[row0:row0 + len(bid)] = block
        overflow.update({row0 + r: v for r, v in over.items()})
        ids += bid
        row0 += len(bid)
    if E is None:
        E = np.zeros((0, 0), np.float32)
    return checked(path, ids, E[:row0], "parquet", f"column {col!r}", overflow)


class ParquetChunks:
    """Chunks of users of a Parquet interactions file, as
    :class:`l3ae.io.delimited.stream_chunks` gives them for CSV: iterate for (user_ids, X (k, n) binary CSR over ``item_ids``, unknown
    (r,) int64 < 0: one code per interaction on an item not in ``item_ids``, equal codes for the
    same item). ``total`` is the number of users, ``known_any`` whether any interaction is on an
    item of ``item_ids``.

    Two passes, as for CSV: a survey of the user column (the user count, and that each user's
    rows are contiguous: 8 bytes per user) and of the item column until a known item turns up;
    then batches of both columns. Memory: one batch and one chunk of users. Raises
    :class:`l3ae.io.interactions.NotStreamable` when a user's rows are not contiguous (the caller
    reads the file whole) and DataFormatError for bad ids.
    """

    def __init__(self, path, item_ids, user_col="user_id", item_col="item_id", chunk=8192,
                 recency=1.0, batch=BATCH):
        pa, pc, _ = arrow(path)
        self.path, self.chunk, self.batch, self.recency = path, chunk, batch, recency
        pf = open_file(path)
        self.cols = [column(pf, user_col, path, "user"), column(pf, item_col, path, "item")]
        self.n = len(item_ids)
        self.catalog = pa.array([str(i) for i in item_ids], pa.string())
        hashes, last, row0 = [], None, 0
        for b in pf.iter_batches(batch_size=batch, columns=[user_col], use_threads=False):
            u = ids_of(b.column(0), path, "user", user_col, row0)
            starts = _run_starts(u, last, pc)
            if len(u):
                hashes.append(_hash(u.take(pa.array(starts, pa.int64())), pa, pc))
                last = u[len(u) - 1].as_py()
            row0 += b.num_rows
        hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        if hashes.size == 0:
            raise NotStreamable("no interactions")
        if np.unique(hashes).size < hashes.size:
            raise NotStreamable("the rows of a user are not contiguous")
        self.total = int(hashes.size)
        self.known_any, row0 = False, 0
        for b in pf.iter_batches(batch_size=batch, columns=[item_col], use_threads=False):
            i = ids_of(b.column(0), path, "item", item_col, row0)
            if pc.any(pc.is_in(i, value_set=self.catalog)).as_py():
                self.known_any = True
                break
            row0 += b.num_rows

    def __iter__(self):
        pa, pc, _ = arrow(self.path)
        pf = open_file(self.path)
        uids, lens, codes, last, row0 = [], [], [], None, 0
        for b in pf.iter_batches(batch_size=self.batch, columns=self.cols, use_threads=False):
            u = ids_of(b.column(0), self.path, "user", self.cols[0], row0)
            i = ids_of(b.column(1), self.path, "item", self.cols[1], row0)
            row0 += b.num_rows
            if not len(u):
                continue
            starts = _run_starts(u, last, pc)
            last = u[len(u) - 1].as_py()
            seg = np.diff(np.r_[0, starts, len(u)])  # seg[0]: rows that go on the last user
            if seg[0]:  # lens[-1] is never empty: the last user is never cut off
                lens[-1] = lens[-1].copy()
                lens[-1][-1] += seg[0]
            if len(starts):
                uids += u.take(pa.array(starts, pa.int64())).to_pylist()
                lens.append(seg[1:])
            codes.append(self._codes(i, pa, pc))
            pending = sum(len(x) for x in lens)
            # the last user may go on in the next batch: never cut it off
            while pending - 1 >= self.chunk:
                yield take_chunk(uids, lens, codes, self.chunk, self.n, self.recency)
                pending -= self.chunk
        while uids:
            yield take_chunk(uids, lens, codes, min(self.chunk, len(uids)), self.n,
                             self.recency)

    def _codes(self, items, pa, pc):
        """(r,) int64 catalog numbers of item ids; unknown ones < 0, equal for equal ids."""
        idx = pc.index_in(items, value_set=self.catalog)
        codes = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), np.int64)
        unknown = np.flatnonzero(codes < 0)
        if unknown.size:
            h = _hash(items.take(pa.array(unknown, pa.int64())), pa, pc)
            codes[unknown] = -1 - (h >> np.uint64(2)).astype(np.int64)
        return codes


def _run_starts(u, last, pc):
    """(r,) int64 positions where a new user starts in the string array u; position 0 only if
    its user differs from ``last`` (the previous batch's last user)."""
    n = len(u)
    if n == 0:
        return np.empty(0, np.int64)
    change = pc.not_equal(u.slice(1), u.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, change]).astype(np.int64)
    if last is not None and u[0].as_py() == last:
        starts = starts[1:]
    return starts


def _hash(strings, pa, pc):
    """(len,) uint64 FNV-1a of each string's UTF-8 bytes (the hash the CSV scanner uses)."""
    s = pc.cast(strings, pa.large_string())
    if not isinstance(s, pa.Array):
        s = s.combine_chunks()
    _, offsets, data = s.buffers()
    off = np.frombuffer(offsets, np.int64)[s.offset:s.offset + len(s) + 1]
    buf = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    return _fastio.hash_ranges(buf, off[:-1], off[1:])


class ParquetListWriter:
    """Top-N lists to Parquet, one row per recommendation as the CSV layout: user_id (string),
    item_id (string), rank (int32, from 1), score (float32), fallback (bool); one row group
    per chunk of users. ``close()`` writes the footer."""

    def __init__(self, fh, item_ids):
        pa, _, pq = arrow()
        if getattr(fh, "isatty", lambda: False)():
            raise ConfigError("Parquet output is binary: give --out FILE.parquet")
        self.pa = pa
        self.catalog = pa.array([str(i) for i in item_ids], pa.string())
        self.schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                                 ("rank", pa.int32()), ("score", pa.float32()),
                                 ("fallback", pa.bool_())])
        self.writer = pq.ParquetWriter(fh, self.schema)

    def write(self, user_ids, items, scores, fallback):
        """Lists of k users: items (k, N) int64 best first (-1: no more), scores (k, N)
        float32, fallback (k,) bool."""
        pa = self.pa
        valid = np.asarray(items) >= 0
        u, r = np.nonzero(valid)
        table = pa.table({
            "user_id": pa.array(list(user_ids), pa.string()).take(pa.array(u, pa.int64())),
            "item_id": self.catalog.take(pa.array(np.asarray(items)[valid], pa.int64())),
            "rank": pa.array((r + 1).astype(np.int32)),
            "score": pa.array(np.asarray(scores, np.float32)[valid]),
            "fallback": pa.array(np.asarray(fallback, bool)[u]),
        }, schema=self.schema)
        self.writer.write_table(table)

    def close(self):
        self.writer.close()
