"""Property-based: the readers either return consistent data or raise DataFormatError naming the
file (and a line that exists); well-formed tables and sequence files round-trip exactly."""

import csv
import io
import string

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l3ae.errors import DataFormatError
from l3ae.io.readers import read_interactions, read_items

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
READERS = {
    "table": read_interactions,
    "items": read_items,
    "sequences": lambda p: read_interactions(p, fmt="sequences"),
}


def check_outcome(p, data, reader):
    """Either a DataFormatError naming ``p`` and a line of the file, or consistent codes."""
    try:
        out = READERS[reader](p)
    except DataFormatError as exc:
        assert str(exc).startswith(f"{p}:"), str(exc)
        if exc.line is not None:
            assert 1 <= exc.line <= len(data.splitlines()) + 1, (exc.line, str(exc))
        return
    if reader == "items":
        ids, cols = out
        assert ids and len(set(ids)) == len(ids) and all(len(c) == len(ids) for c in cols.values())
        return
    assert len(out.users) == len(out.items) > 0
    assert 0 <= out.users.min() and out.users.max() < len(out.user_ids)
    assert 0 <= out.items.min() and out.items.max() < len(out.item_ids)
    assert all(i and "\x00" not in i for i in out.user_ids + out.item_ids)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_never_crash(tmp_path, data):
    p = tmp_path / "r.csv"
    p.write_bytes(data)
    for reader in READERS:
        check_outcome(p, data, reader)


# bytes that matter to the parsers: delimiters, quotes, line ends, NUL, non-UTF-8, blanks
TRICKY = st.lists(st.sampled_from([b"a", b"b", b"1", b",", b"\t", b";", b"|", b'"', b"\n",
                                   b"\r", b" ", b"\x00", b"\xff", b"\xc3\xa9", b"\xe9"]),
                  max_size=80).map(b"".join)


@SETTINGS
@given(header=st.sampled_from([b"user_id,item_id\n", b"user_id\titem_id\n",
                               b"\xef\xbb\xbfuser_id,item_id,rating\n", b""]), body=TRICKY)
def test_random_rows_after_a_header_never_crash(tmp_path, header, body):
    data = header + body
    p = tmp_path / "r.csv"
    p.write_bytes(data)
    for reader in READERS:
        check_outcome(p, data, reader)


# ids as users write them: letters, digits, blanks inside, punctuation, quotes, non-ASCII
ID_CHARS = string.ascii_letters + string.digits + " ,;|\"'-_:.é東"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=5).map(str.strip).filter(bool)
DELIMS = {",": "r.csv", "\t": "r.tsv", ";": "r.txt", "|": "r.txt"}


@SETTINGS
@given(rows=st.lists(st.tuples(ids, ids, st.integers(1, 5)), min_size=1, max_size=40),
       delim=st.sampled_from(sorted(DELIMS)), extra=st.booleans(), crlf=st.booleans(),
       bom=st.booleans(), min_rating=st.sampled_from([None, 3]))
def test_well_formed_tables_round_trip(tmp_path, rows, delim, extra, crlf, bom, min_rating):
    """Any delimiter, quoting, an extra column first, CRLF, a BOM, a rating threshold: the
    distinct (user, item) pairs come back, ids in order of first appearance."""
    if delim == "\t":  # a tab file has no quoting: ids may not hold tabs (they do not here)
        rows = [(u.replace('"', ""), i.replace('"', ""), r) for u, i, r in rows]
        rows = [(u, i, r) for u, i, r in rows if u.strip() and i.strip()]
        rows = [(u.strip(), i.strip(), r) for u, i, r in rows]
        if not rows:
            return
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n" if crlf else "\n",
                   quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL,
                   escapechar=None)
    w.writerow((["ts"] if extra else []) + ["user_id", "item_id", "rating"])
    for k, (u, i, r) in enumerate(rows):
        w.writerow(([str(k)] if extra else []) + [u, i, r])
    p = tmp_path / DELIMS[delim]
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    kept = [(u, i) for u, i, r in rows if min_rating is None or r >= min_rating]
    if not kept:
        try:
            read_interactions(p, min_rating=min_rating)
        except DataFormatError as exc:
            assert str(exc) == f"{p}: no interactions with rating >= {min_rating}"
            return
        raise AssertionError("no interaction passes the threshold, yet no error")
    it = read_interactions(p, min_rating=min_rating)
    pairs = [(it.user_ids[u], it.item_ids[i]) for u, i in zip(it.users, it.items)]
    assert pairs == list(dict.fromkeys(kept))  # distinct, in file order
    assert it.user_ids == list(dict.fromkeys(u for u, _ in kept))
    assert it.item_ids == list(dict.fromkeys(i for _, i in kept))
    X = it.matrix()
    assert X.nnz == len(pairs) and np.all(X.data == 1)


seq_ids = st.text(alphabet=string.ascii_letters + string.digits + "_-:.é東", min_size=1,
                  max_size=4)


@SETTINGS
@given(seqs=st.dictionaries(seq_ids, st.lists(seq_ids, min_size=1, max_size=8), min_size=1,
                            max_size=15),
       gaps=st.lists(st.sampled_from([" ", "  ", "\t", " \t "]), min_size=1, max_size=4),
       blank_lines=st.booleans(), crlf=st.booleans())
def test_well_formed_sequence_files_round_trip(tmp_path, seqs, gaps, blank_lines, crlf):
    """'user item item …' lines, any blanks between fields: every event back, in order."""
    end = "\r\n" if crlf else "\n"
    lines = []
    for k, (user, items) in enumerate(seqs.items()):
        lines.append(gaps[k % len(gaps)].join([user, *items]) + end)
        if blank_lines:
            lines.append(end)
    p = tmp_path / "s.txt"
    p.write_text("".join(lines), encoding="utf-8", newline="")
    it = read_interactions(p, fmt="sequences")
    assert it.ordered and it.user_ids == list(seqs)
    got = {u: [] for u in it.user_ids}
    for u, i in zip(it.users, it.items):
        got[it.user_ids[u]].append(it.item_ids[i])
    assert got == seqs  # repeats kept, order kept
    flat = [i for items in seqs.values() for i in items]
    assert it.item_ids == list(dict.fromkeys(flat))


@SETTINGS
@given(table=st.dictionaries(ids, st.tuples(ids, st.text(ID_CHARS + "\n", max_size=6)),
                             min_size=1, max_size=20))
def test_well_formed_item_tables_round_trip(tmp_path, table):
    """Quoted titles and descriptions with delimiters, quotes and line breaks come back as is."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["item_id", "title", "description"])
    for iid, (title, desc) in table.items():
        w.writerow([iid, title, desc])
    p = tmp_path / "items.csv"
    p.write_text(buf.getvalue(), encoding="utf-8", newline="")
    got_ids, cols = read_items(p)
    assert got_ids == list(table)
    assert cols["title"] == [t for t, _ in table.values()]
    assert cols["description"] == [d for _, d in table.values()]


def general_reader(p):
    """read_interactions with its numba scan turned off: the csv module reads every file."""
    import pytest

    from l3ae.io import delimited

    def refuse(*a, **k):
        raise delimited.NotStreamable("off")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(delimited, "read_table", refuse)
        return read_interactions(p)


def outcome(read, p):
    try:
        out = read(p)
    except DataFormatError as exc:
        return str(exc)
    return (out.users.tolist(), out.items.tolist(), out.user_ids, out.item_ids)


# ids as the scan must take them or hand over: spaces around, non-ASCII letters and blanks
IDS = st.sampled_from([b"a", b"b", b" a", b"a ", b"1", b"\xc3\xa9", b"\xe6\x97\xa5", b"x\xc2\xa0",
                       b"a b", b""])


@SETTINGS
@given(header=st.sampled_from([b"user_id,item_id\n", b"user_id\titem_id\n",
                               b"\xef\xbb\xbfuser_id,item_id,rating\n", b"item_id;user_id\n"]),
       body=TRICKY, rows=st.lists(st.tuples(IDS, IDS), max_size=12),
       ends=st.sampled_from([b"\n", b"\r\n"]))
def test_the_numba_scan_reads_as_the_csv_module_does(tmp_path, header, body, rows, ends):
    """Whatever the bytes, the fast path gives the general reader's result or its error."""
    delim = b"\t" if b"\t" in header else b";" if b";" in header else b","
    table = ends.join(u + delim + i + (b",5" if b"rating" in header else b"")
                      for u, i in rows)
    for data in (header + table, header + table + ends + body):
        p = tmp_path / "r.csv"
        p.write_bytes(data)
        assert outcome(read_interactions, p) == outcome(general_reader, p)
