"""numba kernels of batch recommend's text I/O: scan interaction lines as bytes, look item ids
up in a hash table, format top-N lists as CSV/JSONL bytes.

The scan is an accelerator, never a second parser: anything it does not handle exactly as
:mod:`l3ae.io.readers` would (quotes, non-ASCII blanks, NUL, a lone CR, short rows, empty ids)
stops it with a status, and the caller hands the file to the general reader, which reads it or
reports the error with its own message.
Byte buffers are uint8; offsets and codes int64.
"""

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

OK, SHORT_ROW, EMPTY_ID, QUOTE, ODD_BYTE, NON_ASCII_BLANK, SEQ_TABLE, SEQ_NO_ITEMS = range(8)
_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


@njit(cache=True)
def fnv1a(buf, a, b):
    """64-bit FNV-1a hash of buf[a:b]."""
    h = _FNV_OFFSET
    for p in range(a, b):
        h = (h ^ np.uint64(buf[p])) * _FNV_PRIME
    return h


@njit(cache=True)
def hash_ranges(buf, a, b):
    """FNV-1a of buf[a[k]:b[k]] for every k: (len(a),) uint64."""
    out = np.empty(len(a), np.uint64)
    for k in range(len(a)):
        out[k] = fnv1a(buf, a[k], b[k])
    return out


@njit(cache=True)
def build_table(kbuf, koff):
    """Open-addressing table (linear probing) of the keys kbuf[koff[k]:koff[k+1]]: (size,) int64
    of key numbers or -1, size a power of two >= 2 × keys. Keys must be distinct."""
    nkeys = len(koff) - 1
    size = 2
    while size < 2 * nkeys:
        size *= 2
    table = np.full(size, -1, np.int64)
    mask = np.uint64(size - 1)
    for k in range(nkeys):
        slot = np.int64(fnv1a(kbuf, koff[k], koff[k + 1]) & mask)
        while table[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        table[slot] = k
    return table


@njit(cache=True, inline="always")
def _same(buf, a, b, kbuf, ka, kb):
    if b - a != kb - ka:
        return False
    for p in range(b - a):
        if buf[a + p] != kbuf[ka + p]:
            return False
    return True


@njit(cache=True)
def lookup(table, kbuf, koff, buf, a, b):
    """Key number of buf[a:b] in a :func:`build_table` table; unknown keys give
    -1 - (hash >> 2) (negative, distinct per key up to hash collisions: for counting them)."""
    h = fnv1a(buf, a, b)
    size = len(table)
    slot = np.int64(h & np.uint64(size - 1))
    while table[slot] >= 0:
        k = table[slot]
        if _same(buf, a, b, kbuf, koff[k], koff[k + 1]):
            return k
        slot = (slot + 1) & (size - 1)
    return -1 - np.int64(h >> np.uint64(2))


@njit(cache=True)
def _intern(table, ka, kb, data, a, b, n):
    """(key number of data[a:b], key count): a key already among data[ka[k]:kb[k]] (k < n) in
    the open-addressing ``table``, else added as key n."""
    mask = len(table) - 1
    slot = np.int64(fnv1a(data, a, b) & np.uint64(mask))
    while table[slot] >= 0:
        k = table[slot]
        if _same(data, a, b, data, ka[k], kb[k]):
            return k, n
        slot = (slot + 1) & mask
    table[slot] = n
    ka[n] = a
    kb[n] = b
    return n, n + 1


@njit(cache=True)
def _rehash(table, ka, kb, data, n):
    """The keys of ``table`` in one twice its size."""
    out = np.full(2 * len(table), -1, np.int64)
    mask = len(out) - 1
    for k in range(n):
        slot = np.int64(fnv1a(data, ka[k], kb[k]) & np.uint64(mask))
        while out[slot] >= 0:
            slot = (slot + 1) & mask
        out[slot] = k
    return out


@njit(cache=True)
def encode_table(data, delim, iu, ii, need, users, items, uka, ukb, ika, ikb):
    """Dictionary-encode the user and item fields of complete table lines (no header), each id
    numbered in order of first appearance: the scan of :func:`scan_lines`, for a build.

    Out: users/items (rows,) codes; uka/ukb (ika/ikb) the byte range of each user's (item's)
    first appearance. Every array holds at least one entry per line.
    Returns (rows, users, items, status, offset of the line with the status).
    """
    L = len(data)
    utab = np.full(1024, -1, np.int64)
    itab = np.full(1024, -1, np.int64)
    nu = 0
    ni = 0
    nrows = 0
    pa = 0
    pb = 0
    a = 0
    while a < L:
        e, st = _line(data, a, False, delim)
        if st != OK:
            return nrows, nu, ni, st, a
        if e > a and not (e == a + 1 and data[a] == 13):
            ua, ub, ia, ib, st = _table_fields(data, a, e, delim, iu, ii, need)
            if st != OK:
                return nrows, nu, ni, st, a
            if 2 * (nu + 1) > len(utab):
                utab = _rehash(utab, uka, ukb, data, nu)
            if 2 * (ni + 1) > len(itab):
                itab = _rehash(itab, ika, ikb, data, ni)
            if nrows and _same(data, ua, ub, data, pa, pb):  # rows grouped by user: no hash
                users[nrows] = users[nrows - 1]
            else:
                users[nrows], nu = _intern(utab, uka, ukb, data, ua, ub, nu)
            pa = ua
            pb = ub
            items[nrows], ni = _intern(itab, ika, ikb, data, ia, ib, ni)
            nrows += 1
        a = e + 1
    return nrows, nu, ni, OK, L


@njit(cache=True)
def first_pairs(users, items, n_items):
    """(rows,) bool: row r's (user, item) pair did not occur before it, for rows grouped by user
    (users non-decreasing): one pass instead of a sort."""
    stamp = np.full(n_items, -1, np.int64)
    keep = np.empty(len(users), np.bool_)
    for r in range(len(users)):
        i = items[r]
        keep[r] = stamp[i] != users[r]
        stamp[i] = users[r]
    return keep


@njit(cache=True, inline="always")
def _blank(c):
    """ASCII whitespace as str.strip()/str.split() see it: \\t \\n \\v \\f \\r \\x1c-\\x1f space."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True)
def _unicode_blank(data, p, end):
    """True when a non-ASCII whitespace character (U+0085, U+00A0, U+1680, U+2000-200A, U+2028,
    U+2029, U+202F, U+205F, U+3000) starts at data[p]."""
    c = data[p]
    c1 = data[p + 1] if p + 1 < end else 0
    c2 = data[p + 2] if p + 2 < end else 0
    if c == 0xC2:
        return c1 == 0x85 or c1 == 0xA0
    if c == 0xE1:
        return c1 == 0x9A and c2 == 0x80
    if c == 0xE2:
        return (c1 == 0x80 and (c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF)) or \
            (c1 == 0x81 and c2 == 0x9F)
    if c == 0xE3:
        return c1 == 0x80 and c2 == 0x80
    return False


@njit(cache=True)
def _line_status(data, a, e, seq, delim):
    """Bytes of line data[a:e] the scan cannot take: quotes (tables not tab-separated), NUL, a
    CR not at the end (tables), non-ASCII whitespace. OK or the status."""
    for p in range(a, e):
        c = data[p]
        if c == 0:
            return ODD_BYTE
        if c == 34 and not seq and delim != 9:
            return QUOTE
        if c == 13 and not seq and p != e - 1:
            return ODD_BYTE
        if c >= 0x80 and _unicode_blank(data, p, e):
            return NON_ASCII_BLANK
    return OK


@njit(cache=True, inline="always")
def _line(data, a, seq, delim):
    """(end, status) of the line starting at data[a]: the offset of its newline (or of the end
    of data) and :func:`_line_status`."""
    e = a
    while e < len(data) and data[e] != 10:
        e += 1
    return e, _line_status(data, a, e, seq, delim)


@njit(cache=True)
def scan_lines(data, seq, delim, iu, ii, need, table, kbuf, koff, codes, g_line, g_ua, g_ub,
               g_row):
    """Scan complete lines of an interactions file (no header) into rows and user groups.

    data : (L,) uint8, whole lines (the last may lack its newline). seq : sequence file (one
    user per line: ``user item item ...``, blank-separated) instead of a table with the user in
    field ``iu`` and the item in field ``ii`` of ``need`` or more ``delim``-separated fields.
    table/kbuf/koff : item lookup (:func:`lookup`); an empty table skips it (codes untouched).
    Out: codes (rows,) item numbers; per group (a run of rows of one user; every line of a
    sequence file is a group) g_line the offset of its first line, g_ua/g_ub its user id bytes,
    g_row its first row. Returns (rows, groups, status, offset of the line with the status).
    """
    L = len(data)
    nrows = 0
    ngroups = 0
    pa = -1
    pb = -1
    a = 0
    while a < L:
        e, st = _line(data, a, seq, delim)
        if st != OK:
            return nrows, ngroups, st, a
        if seq:
            nrows, ngroups, st = _seq_line(data, a, e, table, kbuf, koff, codes, g_line, g_ua,
                                           g_ub, g_row, nrows, ngroups)
            if st != OK:
                return nrows, ngroups, st, a
        elif e > a and not (e == a + 1 and data[a] == 13):
            ua, ub, ia, ib, st = _table_fields(data, a, e, delim, iu, ii, need)
            if st != OK:
                return nrows, ngroups, st, a
            if ngroups == 0 or not _same(data, ua, ub, data, pa, pb):
                g_line[ngroups] = a
                g_ua[ngroups] = ua
                g_ub[ngroups] = ub
                g_row[ngroups] = nrows
                ngroups += 1
                pa = ua
                pb = ub
            if len(table):
                codes[nrows] = lookup(table, kbuf, koff, data, ia, ib)
            nrows += 1
        a = e + 1
    return nrows, ngroups, OK, L


@njit(cache=True)
def _table_fields(data, a, e, delim, iu, ii, need):
    """Stripped byte ranges of fields iu and ii of the table line data[a:e]."""
    if data[e - 1] == 13:
        e -= 1
    f = 0
    s = a
    ua = ub = ia = ib = a
    for p in range(a, e + 1):
        if p == e or data[p] == delim:
            if f == iu:
                ua, ub = s, p
            if f == ii:
                ia, ib = s, p
            f += 1
            s = p + 1
    if f < need:
        return ua, ub, ia, ib, SHORT_ROW
    ua, ub = _strip(data, ua, ub)
    ia, ib = _strip(data, ia, ib)
    if ua == ub or ia == ib:
        return ua, ub, ia, ib, EMPTY_ID
    return ua, ub, ia, ib, OK


@njit(cache=True, inline="always")
def _strip(data, a, b):
    """data[a:b] without blanks at either end, as (a, b)."""
    while a < b and _blank(data[a]):
        a += 1
    while b > a and _blank(data[b - 1]):
        b -= 1
    return a, b


@njit(cache=True)
def _seq_line(data, a, e, table, kbuf, koff, codes, g_line, g_ua, g_ub, g_row, nrows,
              ngroups):
    """One line ``user item item ...`` of a sequence file: a group and its rows."""
    p = a
    tok = 0
    while True:
        while p < e and _blank(data[p]):
            p += 1
        if p >= e:
            break
        s = p
        while p < e and not _blank(data[p]):
            p += 1
        if tok == 0:
            for q in range(s, p):
                if data[q] == 44 or data[q] == 59:  # ',' ';': a table read as sequences
                    return nrows, ngroups, SEQ_TABLE
            g_line[ngroups] = a
            g_ua[ngroups] = s
            g_ub[ngroups] = p
            g_row[ngroups] = nrows
        else:
            if len(table):
                codes[nrows] = lookup(table, kbuf, koff, data, s, p)
            nrows += 1
        tok += 1
    if tok == 1:
        return nrows, ngroups, SEQ_NO_ITEMS
    return nrows, ngroups + (tok > 0), OK


@njit(cache=True, inline="always")
def _put(buf, p, src, a, b):
    for q in range(a, b):
        buf[p] = src[q]
        p += 1
    return p


def _const(text):
    return np.frombuffer(text.encode("ascii"), np.uint8)


# literal bytes, as module constants (numba freezes global arrays into the compiled code)
_NAN, _INF, _ZERO_POINT = _const("nan"), _const("inf"), _const("0.")
_J_USER, _J_ITEMS, _J_SEP = _const('{"user_id": '), _const(', "items": ['), _const(", ")
_J_SCORES, _J_TRUE = _const('], "scores": ['), _const('], "fallback": true}\n')
_J_FALSE, _C_TRUE, _C_FALSE = _const('], "fallback": false}\n'), _const(",1\n"), _const(",0\n")


@njit(cache=True, inline="always")
def _put_text(buf, p, text):
    return _put(buf, p, text, 0, len(text))


@njit(cache=True)
def _put_int(buf, p, v):
    """Decimal digits of the int v >= 0, written right to left (division by a constant only)."""
    nd = 1
    t = v
    while t >= 10:
        t //= 10
        nd += 1
    q = p + nd
    for _ in range(nd):
        q -= 1
        buf[q] = 48 + v % 10
        v //= 10
    return p + nd


# 1e-330 … 1e310 (inf): for the exponent estimate only
_P10 = np.array([float(f"1e{k}") for k in range(-330, 311)])


@njit(cache=True)
def put_g6(buf, p, v):
    """Write float v like Python's ``"%.6g" % v`` (6 significant digits, shortest form) into
    buf at p; returns the new end. Rounding is half-even on the float64 value scaled by a power of
    ten, exact wherever the scaled value is (scores in everyday ranges); tested against Python."""
    x = np.float64(v)
    if x != x:
        return _put_text(buf, p, _NAN)
    if x < 0 or (x == 0 and np.signbit(x)):
        buf[p] = 45
        p += 1
        x = -x
    if x == np.inf:
        return _put_text(buf, p, _INF)
    if x == 0:
        buf[p] = 48
        return p + 1
    e = int(np.floor((math.frexp(x)[1] - 1) * 0.30102999566398120))  # log10(x) or one less
    if x >= _P10[e + 331]:
        e += 1
    m = _digits6(x, e)
    if m >= 1000000:  # log10 was low, or rounding carried into a seventh digit
        e += 1
        m = _digits6(x, e)
    elif m < 100000:
        e -= 1
        m = _digits6(x, e)
    nd = 6  # significant digits left once trailing zeros go
    while nd > 1 and m % 10 == 0:
        m //= 10
        nd -= 1
    if e < -4 or e >= 6:  # d.ddddde±XX
        p = _put_digits(buf, p, m, nd, 1)
        buf[p] = 101
        buf[p + 1] = 45 if e < 0 else 43
        p += 2
        if abs(e) < 10:
            buf[p] = 48
            p += 1
        return _put_int(buf, p, abs(e))
    if e < 0:  # 0.000ddd
        p = _put_text(buf, p, _ZERO_POINT)
        for _ in range(-e - 1):
            buf[p] = 48
            p += 1
        return _put_int(buf, p, m)
    if nd <= e + 1:  # an integer: the digits, then zeros
        p = _put_int(buf, p, m)
        for _ in range(e + 1 - nd):
            buf[p] = 48
            p += 1
        return p
    return _put_digits(buf, p, m, nd, e + 1)


@njit(cache=True)
def _put_digits(buf, p, m, nd, point):
    """The nd digits of m with a decimal point after the first ``point`` (none if point >= nd)."""
    if point >= nd:
        return _put_int(buf, p, m)
    for k in range(nd - 1, -1, -1):
        buf[p + k + (k >= point)] = 48 + m % 10
        m //= 10
    buf[p + point] = 46
    return p + nd + 1


_POW10 = 10.0 ** np.arange(23)  # exact in float64


@njit(cache=True)
def _digits6(x, e):
    """round(x / 10**(e-5)) half-even: the 6 significant digits of x when 10**e <= x."""
    k = 5 - e
    while k > 22:  # 10**k is exact in float64 up to 1e22: scale in steps
        x *= 1e22
        k -= 22
    while k < -22:
        x /= 1e22
        k += 22
    return np.int64(np.rint(x * _POW10[k] if k >= 0 else x / _POW10[-k]))


@njit(cache=True)
def format_lists(items, scores, fallback, ubuf, uoff, kbuf, koff, jsonl, buf):
    """Top-N lists as CSV rows ``user,item,rank,score,fallback`` or JSONL objects into buf.

    items (m, N) int64 (-1: no more), scores (m, N) float32, fallback (m,) bool; user u's field
    is ubuf[uoff[u]:uoff[u+1]], item k's kbuf[koff[k]:koff[k+1]], both already quoted for the
    format. buf must hold the result (see :func:`bound`). Returns the bytes used.
    """
    m, N = items.shape
    p = 0
    for u in range(m):
        fb = fallback[u]
        if jsonl:
            p = _put_text(buf, p, _J_USER)
            p = _put(buf, p, ubuf, uoff[u], uoff[u + 1])
            p = _put_text(buf, p, _J_ITEMS)
            for r in range(N):
                k = items[u, r]
                if k < 0:
                    break
                if r:
                    p = _put_text(buf, p, _J_SEP)
                p = _put(buf, p, kbuf, koff[k], koff[k + 1])
            p = _put_text(buf, p, _J_SCORES)
            for r in range(N):
                if items[u, r] < 0:
                    break
                if r:
                    p = _put_text(buf, p, _J_SEP)
                p = put_g6(buf, p, scores[u, r])
            p = _put_text(buf, p, _J_TRUE if fb else _J_FALSE)
            continue
        for r in range(N):
            k = items[u, r]
            if k < 0:
                break
            p = _put(buf, p, ubuf, uoff[u], uoff[u + 1])
            buf[p] = 44
            p = _put(buf, p + 1, kbuf, koff[k], koff[k + 1])
            buf[p] = 44
            p = _put_int(buf, p + 1, r + 1)
            buf[p] = 44
            p = put_g6(buf, p + 1, scores[u, r])
            p = _put_text(buf, p, _C_TRUE if fb else _C_FALSE)
    return p


def bound(m, N, user_bytes, item_max):
    """Upper bound of :func:`format_lists`' output for m users with user_bytes of user fields
    in all and item fields of at most item_max bytes (a score takes at most 13 bytes)."""
    return N * user_bytes + m * N * (item_max + 32) + m * 64


@dataclass(frozen=True)
class IdTable:
    """Ids as concatenated UTF-8 bytes and a hash table (:func:`build_table`): the numba side
    of a str -> int dict, for :func:`lookup` and :func:`scan_lines`."""

    buf: np.ndarray  # (bytes,) uint8
    off: np.ndarray  # (k + 1,) int64
    table: np.ndarray  # (size,) int64

    @classmethod
    def of(cls, ids):
        buf, off = encode_fields([i.encode("utf-8") for i in ids])
        return cls(buf, off, build_table(buf, off))


def encode_fields(fields):
    """(uint8 buffer, int64 offsets) of a list of bytes."""
    off = np.zeros(len(fields) + 1, np.int64)
    np.cumsum([len(f) for f in fields], out=off[1:])
    return np.frombuffer(b"".join(fields), np.uint8), off
