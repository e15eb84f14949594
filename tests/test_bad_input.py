"""Bad input through the command line: exit code 2, one line on stderr naming the file, the line
(where there is one) and the offending value, and nothing written (issue 6, part 3).

One table of cases. Each writes its bad file(s) next to a good ratings file, embeddings file and
model, runs one command with CliRunner, and checks the exit code, that stderr is exactly one
line equal to the expected one, and that the folder is byte-for-byte what it was before.
"""

import csv
import re
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from l3ae import __version__
from l3ae.cli import cli
from l3ae.io.embeddings import text_hash, write_embeddings
from l3ae.io.model_file import VERSION as MODEL_VERSION
from l3ae.model import Recommender

N_USERS, N_ITEMS, DIM = 40, 12, 4
IDS = [f"i{k}" for k in range(N_ITEMS)]


def ratings_text():
    """user_id,item_id rows: u0 has every item in order (so items are numbered i0, i1, ... by
    first use); every other user has i0 plus 3 items drawn with a skew, so popularity varies."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, N_ITEMS)
    rows = ["user_id,item_id"] + [f"u0,{i}" for i in IDS]
    for u in range(1, N_USERS):
        rows.append(f"u{u},i0")
        rows += [f"u{u},i{k}" for k in rng.choice(np.arange(1, N_ITEMS), 3, replace=False,
                                                   p=p / p.sum())]
    return "\n".join(rows) + "\n"


def item_order_and_counts(path):
    """Item ids in order of first use and their numbers of distinct users, from the csv module."""
    with open(path, newline="") as fh:
        pairs = list(dict.fromkeys((r["user_id"], r["item_id"]) for r in csv.DictReader(fh)))
    order = list(dict.fromkeys(i for _, i in pairs))
    counts = np.array([sum(i == it for _, i in pairs) for it in order], dtype=np.float64)
    return order, counts


def embeddings(path, ids=IDS, E=None, encoder=None, reverse=False):
    E = np.random.default_rng(1).standard_normal((len(ids), DIM)).astype(np.float32) \
        if E is None else E
    ids = list(ids)
    if reverse:
        ids, E = ids[::-1], E[::-1]
    write_embeddings(path, ids, E, [text_hash(i) for i in ids],
                     {"encoder": encoder or {"name": "test", "dim": E.shape[1]}})


def with_attrs(src, **attrs):
    def make(path, tmp):
        shutil.copy(tmp / src, path)
        with h5py.File(path, "a") as f:
            f.attrs.update({k.replace("_", "-"): v for k, v in attrs.items()})
    return make


def nan_at(row, value):
    def make(path, tmp):
        E = np.random.default_rng(1).standard_normal((N_ITEMS, DIM)).astype(np.float32)
        E[row, 1] = value  # row of the file: ids are written in reverse below
        write_embeddings(path, IDS[::-1], E, [text_hash(i) for i in IDS[::-1]],
                         {"encoder": {"dim": DIM}})
    return make


def one_d(path, tmp):
    embeddings(path)
    with h5py.File(path, "a") as f:
        E = f["embeddings"][:, 0]
        del f["embeddings"]
        f["embeddings"] = E


def other_catalog(path, tmp):
    X = np.eye(5, dtype=np.float32)[[0, 1, 2, 3, 4, 0, 1]]
    Recommender("ease", reg_x=10).fit(X, item_ids=[f"x{k}" for k in range(5)]).save(path)


@pytest.fixture
def folder(tmp_path):
    """r.csv (ratings), e.h5 (embeddings of its items), m.h5 (an EASE model on it)."""
    (tmp_path / "r.csv").write_text(ratings_text())
    embeddings(tmp_path / "e.h5")
    from l3ae.io.readers import read_interactions

    it = read_interactions(tmp_path / "r.csv")
    Recommender("ease", reg_x=10).fit(it.matrix(), item_ids=it.item_ids).save(tmp_path / "m.h5")
    return tmp_path


OUT = "{tmp}/out.h5"
EASE = ["build", "--model", "ease", "--reg-x", "10", "--out", OUT, "--interactions"]
SEQ = ["build", "--model", "ease", "--format", "sequences", "--out", OUT, "--interactions"]
L3AE = ["build", "--model", "l3ae", "--reg-x", "1", "--reg-e", "2", "--reg-f", "0.5",
        "--out", OUT, "--interactions", "{tmp}/r.csv", "--embeddings"]
REC = ["recommend", "--interactions", "{tmp}/r.csv", "--out", "{tmp}/recs.csv"]
EMBED = ["embed", "--out", OUT, "--items"]
UTF8 = "save the file as UTF-8"
# (id, {file name: bytes or maker(path, tmp)}, argv, first stderr line); {tmp}: the folder,
# …: any text (another library's wording, or detail a message may or may not give)
CASES = [
    # -- rows and delimiters
    ("short-row", {"bad.csv": b"user_id,item_id\nu1,a\nu2\n"}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:3: expected 2 columns (user_id,item_id), got 1"),
    ("open-quote", {"bad.csv": b'user_id,item_id\nu1,a\nu2,"b\nu3,c\n'}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:3: bad CSV: unexpected end of data; a quoted field is never closed"),
    ("text-after-quote", {"bad.csv": b'user_id,item_id\nu1,a\nu2,"b"c\n'},
     EASE + ["{tmp}/bad.csv"], "{tmp}/bad.csv:3: bad CSV: ',' expected after '\"'"),
    ("line-after-multiline-field", {"bad.csv": b'user_id,item_id\nu1,"a\nb"\nu2\n'},
     EASE + ["{tmp}/bad.csv"], "{tmp}/bad.csv:4: expected 2 columns (user_id,item_id), got 1"),
    ("empty-user-id", {"bad.csv": b"user_id,item_id\nu1,a\n ,b\n"}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:3: empty user id"),
    ("rating-not-a-number", {"bad.csv": b"user_id,item_id,rating\nu1,a,4\nu1,b,five\n"},
     EASE + ["{tmp}/bad.csv", "--min-rating", "4"],
     "{tmp}/bad.csv:3: rating 'five' is not a number"),
    ("unknown-delimiter", {"bad.txt": b"user_id item_id\nu1 a\n"}, EASE + ["{tmp}/bad.txt"],
     "{tmp}/bad.txt:1: cannot tell the delimiter from the header 'user_id item_id'; pass --sep"),
    ("sep-of-two-characters", {}, EASE + ["{tmp}/r.csv", "--sep", "::"],
     "--sep takes one character (or 'tab'), got '::'"),
    # -- columns and empty files
    ("missing-user-column", {"bad.csv": b"user,item\nu1,a\n"}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:1: no user column 'user_id'; columns are user, item (choose with --user-col)"),
    ("missing-item-column", {}, EASE + ["{tmp}/r.csv", "--item-col", "movie"],
     "{tmp}/r.csv:1: no item column 'movie'; columns are user_id, item_id (choose with "
     "--item-col)"),
    ("missing-rating-column", {}, EASE + ["{tmp}/r.csv", "--min-rating", "4"],
     "{tmp}/r.csv:1: no rating column 'rating'; columns are user_id, item_id (choose with "
     "--rating-col)"),
    ("empty-file", {"bad.csv": b""}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:1: empty file: expected a header line"),
    ("header-only", {"bad.csv": b"user_id,item_id\n"}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv: no interactions"),
    # -- bytes that are not UTF-8 text
    ("latin-1-row", {"bad.csv": b"user_id,item_id\nu1,a\nu2,caf\xe9\n"},
     EASE + ["{tmp}/bad.csv"], "{tmp}/bad.csv:3: not UTF-8 text: b'\\xe9' at byte 7 of the "
     "line; " + UTF8),
    ("latin-1-row-past-first-chunk",
     {"bad.csv": b"user_id,item_id\n" + b"u1,a\n" * 5000 + b"u2,\xff\n"},
     EASE + ["{tmp}/bad.csv"], "{tmp}/bad.csv:5002: not UTF-8 text: b'\\xff' at byte 4 of the "
     "line; " + UTF8),
    ("utf-16-with-bom", {"bad.csv": "user_id,item_id\nu1,a\n".encode("utf-16")},
     EASE + ["{tmp}/bad.csv"], "{tmp}/bad.csv:1: not UTF-8 text: b'\\xff' at byte 1 of the "
     "line; " + UTF8),
    ("utf-16-without-bom", {"bad.csv": "user_id,item_id\nu1,a\n".encode("utf-16-le")},
     EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:1: NUL bytes in the header (a UTF-16 file? save it as UTF-8)"),
    ("nul-in-id", {"bad.csv": b"user_id,item_id\nu1,a\nu2,b\x00c\n"}, EASE + ["{tmp}/bad.csv"],
     "{tmp}/bad.csv:3: item id 'b\\x00c' holds a NUL byte (a UTF-16 file? save it as UTF-8)"),
    # -- sequence files
    ("sequences-user-twice", {"s.txt": b"u1 a b\nu2 c\nu1 d\n"}, SEQ + ["{tmp}/s.txt"],
     "{tmp}/s.txt:3: user 'u1' again (first on line 1)"),
    ("sequences-user-without-items", {"s.txt": b"u1 a b\nu2\n"}, SEQ + ["{tmp}/s.txt"],
     "{tmp}/s.txt:2: user 'u2' has no items"),
    ("sequences-given-a-table", {}, SEQ + ["{tmp}/r.csv"],
     "{tmp}/r.csv:1: expected 'user item item ...' separated by blanks, got 'user_id,item_id'; "
     "is this a table (--format table)?"),
    ("sequences-latin-1", {"s.txt": b"u1 a\nu2 caf\xe9\n"}, SEQ + ["{tmp}/s.txt"],
     "{tmp}/s.txt:2: not UTF-8 text: b'\\xe9' at byte 7 of the line; " + UTF8),
    ("sequences-empty", {"s.txt": b"\n \n"}, SEQ + ["{tmp}/s.txt"],
     "{tmp}/s.txt:2: empty file: expected 'user item item ...' lines"),
    # -- embeddings (written in reverse order: the row named is the file's, not the item's)
    ("embeddings-nan", {"bad.h5": nan_at(6, np.nan)}, L3AE + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: 1 embeddings hold NaN or inf (first: id 'i5'): row 6 (from 0) of "
     "/embeddings holds nan; re-run `l3ae embed`"),
    ("embeddings-inf", {"bad.h5": nan_at(1, -np.inf)}, L3AE + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: 1 embeddings hold NaN or inf (first: id 'i10'): row 1 (from 0) of "
     "/embeddings holds -inf; re-run `l3ae embed`"),
    ("embeddings-missing-ids", {"bad.h5": lambda p, t: embeddings(p, IDS[:4])},
     L3AE + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: 8 of 12 item ids have no embedding (first: 'i4', 'i5', 'i6', 'i7', 'i8', "
     "...); re-run `l3ae embed` on the item file that lists them"),
    ("embeddings-one-dimensional", {"bad.h5": one_d}, L3AE + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: 12 ids, 12 hashes and embeddings of shape (12,) do not match"),
    ("embeddings-other-dimension-than-encoder",
     {"bad.h5": lambda p, t: embeddings(p, encoder={"name": "x", "dim": 8})},
     L3AE + ["{tmp}/bad.h5"], "{tmp}/bad.h5: embeddings are 4-d but the file's encoder makes "
     "8-d vectors; re-run `l3ae embed`"),
    ("embeddings-without-dimensions",
     {"bad.h5": lambda p, t: embeddings(p, E=np.zeros((N_ITEMS, 0), np.float32))},
     L3AE + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: embeddings of shape (12, 0) have no dimensions; re-run `l3ae embed`"),
    ("embeddings-given-a-model", {}, L3AE + ["{tmp}/m.h5"],
     "{tmp}/m.h5: not an l3ae embeddings file (encoding-type 'l3ae-model', expected "
     "'l3ae-embeddings'); make one with `l3ae embed`"),
    ("embeddings-given-a-csv", {}, L3AE + ["{tmp}/r.csv"], "{tmp}/r.csv: not an embeddings "
     "file: expected HDF5 (…), .npz (…) or Parquet (columns item_id and embedding)"),
    ("embeddings-newer-version", {"bad.h5": with_attrs("e.h5", encoding_version="2")},
     L3AE + ["{tmp}/bad.h5"], "{tmp}/bad.h5: embeddings format version 2 is not readable by "
     "this l3ae (reads 1); upgrade l3ae"),
    # -- model files
    ("model-newer-version", {"bad.h5": with_attrs("m.h5", encoding_version=MODEL_VERSION + 1)},
     REC + ["{tmp}/bad.h5"], f"{{tmp}}/bad.h5: model format version {MODEL_VERSION + 1} is not "
     f"readable by this l3ae ({__version__} reads version 1 to {MODEL_VERSION}); upgrade l3ae "
     "or rebuild the model"),
    ("model-older-version", {"bad.h5": with_attrs("m.h5", encoding_version=0)},
     REC + ["{tmp}/bad.h5"], f"{{tmp}}/bad.h5: model format version 0 is not readable by this "
     f"l3ae ({__version__} reads version 1 to {MODEL_VERSION}); rebuild the model with "
     "`l3ae build`"),
    ("model-version-not-a-number", {"bad.h5": with_attrs("m.h5", encoding_version="1.0rc")},
     ["info", "{tmp}/bad.h5"], f"{{tmp}}/bad.h5: model format version 1.0rc is not readable by "
     f"this l3ae ({__version__} reads version 1 to {MODEL_VERSION}); rebuild the model with "
     "`l3ae build`"),
    ("model-given-embeddings", {}, REC + ["{tmp}/e.h5"],
     "{tmp}/e.h5: not an l3ae model (encoding-type 'l3ae-embeddings')"),
    ("model-of-another-catalog", {"bad.h5": other_catalog}, REC + ["{tmp}/bad.h5"],
     "{tmp}/bad.h5: the model was built on another catalog: none of the …items in {tmp}/r.csv "
     "is among its 5 items…"),
    ("users-file-latin-1", {"users.txt": b"u1\nJos\xe9\n"},
     REC + ["{tmp}/m.h5", "--users", "{tmp}/users.txt"],
     "{tmp}/users.txt:2: not UTF-8 text: b'\\xe9' at byte 4 of the line; " + UTF8),
    # -- item tables of `l3ae embed` (refused before any encoder is loaded)
    ("items-duplicate-id", {"items.csv": b"item_id,title\n1,Heat\n2,Up\n1,Heat 2\n"},
     EMBED + ["{tmp}/items.csv"], "{tmp}/items.csv:4: duplicate item id '1' (first on line 2)"),
    ("items-long-row", {"items.csv": b"item_id,title\n1,Heat\n2,Up,2009\n"},
     EMBED + ["{tmp}/items.csv"], "{tmp}/items.csv:3: expected 2 columns, got 3"),
    ("items-latin-1", {"items.csv": b"item_id,title\n1,Am\xe9lie\n"}, EMBED + ["{tmp}/items.csv"],
     "{tmp}/items.csv:2: not UTF-8 text: b'\\xe9' at byte 5 of the line; " + UTF8),
    ("items-empty", {"items.csv": b"\n"}, EMBED + ["{tmp}/items.csv"],
     "{tmp}/items.csv:1: empty file: expected a header line"),
    # -- knobs that do not enter the chosen model: refused, never dropped
    ("knob-xi-of-text", {}, ["build", "--model", "text", "--reg-f", "2", "--xi", "0.4", "--out",
                             OUT, "--interactions", "{tmp}/r.csv", "--embeddings", "{tmp}/e.h5"],
     "--xi 0.4: the bound ξ on diag(B) does not enter model 'text' (B = C, phase 1 alone); "
     "drop it"),
    ("knob-alpha-of-ease", {}, EASE + ["{tmp}/r.csv", "--alpha", "0.5"],
     "--alpha 0.5: the weight α of the fusions and of slist does not enter model 'ease'; "
     "drop it (or use --model collective, additive or slist)"),
    ("knob-window-of-ease", {}, EASE + ["{tmp}/r.csv", "--window", "3"],
     "--window 3: the prefix window of slist's transitions does not enter model 'ease'; "
     "drop it (or use --model slist)"),
    ("knob-pull-power-of-uniform-pull", {}, L3AE + ["{tmp}/e.h5", "--pull-power", "0.3"],
     "--pull-power 0.3: the exponent of the adaptive pull does not enter model 'l3ae'; drop "
     "it (or add --pull adaptive)"),
    ("knob-reg-f-of-ease", {}, EASE + ["{tmp}/r.csv", "--reg-f", "2"],
     "--reg-f 2.0: the ridge λ_F of phase 1 (the semantic C) does not enter model 'ease' "
     "without a text pull (reg-e 0); drop it (or give --reg-e, the pull towards C)"),
    ("knob-in-a-config-file", {"text.cfg": b'{"model": "text", "reg_f": 2, "xi": 0.4}'},
     ["build", "--config", "{tmp}/text.cfg", "--out", OUT, "--interactions", "{tmp}/r.csv",
      "--embeddings", "{tmp}/e.h5"],
     "{tmp}/text.cfg: xi 0.4: the bound ξ on diag(B) does not enter model 'text' (B = C, "
     "phase 1 alone); drop it"),
    ("knob-in-a-grid", {}, ["tune", "--model", "text", "--grid", "xi=0.1,0.2", "--out",
                            "{tmp}/best.json", "--interactions", "{tmp}/r.csv", "--embeddings",
                            "{tmp}/e.h5"],
     "--xi 0.1: the bound ξ on diag(B) does not enter model 'text' (B = C, phase 1 alone); "
     "drop it"),
    # -- the same errors from evaluate and tune, whose outputs are not written either
    ("evaluate-short-row", {"bad.csv": b"user_id,item_id\nu1\n"},
     ["evaluate", "--model", "ease", "--json", "{tmp}/m.json", "--interactions", "{tmp}/bad.csv"],
     "{tmp}/bad.csv:2: expected 2 columns (user_id,item_id), got 1"),
    ("tune-latin-1", {"bad.csv": b"user_id,item_id\nu\xe9,a\n"},
     ["tune", "--model", "ease", "--out", "{tmp}/best.json", "--interactions", "{tmp}/bad.csv"],
     "{tmp}/bad.csv:2: not UTF-8 text: b'\\xe9' at byte 2 of the line; " + UTF8),
]


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_case(folder, files, argv):
    for name, content in files.items():
        path = folder / name
        if callable(content):
            content(path, folder)
        else:
            path.write_bytes(content)
    before = snapshot(folder)
    res = CliRunner().invoke(cli, [a.format(tmp=folder) for a in argv])
    return res, before


@pytest.mark.parametrize("files,argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(folder, files, argv, expected):
    res, before = run_case(folder, files, argv)
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    pattern = ".*".join(re.escape(part) for part in expected.format(tmp=folder).split("…"))
    assert re.fullmatch("Error: " + pattern, lines[0]), lines[0]
    assert res.stdout == ""
    assert snapshot(folder) == before  # no output, no temporary file, inputs untouched


def ridge_case(model, extra, lam):
    """Run a build whose total ridge a = λ(item) is not positive for some item."""
    return (["build", "--model", model, "--out", OUT, "--interactions", "{tmp}/r.csv"] + extra,
            lam)


@pytest.mark.parametrize("argv,ridge", [
    ridge_case("ease", ["--reg-x", "-1"], lambda c, w: -1.0 + 0 * c),
    ridge_case("dlae", ["--reg-x", "-3", "--dropout", "0.2"], lambda c, w: -3 + 0.25 * c),
    ridge_case("l3ae", ["--reg-x", "-5", "--reg-e", "4", "--pull", "adaptive", "--embeddings",
                        "{tmp}/e.h5"], lambda c, w: -5 + 4 * w),
], ids=["ease", "dlae-dropout", "l3ae-adaptive-pull"])
def test_ridge_that_is_not_positive_names_the_first_item_and_its_value(folder, argv, ridge):
    """a = Λ + λ_E·w with Λ = λ_X + p/(1−p)·diag(G) and w = ((1 + mean c)/(1 + c))^0.5,
    computed here from the csv module's count of each item's users."""
    order, c = item_order_and_counts(folder / "r.csv")
    a = ridge(c, ((1 + c.mean()) / (1 + c)) ** 0.5)
    bad = np.flatnonzero(a <= 0)
    assert 0 < len(bad) < len(a) or argv[2] == "ease"  # the adaptive case refuses some items only
    j = bad[0]
    res, before = run_case(folder, {}, argv)
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == [
        f"Error: the total ridge a = Λ + λ_E·w must be > 0 for every item; a = {a[j]:.6g} at "
        f"item {order[j]!r} (#{j}) ({len(bad)} items); raise --reg-x or --reg-e"]
    assert snapshot(folder) == before
