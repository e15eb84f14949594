"""Workflows behind the commands: load inputs, build, evaluate, recommend. No math here."""

from __future__ import annotations

import csv
import json
import sys
import time

import numpy as np
import scipy.sparse as sp

from l3ae.engine.metrics import head_items, ranking_metrics, split_interactions
from l3ae.engine.models import Config
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import datasets
from l3ae.io.atomic import atomic_open
from l3ae.io.readers import read_interactions, to_csr
from l3ae.model import Recommender

KS = (10, 20, 50)


def load_interactions(interactions=None, dataset=None, user_col="user_id", item_col="item_id",
                      rating_col="rating", min_rating=None, sep=None):
    """Interactions from a file or a packaged dataset (MovieLens defaults to rating >= 4)."""
    if (interactions is None) == (dataset is None):
        raise ConfigError("give exactly one of --interactions PATH or --dataset NAME")
    if dataset is not None:
        return datasets.load_interactions(
            dataset, "default" if min_rating is None else min_rating)
    return read_interactions(interactions, user_col, item_col, rating_col, min_rating, sep)


def load_embeddings(item_ids, embeddings=None, dataset=None, encoder=None, progress=True):
    """(E (n, d) float32 aligned with item_ids, encoder metadata) for a text-aware model.

    Without an embeddings file, a packaged dataset's item texts are embedded once with the
    packaged encoder (or ``encoder``) and cached under $L3AE_HOME.
    """
    from l3ae.io.embeddings import load_aligned, read_embeddings

    if embeddings is None:
        if dataset is None:
            raise ConfigError("this model needs item embeddings: pass --embeddings E.h5 "
                              "(make one with `l3ae embed`)")
        from l3ae.embed.pipeline import ensure_dataset_embeddings

        embeddings = ensure_dataset_embeddings(dataset, encoder, progress=progress)
    meta = read_embeddings(embeddings, vectors=False)[2]
    return load_aligned(embeddings, item_ids), meta.get("encoder", "")


def build(inter, cfg: Config, E=None, progress=None, **solver) -> Recommender:
    """Fit the configured model on all interactions (solver: run-time solve options)."""
    X = inter.matrix(np.float32)
    rec = Recommender(cfg.model, **{k: v for k, v in cfg.to_dict().items() if k != "model"})
    return rec.fit(X, E, item_ids=inter.item_ids, progress=progress, **solver)


def evaluate(inter, cfg: Config, E=None, seed=0, ks=KS, progress=None):
    """DESIGN §6: seeded 8:1:1 split, fit on train, Recall/NDCG on validation and test.

    Validation ranks with train items masked; test with train and validation items masked
    (both are known interactions at test time). Returns {"validation": {"all"|"head"|"tail":
    {"recall@K": …, "ndcg@K": …, "users": …}}, "test": …, "timings": …, "config": …}.
    """
    tr, va, te = split_interactions(inter.users, inter.items, inter.shape, seed=seed)
    rec = Recommender(cfg.model, **{k: v for k, v in cfg.to_dict().items() if k != "model"})
    rec.fit(tr, E, item_ids=inter.item_ids, progress=progress)
    head = head_items(rec.popularity_)
    t = time.perf_counter()
    out = {}
    for name, truth, mask in (("validation", va, tr), ("test", te, (tr + va).tocsr())):
        top, _ = rec.recommend(tr, N=max(ks), mask=mask)
        out[name] = {g: ranking_metrics(top, truth, ks, m)
                     for g, m in (("all", None), ("head", head), ("tail", ~head))}
    timings = dict(rec.timings_, evaluate=time.perf_counter() - t)
    out["timings"] = timings
    out["config"] = rec.config_.to_dict()
    out["data"] = {"users": inter.shape[0], "items": inter.shape[1],
                   "interactions": int(len(inter.users)), "seed": seed}
    return out


def format_table(result, ks=KS):
    """A fixed-width text table of an :func:`evaluate` result."""
    cols = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    lines = [f"{'split':<11}{'group':<6}{'users':>7}" + "".join(f"{c:>11}" for c in cols)]
    for split in ("validation", "test"):
        for g in ("all", "head", "tail"):
            r = result[split][g]
            lines.append(f"{split:<11}{g:<6}{r['users']:>7}"
                         + "".join(f"{r[c]:>11.4f}" for c in cols))
    return "\n".join(lines)


def recommend(model_path, histories, users=None, N=20, fmt="csv", out=None, warn=print):
    """Top-N lists for users of an interactions table; writes csv/jsonl atomically to ``out``.

    Unknown items in histories are skipped (counted on stderr); users with no known items get
    the most popular items, marked ``fallback``. Returns the number of users written.
    """
    rec = Recommender.load(model_path)
    pos = {it: k for k, it in enumerate(rec.item_ids_)}
    n = len(rec.item_ids_)
    if users is not None:
        have = set(histories.user_ids)
        missing = [u for u in users if u not in have]
        if missing:
            warn(f"{len(missing)} requested users have no history; they get popular items "
                 f"(first: {missing[:3]})")
    known = np.array([pos.get(it, -1) for it in histories.item_ids], np.int64)
    codes = known[histories.items]
    unknown = int((codes < 0).sum())
    if unknown:
        warn(f"skipped {unknown} interactions on {int((known < 0).sum())} items the model "
             f"does not know")
    keep = codes >= 0
    X = to_csr(histories.users[keep], codes[keep], (len(histories.user_ids), n))
    uids = list(histories.user_ids)
    if users is not None:
        idx = {u: k for k, u in enumerate(uids)}
        order = [idx.get(u, -1) for u in users]
        X = sp.vstack([X[i] if i >= 0 else sp.csr_matrix((1, n)) for i in order]).tocsr()
        uids = list(users)
    top, scores = rec.recommend(X, N=N)
    popular = np.argsort(-rec.popularity_, kind="stable")
    fallback = np.diff(X.indptr) == 0
    with atomic_open(out, newline="") if out else _stdout() as fh:
        if fmt == "csv":
            w = csv.writer(fh)
            w.writerow(["user_id", "item_id", "rank", "score", "fallback"])
        for u, uid in enumerate(uids):
            if fallback[u]:
                items = popular[:N]
                sc = rec.popularity_[items].astype(np.float32)
            else:
                items, sc = top[u][top[u] >= 0], scores[u][top[u] >= 0]
            if fmt == "csv":
                for r, (i, s) in enumerate(zip(items, sc), 1):
                    w.writerow([uid, rec.item_ids_[i], r, f"{s:.6g}", int(fallback[u])])
            else:
                fh.write(json.dumps({"user_id": uid, "items": [rec.item_ids_[i] for i in items],
                                     "scores": [round(float(s), 6) for s in sc],
                                     "fallback": bool(fallback[u])}) + "\n")
    return len(uids)


class _stdout:
    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc):
        sys.stdout.flush()
