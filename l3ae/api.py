"""Workflows behind the commands: each command parses its flags, calls one function here and
reports. Inputs are read once per command; no math here (:mod:`l3ae.engine`).

The readers, the estimator, the splits and the tuner are imported by the workflows that use
them: ``l3ae info`` reads a model file without loading numba's kernels or the solvers.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from l3ae.engine.models import Config
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io import datasets
from l3ae.io.atomic import atomic_open
from l3ae.io.interactions import to_csr


@dataclass(frozen=True)
class Data:
    """Where a command's data comes from, as its flags say (nothing read yet): exactly one of
    ``interactions`` (a file; ``fmt`` "table" or "sequences"), ``dataset`` (packaged) or
    ``dataset_dir``; ``embeddings`` / ``encoder`` for models that need item vectors."""

    interactions: str | None = None
    dataset: str | None = None
    dataset_dir: str | None = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    rating_col: str = "rating"
    min_rating: float | None = None
    sep: str | None = None
    fmt: str = "table"
    embeddings: str | None = None
    embedding_id_col: str | None = None
    embedding_col: str | None = None
    encoder: str | None = None

    @property
    def name(self):
        return self.dataset or self.interactions or self.dataset_dir

    def load(self):
        """The interactions: :class:`l3ae.io.readers.Interactions` (a file, or a packaged
        dataset: MovieLens counts rating >= 4 by default) or a DatasetDir (item texts, maybe
        its own split)."""
        if sum(x is not None for x in (self.interactions, self.dataset, self.dataset_dir)) != 1:
            raise ConfigError("give exactly one of --interactions PATH, --dataset NAME or "
                              "--dataset-dir DIR")
        if self.dataset_dir is not None:
            from l3ae.io.dataset_dir import load_dataset_dir

            return load_dataset_dir(self.dataset_dir)
        if self.dataset is not None:
            return datasets.load_interactions(
                self.dataset, "default" if self.min_rating is None else self.min_rating)
        from l3ae.io.readers import read_interactions

        return read_interactions(self.interactions, self.user_col, self.item_col,
                                 self.rating_col, self.min_rating, self.sep, self.fmt)

    def catalog(self, source, cfg, cold=True, progress=True):
        """The :class:`Catalog` of ``cfg`` (one Config or several, sharing one catalog) on
        ``source``: for text-aware configs, as ``cfg.catalog`` says, with the embeddings
        aligned to it; else the source's items. ``cold``: add the embeddings' items without
        interactions (a build); evaluate and tune leave them out, as they are never a target.
        """
        from l3ae.io.readers import align, read_embeddings

        configs = [c for c in ([cfg] if isinstance(cfg, Config) else cfg) if c.needs_text]
        ids = [str(i) for i in source.item_ids]
        if not configs:
            return Catalog(ids)
        kinds = {c.catalog for c in configs}
        if len(kinds) > 1:
            raise ConfigError(f"--catalog: one run takes one catalog, got {sorted(kinds)}")
        kind = kinds.pop()
        path = embeddings_file(source, self.embeddings, self.dataset, self.encoder, progress)
        vids, V, meta = read_embeddings(path, id_col=self.embedding_id_col,
                                        col=self.embedding_col)
        vids = [str(i) for i in vids]
        if kind == "embeddings":
            have = set(vids)
            ids = [i for i in ids if i in have]
        E = align(path, vids, V, ids, meta)  # refuses interaction items without a vector
        if cold and kind != "interactions":
            known = set(map(str, source.item_ids))
            # appended: the interactions' items keep their order (a build without cold items
            # is today's model, column for column); sorted by id, so that the model does not
            # depend on the order of the embeddings' rows
            extra = sorted(i for i in vids if i not in known)
            E = np.concatenate([E, align(path, vids, V, extra, meta)]) if extra else E
            ids += extra
        return Catalog(ids, E, meta.get("encoder", ""), path)

    def vectors(self, source, cfg, progress=True):
        """(E (n, d) float32 aligned with source.item_ids, encoder metadata), or (None, "")
        when no config in ``cfg`` (one Config or several) needs them."""
        configs = [cfg] if isinstance(cfg, Config) else cfg
        if not any(c.needs_text for c in configs):
            return None, ""
        return load_embeddings(source, source.item_ids, self.embeddings, self.dataset,
                               self.encoder, progress, self.embedding_id_col,
                               self.embedding_col)


def sequences_of(source):
    """A source's events in time order (indptr, items) (sequence files), else None."""
    if not getattr(source, "ordered", False):
        return None
    from l3ae.engine.sequences import from_events

    return from_events(source.users, source.items, len(source.user_ids))


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

    ``embeddings``: a file of any layout :func:`l3ae.io.readers.read_embeddings` reads
    (embedding_id_col / embedding_col: its id and vector columns). Without one, the item texts
    of a packaged dataset or a dataset folder are embedded once with the packaged encoder (or
    ``encoder``) and cached under $L3AE_HOME.
    """
    from l3ae.io.readers import load_aligned

    path = embeddings_file(source, embeddings, dataset, encoder, progress)
    E, meta = load_aligned(path, item_ids, embedding_id_col, embedding_col)
    return E, meta.get("encoder", "")


def embeddings_file(source, embeddings=None, dataset=None, encoder=None, progress=True):
    """The embeddings file of a text-aware command: ``embeddings``, or the item texts of a
    packaged dataset or a dataset folder embedded once (:func:`load_embeddings`)."""
    from l3ae.io.dataset_dir import DatasetDir

    if embeddings is not None:
        return embeddings
    if isinstance(source, DatasetDir):
        return dataset_dir_embeddings(source, encoder, progress=progress)
    if dataset is not None:
        from l3ae.embed.pipeline import ensure_dataset_embeddings

        return ensure_dataset_embeddings(dataset, encoder, progress=progress)
    raise ConfigError("this model needs item embeddings: pass --embeddings E.h5 "
                      "(make one with `l3ae embed`)")


@dataclass(frozen=True)
class Catalog:
    """The items a command works on: ``item_ids`` (n,) str — the source's items it keeps, in
    their order, then the cold ones (items of the embeddings without interactions) sorted
    by id; ``E`` (n, d) float32 aligned with them (None for text-free configs);
    the embeddings' ``encoder`` metadata and ``path``."""

    item_ids: list
    E: np.ndarray | None = None
    encoder: object = ""
    path: object = None

    def apply(self, source):
        """(``source`` — Interactions or DatasetDir — over this catalog's items, the number of
        its interactions on items left out). Items are matched by id; cold items get empty
        columns. The source itself when the catalog is its own items."""
        from l3ae.io.dataset_dir import DatasetDir

        if self.item_ids == [str(i) for i in source.item_ids]:
            return source, 0
        if not isinstance(source, DatasetDir):
            return _restrict(source, self.item_ids)
        lost, split, inter = 0, source.split, source.interactions
        if split is not None:
            col, n = _columns(source.item_ids, self.item_ids), len(self.item_ids)
            split = tuple(_restrict_matrix(M, col, n) for M in split)
            lost = sum(M.nnz for M in source.split) - sum(M.nnz for M in split)
        else:
            inter, lost = _restrict(inter, self.item_ids)
        # a cold item's text is in the embeddings already: only its vector is read
        text = dict(zip(source.item_ids, source.texts))
        return replace(source, item_ids=self.item_ids, split=split, interactions=inter,
                       texts=[text.get(i, "") for i in self.item_ids]), lost


def _columns(item_ids, catalog_ids):
    """(len(item_ids),) int64: each item's column in the catalog, −1 where it is left out."""
    pos = {i: k for k, i in enumerate(catalog_ids)}
    return np.array([pos.get(str(i), -1) for i in item_ids], np.int64)


def _restrict(inter, catalog_ids):
    """(Interactions over catalog_ids, the number of events on other items, dropped)."""
    col = _columns(inter.item_ids, catalog_ids)[inter.items]
    keep = col >= 0
    return (replace(inter, users=inter.users[keep], items=col[keep], item_ids=list(catalog_ids)),
            int(len(keep) - keep.sum()))


def _restrict_matrix(M, col, n):
    """M (m, len(col)) binary CSR → (m, n), column j moved to col[j] (dropped where −1)."""
    M = M.tocoo()
    c = col[M.col]
    keep = c >= 0
    return to_csr(M.row[keep], c[keep], (M.shape[0], n), np.float32)


def dataset_dir_embeddings(ds, encoder=None, progress=True):
    """Embeddings file of a dataset folder's item texts, made once under $L3AE_HOME."""
    from l3ae.embed.encoder import read_encoder_config
    from l3ae.embed.packaged import resolve_encoder
    from l3ae.embed.pipeline import dataset_embeddings_path, embed_items

    folder = resolve_encoder(encoder)
    out = dataset_embeddings_path(ds.name, read_encoder_config(folder).name)
    embed_items(ds.item_ids, ds.texts, folder, out, progress=progress, template="dataset-dir")
    return out


@contextmanager
def solver_session(cluster=None, tile=None, **single):
    """The run-time options of the solve for one command, as keyword arguments of
    :func:`l3ae.engine.solve.solve_weights`. ``cluster`` (an address, or "local:N") is connected
    for the length of the ``with``; it runs the solve alone, so options of one machine's
    out-of-core solve (``single``: max_memory, resume, workdir) given beside it are refused."""
    single = {k: v for k, v in single.items() if v}
    if cluster is None:
        yield dict(single, **({"tile": tile} if tile else {}))
        return
    if single:
        flags = ", ".join("--" + k.replace("_", "-") for k in single)
        raise ConfigError(f"{flags}: for a build on this machine; with --cluster the workers "
                          "hold the tiles (their memory: `dask worker --memory-limit`) and a "
                          "lost worker's work is recomputed by Dask")
    from l3ae.engine.cluster import Cluster

    with Cluster(cluster) as c:
        yield {"cluster": c, "tile": tile}


def build(data: Data, cfg: Config, out, foldable=False, progress=None, quiet=False,
          workdir=None, warn=print, cluster=None, tile=None, **solver):
    """Fit ``cfg`` on every interaction of ``data`` and write the model to ``out`` (atomically).

    The model's items are ``cfg.catalog``'s (:meth:`Data.catalog`): a text-aware build adds the
    embeddings' items without interactions (cold: empty columns of X). Said on ``warn``: the
    items (and their interactions) that --catalog embeddings leaves out, and --embeddings given
    to a text-free model, which does not read them.

    workdir : folder of an out-of-core build's tile file ``<out>.tiles.h5`` (default: out's
    folder); kept, and said on ``warn``, when the build is interrupted, for ``resume=True``.
    solver : run-time options of :func:`l3ae.engine.solve.solve_weights` (max_memory, resume).
    cluster, tile : the solve on Dask (:func:`solver_session`), and/or its tile size.
    foldable : keep the state :func:`add_items` needs. Returns (Recommender, X's shape, nnz);
    the Recommender's ``timings_`` also hold "read" (inputs) and "write" (the model file).
    """
    from l3ae.model import Recommender

    t = time.perf_counter()
    source = data.load()
    catalog = data.catalog(source, cfg, progress=not quiet)
    if data.embeddings and not cfg.needs_text:
        warn(f"--embeddings {data.embeddings}: not used, model {cfg.model!r} uses no text "
             "(its items are the interactions')")
    left_out = len(set(map(str, source.item_ids)) - set(catalog.item_ids))
    source, lost = catalog.apply(source)
    X, item_ids = full_matrix(source)
    if left_out:
        warn(f"--catalog embeddings: {left_out} items of the interactions have no vector in "
             f"{catalog.path}; their {lost} interactions are left out")
    E, encoder = catalog.E, catalog.encoder
    read = time.perf_counter() - t
    out = Path(out)
    given_workdir, workdir = workdir, Path(workdir) if workdir else out.parent
    tile_file = workdir / f"{out.name}.tiles.h5"
    try:
        with solver_session(cluster, tile, workdir=given_workdir, **solver) as run:
            if cluster is None:
                run["workdir"] = workdir
            rec = Recommender(cfg).fit(X, E, item_ids=item_ids, progress=progress,
                                       foldable=foldable, tile_name=out.name,
                                       sequences=sequences_of(source), **run)
    except (KeyboardInterrupt, OSError, MemoryError):
        if tile_file.exists():
            warn(f"\nthe tile file {tile_file} is kept: rerun the same command with --resume "
                 "to continue from its last finished tile column")
        raise
    t = time.perf_counter()
    rec.timings_ = dict(rec.timings_, read=read)
    rec.save(out, encoder=encoder)
    rec.timings_["write"] = time.perf_counter() - t
    return rec, X.shape, X.nnz


def add_items(model_path, items_path, out, embeddings=None, id_col=None, sep=None,
              progress=None, warn=print, embedding_id_col=None, embedding_col=None):
    """Fold the items of an item table (new ids, no interactions) into a model built with
    --foldable and write the result to ``out`` atomically; nothing is written on an error.
    Returns (the folded Recommender, the number of items added)."""
    from l3ae.io.readers import load_aligned, read_items
    from l3ae.model import Recommender

    rec = Recommender.load(model_path, foldable=True)
    ids, _ = read_items(items_path, id_col, sep)
    known = set(rec.item_ids_)
    clash = [i for i in ids if i in known]
    if clash:
        held = ("" if rec.config_.catalog == "interactions" else
                f" (built with --catalog {rec.config_.catalog}, it holds every item of its "
                "embeddings, those without interactions too)")
        raise DataFormatError(f"{len(clash)} item ids are already in the model {model_path} "
                              f"(first: {clash[0]!r}){held}; list only new items",
                              path=items_path)
    E = None
    if rec.fold_.E is None:
        if embeddings is not None:
            warn(f"--embeddings ignored: model {rec.config_.model!r} does not use text; the "
                 "new items get zero weights")
    elif embeddings is None:
        raise ConfigError(f"model {rec.config_.model!r} places new items by their text: pass "
                          "--embeddings with their vectors")
    else:
        E, meta = load_aligned(embeddings, ids, embedding_id_col, embedding_col)
        built, theirs = json.loads(rec.encoder_) if rec.encoder_ else {}, meta["encoder"]
        key = next((k for k in ("fingerprint", "name") if built.get(k) and theirs.get(k)), None)
        if key and built[key] != theirs[key]:
            raise DataFormatError(f"embedded by an encoder of {key} {theirs[key]!r}, the model "
                                  f"{model_path} by {built[key]!r}; embed the new items with "
                                  "the model's encoder", path=embeddings)
        if key is None and bool(built.get("imported")) != bool(theirs.get("imported")):
            made = {True: "imported vectors", False: "vectors embedded from texts"}
            warn(f"{embeddings}: {made[bool(theirs.get('imported'))]}, the model "
                 f"{model_path} was built on {made[bool(built.get('imported'))]}: l3ae cannot "
                 "tell whether they come from the same model; their widths agree")
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
    from l3ae.evaluation import Split, apply_regime, loo_split, random_split
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


def evaluate_split(split: Split, cfg: Config, E=None, item_ids=None, ks=None, progress=None,
                   refit=False, **solver):
    """Fit on split.train, score validation and test for all/head/tail(/cold) items.

    refit : fit again on train + validation for the test (each target is then predicted by a
    model trained on everything before it). solver : run-time options of the solve.
    Returns {"validation": {group: {"recall@K" (loo: "hr@K"): …, "ndcg@K": …, "users": …}},
    "test": …, "timings": …, "config": …, "data": …}.
    """
    from l3ae.evaluation import score
    from l3ae.model import Recommender

    def fit(X, which):
        seqs = (split.sequences or {}).get(which)
        return Recommender(cfg).fit(X, E, item_ids=item_ids, progress=progress,
                                    sequences=seqs, **solver)

    rec = fit(split.train, "train")
    timings = dict(rec.timings_)
    weights = None
    if refit:
        again = fit(split.known, "known")
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


def catalog_source(data: Data, configs, quiet=False):
    """(the source of ``data`` over the catalog of ``configs`` without its cold items, the
    embeddings aligned with it or None) for evaluate and tune: a cold item is never a target,
    and ranking it would only move the head/tail cut (ML-1M: the 350 titles no one rated ≥ 4
    took 8e-6 of a --catalog both model's top-20 slots), so their splits are today's; only
    --catalog embeddings changes them, leaving out the items without a vector."""
    source = data.load()
    catalog = data.catalog(source, configs, cold=False, progress=not quiet)
    return catalog.apply(source)[0], catalog.E


def evaluate(data: Data, cfg: Config, regime=None, baseline=None, refit=False, progress=None,
             quiet=False, json_out=None, cluster=None, tile=None):
    """Split ``data`` (``regime``: protocol, seed, train_fraction, cold_items of
    :func:`load_split`), fit ``cfg`` on train and score validation and test
    (:func:`evaluate_split`); ``baseline``: also a preset at its defaults (same topk, prune,
    budget and dtype), under ``result["baseline"]``. ``json_out``: also written there as JSON.
    cluster, tile : where the solve runs (:func:`solver_session`)."""
    bcfg = (Config.from_preset(baseline, topk=cfg.topk, dtype=cfg.dtype,
                               prune=cfg.prune if cfg.topk else None,
                               budget=cfg.budget if cfg.topk else None) if baseline else None)
    source, E = catalog_source(data, [cfg] + ([bcfg] if bcfg else []), quiet)
    split = load_split(source, **(regime or {}))
    with solver_session(cluster, tile) as run:
        res = evaluate_split(split, cfg, E if cfg.needs_text else None,
                             item_ids=source.item_ids, progress=progress, refit=refit, **run)
        if bcfg is not None:
            res["baseline"] = evaluate_split(split, bcfg, E if bcfg.needs_text else None,
                                             item_ids=source.item_ids, refit=refit, **run)
    if json_out:
        with atomic_open(json_out) as fh:
            json.dump(res, fh, indent=2)
    return res


def tune(data: Data, base: Config, grids=(), n_random=0, metric=None, regime=None, out=None,
         json_out=None, progress=None, quiet=False, cluster=None, tile=None, extend=True,
         note=None):
    """Search ``base``'s hyperparameters on the validation split (:mod:`l3ae.tune`): the
    preset's grid (:func:`l3ae.tune.default_grid`) or ``grids`` (["reg_x=100,300", ...]), plus
    ``n_random`` random points, widened while the best sits on an edge (``extend``; rounds and
    edges told to ``note(line)``). Writes the best config to ``out`` and the search (the grid
    searched, its rounds, every point) to ``json_out`` (JSON, atomically). Returns
    :func:`l3ae.tune.search`'s dict (refused points keep metrics None and their "error") with
    "metric". cluster, tile : where the factorizations run (:func:`solver_session`)."""
    from l3ae import tune as tuning

    regime = regime or {}
    ordered = regime.get("protocol") == "loo"  # leave-one-out splits keep the order (ages)
    grid = (tuning.parse_grid(grids) if grids
            else tuning.default_grid(base.model, ordered=ordered))
    names = tuning.grid_names(grid)
    configs = tuning.grid_configs(base, grid)
    if n_random:
        configs += tuning.random_configs(base, names, n_random, regime.get("seed", 0))
    source, E = catalog_source(data, configs, quiet)
    split = load_split(source, **regime)
    metric = tuning.check_metric(metric, split)
    ks = (int(metric.split("@")[1]),)
    with solver_session(cluster, tile) as run:
        found = tuning.search(base, configs, names, split.train,
                              tuning.validation_scorer(split, ks), metric, extend=extend,
                              note=note, E=E, progress=progress, solver=run,
                              sequences=(split.sequences or {}).get("train"))
    if out:
        with atomic_open(out) as fh:
            json.dump(found["best"]["config"].to_dict(), fh, indent=2)
    if json_out:
        with atomic_open(json_out) as fh:
            json.dump({"metric": metric, "grid": found["grid"], "rounds": found["rounds"],
                       "edges": found["edges"],
                       "points": [{"config": r["config"].to_dict(), "metrics": r["metrics"],
                                   "seconds": r["seconds"], "shared": r["shared"],
                                   "round": r["round"],
                                   **({"error": r["error"]} if "error" in r else {})}
                                  for r in found["results"]]}, fh, indent=2)
    return {**found, "metric": metric}


def embed(out, items=None, dataset=None, id_col=None, sep=None, template=None,
          encoder="minilm", batch_size=64, threads=None, progress=True, import_file=None,
          embedding_col=None):
    """Embed the texts of an item table (or a packaged dataset's items) into the embeddings
    file ``out``, incrementally (:func:`l3ae.embed.pipeline.embed_items`); ``template``:
    "{column}" fields, default every column but the id (a dataset's own template). Returns
    embed_items' stats. ``import_file``: instead, convert vectors made elsewhere (any layout,
    ``id_col`` / ``embedding_col`` naming its columns) into that layout
    (:func:`l3ae.io.readers.import_vectors`; returns its stats)."""
    from l3ae.embed.pipeline import default_template, embed_items, render_texts

    if sum(x is not None for x in (items, dataset, import_file)) != 1:
        raise ConfigError("give exactly one of --items PATH, --dataset NAME or --import FILE")
    if import_file is not None:
        from l3ae.io.readers import import_vectors

        return import_vectors(import_file, out, id_col=id_col, col=embedding_col)
    if dataset is not None:
        ids, columns = datasets.load_items(dataset)
        template, where = template or datasets.DEFAULT_TEMPLATE, dataset
    else:
        from l3ae.io.readers import id_column, read_items

        ids, columns = read_items(items, id_col=id_col, sep=sep)
        template, where = template or default_template(columns, id_column(columns, id_col)), items
    texts = render_texts(columns, template, path=where)
    return embed_items(ids, texts, encoder, out, batch_size=batch_size, progress=progress,
                       template=template, threads=threads)


def info(model_path):
    """What a model file holds: size and composition (cold items: without interactions),
    config (its catalog too), timings (a JSON-able dict)."""
    from l3ae.io.model_file import read_model

    d = read_model(model_path)
    B, n = d["B"], len(d["item_ids"])
    per_row = np.diff(B.indptr) if sp.issparse(B) else np.full(n, n)
    nnz = int(per_row.sum())
    return {
        "items": n, "cold items": int(np.sum(d["popularity"] == 0)),
        "weights": nnz, "storage": "csr" if sp.issparse(B) else "dense",
        "weights per item": {"min": int(per_row.min()) if n else 0,
                             "median": float(np.median(per_row)) if n else 0.0,
                             "max": int(per_row.max()) if n else 0},
        "of dense": nnz / n ** 2 if n else 0.0,
        "file bytes": os.path.getsize(model_path),
        "dense float32 bytes": 4 * n * n,
        "foldable": d["foldable"], "config": d["config"], "timings": d["timings"],
        "l3ae-version": d["l3ae-version"], "input-sha256": d["input-sha256"]}


def recommend(model_path, interactions, users=None, N=20, out=None, **options):
    """Top-N lists for the users of an interactions file — every user, streamed in chunks, or
    ``users`` in that order — written atomically to ``out`` or to stdout. Options and behaviour:
    :func:`l3ae.batch.recommend_batch`. Returns the number of users written."""
    from l3ae.batch import recommend_batch

    return recommend_batch(model_path, interactions, users, N, out, **options)
