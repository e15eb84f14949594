"""Batch recommend: top-N lists for every user of an interactions file (or a given list),
scored and written chunk by chunk.

Per chunk of users: their histories X (k, n) CSR → :func:`l3ae.engine.score.topn` with the
allowed items of --exclude/--candidates → popular items for users with no known item → bytes
appended to the output. Memory beyond the model: one chunk (histories, (k, N) results, its
formatted bytes) when the file streams (grouped by user, see :mod:`l3ae.io.stream`), else the
histories read whole. No math here.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from l3ae.engine.score import topn
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import parquet
from l3ae.io.interactions import NotStreamable, memory_chunks
from l3ae.io.readers import history_chunks, read_id_list, read_interactions
from l3ae.io.toplists import list_writer, open_sink
from l3ae.model import Recommender

CHUNK = 8192


def output_format(out=None, out_format=None):
    """``out_format`` if given, else jsonl for an --out ending in .jsonl/.json, parquet for one
    ending in .parquet/.pq, else csv."""
    if out_format is not None:
        return out_format
    suffix = Path(out).suffix.lower() if out else ""
    return ("jsonl" if suffix in (".jsonl", ".json") else
            "parquet" if suffix in parquet.SUFFIXES else "csv")


def allowed_items(item_ids, exclude=None, candidates=None, warn=print):
    """(n,) bool: the items that may be recommended — those of the ``candidates`` file (else
    all) minus those of the ``exclude`` file. Ids the model does not know are warned about."""
    pos = {it: k for k, it in enumerate(item_ids)}
    allowed = np.ones(len(item_ids), bool)
    for path, keep in ((candidates, True), (exclude, False)):
        if path is None:
            continue
        ids = read_id_list(path, "item_id")
        known = np.array([pos[i] for i in ids if i in pos], np.int64)
        unknown = [i for i in ids if i not in pos]
        if unknown:
            warn(f"{path}: {len(unknown)} of {len(ids)} item ids are not in the model "
                 f"(first: {', '.join(unknown[:5])})")
        if keep:
            allowed[:] = False
        allowed[known] = keep
    if not allowed.any():
        raise ConfigError("no item may be recommended: --candidates and --exclude leave none")
    return allowed


def histories(path, item_ids, users=None, fmt="table", user_col="user_id",
              item_col="item_id", sep=None, chunk=CHUNK, recency=1.0, warn=print):
    """Chunks of (user_ids, X, unknown) of an interactions file: streamed when every user is
    wanted and the file allows it, else read whole (saying why on ``warn``). recency < 1: items
    weigh recency ** age in ordered histories (sequence files)."""
    if recency != 1.0 and fmt != "sequences":
        warn(f"the model weighs history items by recency ({recency}), which needs ordered "
             f"histories (--format sequences): every item of {path} weighs 1")
        recency = 1.0
    if users is None:
        try:
            return history_chunks(path, item_ids, fmt, user_col, item_col, sep, chunk, recency)
        except NotStreamable as why:
            warn(f"{path}: {why}: reading the whole file (memory grows with it)")
    hist = read_interactions(path, user_col, item_col, sep=sep, fmt=fmt)
    if users is not None:
        have = set(hist.user_ids)
        missing = [u for u in users if u not in have]
        if missing:
            warn(f"{len(missing)} requested users have no history; they get popular items "
                 f"(first: {missing[:3]})")
    return memory_chunks(hist, item_ids, users, chunk, recency)


def recommend_batch(model, interactions, users=None, N=20, out=None, out_format=None,
                    fmt="table", user_col="user_id", item_col="item_id", sep=None,
                    exclude=None, candidates=None, chunk=CHUNK, progress=None, warn=print):
    """Write top-N lists for the users of ``interactions`` to ``out`` (atomically) or stdout.

    model : a model file or a fitted :class:`Recommender`. users : ids in output order, or a
    file of them (one per line, optional header user_id); default: every user of the file, in
    file order. Items the model does not know are skipped (counted on ``warn``); a user with no
    known item gets the most popular allowed items, fallback=1. A model with recency < 1
    weighs the items of sequence files by recency ** age (0 = the latest).
    progress : callback(phase, done, total, info). Returns the number of users written.
    """
    rec = model if isinstance(model, Recommender) else Recommender.load(model)
    if isinstance(users, (str, Path)):
        users = read_id_list(users, "user_id")
    allowed = allowed_items(rec.item_ids_, exclude, candidates, warn)
    source = histories(interactions, rec.item_ids_, users, fmt, user_col, item_col, sep, chunk,
                       rec.config_.recency, warn)
    if not source.known_any:
        raise DataFormatError(f"the model was built on another catalog: none of the items in "
                              f"{interactions} is among its {len(rec.item_ids_)} items",
                              path=model if isinstance(model, (str, Path)) else None)
    with open_sink(out) as fh:
        writer = list_writer(fh, rec.item_ids_, output_format(out, out_format))
        done, skipped, unknown_items = _score_all(source, rec, allowed, N, writer, progress)
        writer.close()
    if skipped:
        warn(f"skipped {skipped} interactions on {unknown_items} items the model does not know")
    return done


def _score_all(source, rec, allowed, N, writer, progress):
    """Score every chunk of ``source`` and write it; returns (users, skipped interactions,
    distinct unknown items). The kernel scores chunk k+1 in a worker thread (numba, no GIL)
    while this thread writes chunk k and reads chunk k+2: I/O hides behind the scoring."""
    pop_items, pop_scores = _popular(rec, allowed, N)
    skipped, unknown_items, done, t0 = 0, set(), 0, time.perf_counter()

    def emit(uids, X, job):
        nonlocal done
        items, scores = job.result()
        fallback = np.diff(X.indptr) == 0
        items[fallback], scores[fallback] = pop_items, pop_scores
        writer.write(uids, items, scores, fallback)
        done += len(uids)
        if progress:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            progress("recommend", done, source.total, f"{rate:,.0f} users/s")

    with ThreadPoolExecutor(1) as pool:
        pending = None
        for uids, X, unknown in source:
            skipped += len(unknown)
            unknown_items.update(np.unique(unknown).tolist())
            job = pool.submit(topn, X, rec.B_, N, allowed=allowed)
            if pending:
                emit(*pending)
            pending = uids, X, job
        if pending:
            emit(*pending)
    return done, skipped, len(unknown_items)


def _popular(rec, allowed, N):
    """The fallback list: (items (N,) int64, -1 padded; scores (N,) float32, the popularity)."""
    popular = np.argsort(-rec.popularity_, kind="stable")
    popular = popular[allowed[popular]][:N]
    items = np.full(N, -1, np.int64)
    items[:len(popular)] = popular
    scores = np.full(N, -np.inf, np.float32)
    scores[:len(popular)] = rec.popularity_[popular]
    return items, scores
