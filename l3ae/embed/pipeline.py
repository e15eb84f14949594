"""Item table -> texts -> embeddings file, re-embedding only what changed.

``render_texts`` fills a ``str.format`` template from item columns. ``embed_items`` writes the
embeddings file (:mod:`l3ae.io.embeddings`): when the output already exists and was made by the
same encoder (fingerprint of model.onnx + tokenizer.json, same pooling/normalization/max_length),
rows whose text hash is unchanged are copied, and only new or changed texts go through the model;
when nothing changed, the model is not even loaded.

Empty texts (blank after rendering, or every template field empty) get an all-zero row rather
than the model's vector for "": a shared vector would make every text-less item a perfect
semantic neighbour of every other one, while a zero column of F leaves those items out of the
semantic term C (DESIGN §2) altogether.

Vectors made elsewhere enter through ``l3ae embed --import`` (:func:`l3ae.io.readers.
import_vectors`): their rows carry a ``"vector:"`` hash instead of a text hash and the file's
encoder is ``{"imported": ...}``. The two kinds never mix in one file: embedding texts into a
file of imported vectors is refused (l3ae cannot make those again), as is importing over a file
embedded from texts; an encoder change between text runs re-embeds every text, as before.
"""

from __future__ import annotations

import contextlib
import math
import re
import string
import sys
import time
from pathlib import Path

import numpy as np

from l3ae.embed.encoder import Encoder, fingerprint, read_encoder_config
from l3ae.embed.packaged import l3ae_home, resolve_encoder
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.embeddings import text_hash, write_embeddings
from l3ae.io.readers import replaceable

#: Cell values read as "missing" (pandas' spelling of NA included); they render as "".
MISSING = frozenset({"nan", "NaN", "<NA>", "null", "NULL"})
# fields of l3ae_encoder.json that change the vectors; all must match to reuse a row
_REUSE_KEYS = ("fingerprint", "pooling", "normalize", "max_length", "dim", "output")


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template refers to, in order of first use."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"bad template {template!r}: {exc}") from None
    fields = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise ConfigError(f"bad template {template!r}: fields must be column names, "
                              f"like {{title}}")
        if base not in fields:
            fields.append(base)
    return fields


def _clean(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    v = str(v)
    return "" if v in MISSING else v


def render_texts(columns: dict, template: str, path=None) -> list[str]:
    """One text per item: ``template.format(**row)`` over ``columns`` ({name: list of values}).

    Missing values (None, NaN, the strings in MISSING) render as "". An item whose every
    template field is empty renders as "" (not as the template's punctuation).
    Raises DataFormatError naming a template field that is not a column, with the columns.
    """
    fields = template_fields(template)
    absent = [f for f in fields if f not in columns]
    if absent:
        raise DataFormatError(f"template field {{{absent[0]}}} is not a column; columns are "
                              f"{', '.join(columns)}", path=path)
    if not columns:
        return []
    n = len(next(iter(columns.values())))
    cols = {f: [_clean(v) for v in columns[f]] for f in fields}
    texts = []
    for i in range(n):
        row = {f: cols[f][i] for f in fields}
        if fields and not any(v.strip() for v in row.values()):
            texts.append("")
            continue
        try:
            texts.append(template.format(**row))
        except (ValueError, IndexError, KeyError, AttributeError) as exc:
            raise ConfigError(f"template {template!r} does not apply to row {i + 1}: "
                              f"{exc}") from None
    return texts


def default_template(columns: dict, id_col: str | None = None) -> str:
    """Every column but the id column, in file order, joined by ". "."""
    names = [c for c in columns if c != id_col]
    if not names:
        raise DataFormatError("the item table has no text column besides the id")
    return ". ".join("{" + c + "}" for c in names)


def encoder_identity(folder) -> dict:
    """What the embeddings file records about the encoder (JSON-able)."""
    cfg = read_encoder_config(folder)
    return {"name": cfg.name, "source": cfg.source, "fingerprint": fingerprint(folder),
            "pooling": cfg.pooling, "normalize": cfg.normalize, "max_length": cfg.max_length,
            "dim": cfg.dim, "output": cfg.output}


def _previous(out: Path, identity: dict, vectors: bool = False):
    """(ids, hashes, template, row-of-hash, E or None) of a reusable ``out``; None if absent or
    stale. Everything comes from one read: another process may replace ``out`` meanwhile."""
    if not out.exists():
        return None
    ids, E, meta = replaceable(out, vectors)
    old = meta["encoder"]
    if old.get("imported"):  # l3ae cannot make these again: never replace them silently
        raise DataFormatError(f"refusing to overwrite it: it holds {len(ids)} vectors imported "
                              f"from {old['imported']} (`l3ae embed --import`), which embedding "
                              "texts would replace; delete it or choose another output",
                              path=out)
    if any(old.get(k) != identity[k] for k in _REUSE_KEYS):
        return None
    hashes = meta["hashes"]
    return ids, hashes, meta.get("template", ""), {h: r for r, h in enumerate(hashes)}, E


@contextlib.contextmanager
def _progress(total: int, enabled: bool):
    """A click progress bar on stderr showing texts/s, or a no-op callback."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield None
        return
    import click

    start = time.perf_counter()
    with click.progressbar(length=total, label="embedding", file=sys.stderr, show_pos=True,
                           item_show_func=lambda s: s) as bar:
        def step(k):
            bar.update(k, f"{(bar.pos + k) / max(time.perf_counter() - start, 1e-9):.0f} texts/s")
        yield step


def embed_items(ids, texts, encoder_spec, out, batch_size: int = 64, progress: bool = True,
                template: str | None = None, threads: int | None = None) -> dict:
    """Embed ``texts`` (one per id) into the embeddings file ``out``; incremental.

    ids, texts : sequences of equal length n (ids unique, compared as str).
    encoder_spec : None / "minilm" (packaged default) or an encoder folder.
    Returns stats {texts, embedded, reused, empty, truncated, replaced, encoded, seconds,
    texts_per_s, written, out, encoder}: ``embedded`` rows computed now, ``encoded`` distinct
    texts run through the model, ``truncated`` of those cut to max_length tokens, ``replaced``
    texts holding U+FFFD (bytes that were not UTF-8), ``written`` False when ``out`` was already
    up to date and left untouched.
    """
    t0 = time.perf_counter()
    out = Path(out)
    ids = [str(i) for i in ids]
    texts = [str(t) for t in texts]
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    if len(set(ids)) != len(ids):
        seen = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise DataFormatError(f"duplicate item id {dup!r}")
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; --out takes a file name like embeddings.h5")
    folder = resolve_encoder(encoder_spec)
    identity = encoder_identity(folder)
    hashes = [text_hash(t) for t in texts]
    empty = np.array([not t.strip() for t in texts], dtype=bool)
    stats = {"texts": len(texts), "embedded": 0, "reused": 0, "empty": int(empty.sum()),
             "truncated": 0, "replaced": sum("\ufffd" in t for t in texts), "encoded": 0,
             "texts_per_s": 0.0, "written": False, "out": str(out), "encoder": identity["name"]}

    prev = _previous(out, identity)
    template = template or ""
    if prev is not None and prev[0] == ids and prev[1] == hashes and prev[2] == template:
        stats.update(reused=int((~empty).sum()), seconds=time.perf_counter() - t0)
        return stats  # up to date: no model load, no write

    E = np.zeros((len(ids), identity["dim"]), dtype=np.float32)
    old_rows = np.full(len(ids), -1, dtype=np.int64)
    if prev is not None and any(h in prev[3] for h in hashes):
        prev = _previous(out, identity, vectors=True)  # rows and vectors of one version of out
    if prev is not None:
        old_rows[:] = [prev[3].get(h, -1) for h in hashes]
        old_rows[empty] = -1
        have = old_rows >= 0
        if have.any():
            E[have] = prev[4][old_rows[have]]
    todo = np.flatnonzero((old_rows < 0) & ~empty)
    stats["reused"] = int((old_rows >= 0).sum())
    stats["embedded"] = len(todo)
    if len(todo):
        # each distinct text once: repeated descriptions are common in catalogs
        first = {}
        for r in todo:
            first.setdefault(hashes[r], r)
        uniq = list(first.values())
        encoder = Encoder(folder, threads=threads)
        t1 = time.perf_counter()
        with _progress(len(uniq), progress) as step:
            V, cut = encoder.encode([texts[r] for r in uniq], batch_size=batch_size, progress=step,
                                    return_truncated=True)
        dt = time.perf_counter() - t1
        slot = {hashes[r]: k for k, r in enumerate(uniq)}
        pos = np.fromiter((slot[hashes[r]] for r in todo), dtype=np.int64, count=len(todo))
        E[todo] = V[pos]
        stats.update(encoded=len(uniq), truncated=int(cut[pos].sum()),
                     texts_per_s=len(uniq) / dt if dt > 0 else 0.0)
    write_embeddings(out, ids, E, hashes, {"encoder": identity, "template": template})
    stats.update(written=True, seconds=time.perf_counter() - t0)
    return stats


def dataset_embeddings_path(name: str, encoder_name: str) -> Path:
    """``$L3AE_HOME/embeddings/{name}-{encoder-name}.h5``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_name)
    return l3ae_home() / "embeddings" / f"{name}-{safe}.h5"


def ensure_dataset_embeddings(name: str, encoder_spec=None, progress: bool = True) -> Path:
    """The embeddings file of packaged dataset ``name`` (e.g. "ml-1m"), built or refreshed.

    Texts come from :func:`l3ae.io.datasets.load_items` with its DEFAULT_TEMPLATE; the cache
    file is updated incrementally by :func:`embed_items`, so repeated calls cost ~0.2 s.
    """
    from l3ae.io.datasets import DEFAULT_TEMPLATE, load_items

    folder = resolve_encoder(encoder_spec)
    out = dataset_embeddings_path(name, read_encoder_config(folder).name)
    ids, columns = load_items(name)
    texts = render_texts(columns, DEFAULT_TEMPLATE, path=name)
    embed_items(ids, texts, folder, out, progress=progress, template=DEFAULT_TEMPLATE)
    return out
