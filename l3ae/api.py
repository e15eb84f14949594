"""Workflows behind the commands: load inputs, build, evaluate, recommend. No math here."""

from __future__ import annotations

import json
import time

import numpy as np
import scipy.sparse as sp

from l3ae.evaluation import (Split, apply_regime, format_comparison,  # noqa: F401
                             format_table, loo_split, random_split, score)
from l3ae.engine.models import Config
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import datasets
from l3ae.io.readers import read_interactions
from l3ae.model import Recommender


def load_source(interactions=None, dataset=None, dataset_dir=None, user_col="user_id",
                item_col="item_id", rating_col="rating", min_rating=None, sep=None, fmt="table"):
    """Interactions (file or packaged dataset; MovieLens defaults to rating >= 4) or a
    DatasetDir (``--dataset-dir``: item texts, maybe its own split). ``fmt``: "table" or
    "sequences" (FAERec files) for ``interactions``."""
    given = [x is not None for x in (interactions, dataset, dataset_dir)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of --interactions PATH, --dataset NAME or "
                          "--dataset-dir DIR")
    if dataset_dir is not None:
        from l3ae.io.dataset_dir import load_dataset_dir

        return load_dataset_dir(dataset_dir)
    if dataset is not None:
        return datasets.load_interactions(
            dataset, "default" if min_rating is None else min_rating)
    return read_interactions(interactions, user_col, item_col, rating_col, min_rating, sep, fmt)


def full_matrix(source):
    """(X (m, n) CSR of every interaction, item_ids) of a source."""
    from l3ae.io.dataset_dir import DatasetDir

    if isinstance(source, DatasetDir):
        if source.split is not None:
            X = sum(source.split[1:], source.split[0]).tocsr()
            X.data[:] = 1
            return X, source.item_ids
        return source.interactions.matrix(np.float32, source.item_ids), source.item_ids
    return source.matrix(np.float32), source.item_ids


def load_embeddings(source, item_ids, embeddings=None, dataset=None, encoder=None,
                    progress=True, embedding_id_col=None, embedding_col=None):
    """(E (n, d) float32 aligned with item_ids, encoder metadata) for a text-aware model.

    ``embeddings``: a file of any layout :func:`l3ae.io.embeddings.read_embeddings` reads
    (embedding_id_col / embedding_col: its id and vector columns). Without one, the item texts
    of a packaged dataset or a dataset folder are embedded once with the packaged encoder (or
    ``encoder``) and cached under $L3AE_HOME.
    """
    from l3ae.io.dataset_dir import DatasetDir
    from l3ae.io.embeddings import align, read_embeddings

    if embeddings is None:
        if isinstance(source, DatasetDir):
            embeddings = dataset_dir_embeddings(source, encoder, progress=progress)
        elif dataset is not None:
            from l3ae.embed.pipeline import ensure_dataset_embeddings

            embeddings = ensure_dataset_embeddings(dataset, encoder, progress=progress)
        else:
            raise ConfigError("this model needs item embeddings: pass --embeddings E.h5 "
                              "(make one with `l3ae embed`)")
    # one read: `l3ae embed` may replace the file
    ids, E, meta = read_embeddings(embeddings, id_col=embedding_id_col, col=embedding_col)
    return align(embeddings, ids, E, item_ids, meta), meta.get("encoder", "")


def dataset_dir_embeddings(ds, encoder=None, progress=True):
    """Embeddings file of a dataset folder's item texts, made once under $L3AE_HOME."""
    from l3ae.embed.encoder import read_encoder_config
    from l3ae.embed.packaged import resolve_encoder
    from l3ae.embed.pipeline import dataset_embeddings_path, embed_items

    folder = resolve_encoder(encoder)
    out = dataset_embeddings_path(ds.name, read_encoder_config(folder).name)
    embed_items(ds.item_ids, ds.texts, folder, out, progress=progress, template="dataset-dir")
    return out


def build(source, cfg: Config, E=None, progress=None, foldable=False, **solver) -> Recommender:
    """Fit the configured model on every interaction (solver: run-time solve options;
    foldable: keep the state :func:`add_items` needs)."""
    X, item_ids = full_matrix(source)
    rec = Recommender(cfg.model, **{k: v for k, v in cfg.to_dict().items() if k != "model"})
    return rec.fit(X, E, item_ids=item_ids, progress=progress, foldable=foldable, **solver)


def add_items(model_path, items_path, out, embeddings=None, id_col=None, sep=None,
              progress=None, warn=print, embedding_id_col=None, embedding_col=None):
    """Fold the items of an item table (new ids, no interactions) into a model built with
    --foldable and write the result to ``out`` atomically; nothing is written on an error.
    Returns (the folded Recommender, the number of items added)."""
    from l3ae.io.embeddings import align, read_embeddings
    from l3ae.io.readers import read_items

    rec = Recommender.load(model_path, foldable=True)
    ids, _ = read_items(items_path, id_col, sep)
    known = set(rec.item_ids_)
    clash = [i for i in ids if i in known]
    if clash:
        raise DataFormatError(f"{len(clash)} item ids are already in the model {model_path} "
                              f"(first: {clash[0]!r}); list only new items", path=items_path)
    E = None
    if rec.fold_.E is None:
        if embeddings is not None:
            warn(f"--embeddings ignored: model {rec.config_.model!r} does not use text; the "
                 "new items get zero weights")
    elif embeddings is None:
        raise ConfigError(f"model {rec.config_.model!r} places new items by their text: pass "
                          "--embeddings with their vectors")
    else:
        E_ids, E_all, meta = read_embeddings(embeddings, id_col=embedding_id_col,
                                             col=embedding_col)
        built, theirs = json.loads(rec.encoder_) if rec.encoder_ else {}, meta["encoder"]
        key = next((k for k in ("fingerprint", "name") if built.get(k) and theirs.get(k)), None)
        if key and built[key] != theirs[key]:
            raise DataFormatError(f"embedded by an encoder of {key} {theirs[key]!r}, the model "
                                  f"{model_path} by {built[key]!r}; embed the new items with "
                                  "the model's encoder", path=embeddings)
        E = align(embeddings, E_ids, E_all, ids, meta)
        d = rec.fold_.E.shape[1]
        if E.shape[1] != d:
            raise DataFormatError(f"embeddings are {E.shape[1]}-d but the model {model_path} "
                                  f"was built on {d}-d ones; embed the new items with the "
                                  "model's encoder", path=embeddings)
    rec.add_items(ids, E, progress=progress)
    rec.save(out, encoder=rec.encoder_)
    return rec, len(ids)


def load_split(source, seed=0, train_fraction=1.0, cold_items=0.0, protocol="random"):
    """A Split of Interactions (per-user random 8:1:1, or leave-one-out of sequences) or of a
    DatasetDir (its own split if it ships one), under the regime asked for."""
    from l3ae.io.dataset_dir import DatasetDir

    if protocol == "loo":
        if isinstance(source, DatasetDir):
            raise ConfigError("--protocol loo needs --interactions FILE --format sequences")
        split = loo_split(source)
    elif isinstance(source, DatasetDir) and source.split is not None:
        split = Split(*source.split)
    else:
        inter = source.interactions if isinstance(source, DatasetDir) else source
        ids = source.item_ids if isinstance(source, DatasetDir) else inter.item_ids
        X = sp.coo_matrix(inter.matrix(np.float32, item_ids=ids))
        split = random_split(X.row, X.col, X.shape, seed=seed)
    return apply_regime(split, train_fraction, cold_items, seed)


def evaluate(split: Split, cfg: Config, E=None, item_ids=None, ks=None, progress=None,
             refit=False, **solver):
    """Fit on split.train, score validation and test for all/head/tail(/cold) items.

    refit : fit again on train + validation for the test (each target is then predicted by a
    model trained on everything before it). solver : run-time options of the solve.
    Returns {"validation": {group: {"recall@K" (loo: "hr@K"): …, "ndcg@K": …, "users": …}},
    "test": …, "timings": …, "config": …, "data": …}.
    """
    def fit(X):
        rec = Recommender(cfg.model, **{k: v for k, v in cfg.to_dict().items() if k != "model"})
        return rec.fit(X, E, item_ids=item_ids, progress=progress, **solver)

    rec = fit(split.train)
    timings = dict(rec.timings_)
    weights = None
    if refit:
        again = fit(split.known)
        weights = {"test": again.B_}
        timings["refit"] = again.timings_["total"]
    t = time.perf_counter()
    out = score(rec.B_, split, ks, weights=weights, recency=cfg.recency)
    out["timings"] = dict(timings, evaluate=time.perf_counter() - t)
    out["config"] = rec.config_.to_dict()
    m, n = split.train.shape
    out["data"] = {"users": m, "items": n, "train": int(split.train.nnz),
                   "validation": int(split.validation.nnz), "test": int(split.test.nnz),
                   "protocol": split.protocol, "refit": bool(refit)}
    return out


def recommend(model_path, interactions, users=None, N=20, out=None, **options):
    """Top-N lists for the users of an interactions file — every user, streamed in chunks, or
    ``users`` in that order — written atomically to ``out`` or to stdout. Options and behaviour:
    :func:`l3ae.batch.recommend_batch`. Returns the number of users written."""
    from l3ae.batch import recommend_batch

    return recommend_batch(model_path, interactions, users, N, out, **options)
