"""model.h5: the built item–item model, versioned like anndata's elements.

Root attrs: ``encoding-type = "l3ae-model"``, ``encoding-version`` (4; 1 to 3 are read too), ``l3ae-version``, ``config``
(JSON of every hyperparameter), ``timings`` (JSON), ``input-sha256`` (of the training matrix and
item ids), ``encoder`` (JSON or "").
Datasets: ``item_ids`` (UTF-8), ``popularity`` (n,) int64 train counts, ``diag`` (n,) diag(B).
``B``: a group with ``data``/``indices``/``indptr`` and a ``shape`` attr (encoding-type
``csr_matrix``), or an (n, n) dataset (encoding-type ``array``).
``fold`` (optional, models built with ``--foldable``; encoding-type ``l3ae-fold-state``, its own
encoding-version 1): what ``l3ae add-items`` needs (:mod:`l3ae.engine.foldin`): attrs
``pull-mean`` and (pruned models) ``budget-scale``; for text-aware models datasets ``E`` (n, d), ``ete`` (d, d) float64, ``s`` (n,)
float64, and ``pwe`` (n, d) = P·W·E when λ_E ≠ 0. An optional group with its own version keeps
the root at version 1: older readers ignore it, and files without it read as not foldable.
Written to a temporary file and renamed: a crash never leaves half a model under the name.
"""

import hashlib
import json

import h5py
import numpy as np
import scipy.sparse as sp

from l3ae import __version__
from l3ae.errors import DataFormatError
from l3ae.io.atomic import atomic_path

# version 2: the config records ``budget`` (per-row budgets); version 1 files read as equal
# budgets. Version 3: it records ``prune`` (global or per-row selection); files before read as
# "row". Version 4: it records ``catalog`` (a text-aware model may hold items without
# interactions); files before read as "interactions". An older l3ae refuses a newer file with
# its "upgrade l3ae" message (its Config would not know the new key).
FORMAT, VERSION = "l3ae-model", 4
FOLD_FORMAT, FOLD_VERSION, FOLD_ARRAYS = "l3ae-fold-state", 1, ("E", "pwe", "ete", "s")


def input_checksum(X, item_ids):
    """sha256 of a CSR matrix's structure and the item ids: identifies the training catalog."""
    h = hashlib.sha256()
    X = sp.csr_matrix(X)
    for arr in (X.indptr.astype(np.int64), X.indices.astype(np.int64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x1f".join(item_ids).encode())
    return h.hexdigest()


def extend_checksum(checksum, new_ids):
    """The input-sha256 of a model after add-items: sha256 of the old one and the new item ids
    (the training matrix only gained empty columns)."""
    return hashlib.sha256("\x1f".join([checksum, *new_ids]).encode()).hexdigest()


def write_model(path, item_ids, B, diag, popularity, config, timings, checksum="", encoder="",
                fold=None):
    """Write a model file atomically. B : (n, n) CSR or dense ndarray.

    fold : optional dict of the fold state (E, pwe, ete, s: arrays or None; pull_mean: float).
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"encoding-type": FORMAT, "encoding-version": VERSION,
                            "l3ae-version": __version__, "config": json.dumps(config),
                            "timings": json.dumps(timings), "input-sha256": checksum,
                            "encoder": encoder if isinstance(encoder, str) else json.dumps(encoder)})
            f.create_dataset("item_ids", data=np.array(item_ids, dtype=object),
                             dtype=h5py.string_dtype())
            f.create_dataset("popularity", data=np.asarray(popularity, np.int64))
            f.create_dataset("diag", data=np.asarray(diag))
            if sp.issparse(B):
                B = sp.csr_matrix(B)
                g = f.create_group("B")
                g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": 1,
                                "shape": B.shape})
                # uncompressed, int32 columns while n fits: 8 bytes a weight, written and read
                # at disk speed (gzip saved ~40% of the bytes for 0.35 s a write and 0.1 s a
                # read at 4M weights: bench/results/reference.md)
                g.create_dataset("data", data=B.data)
                g.create_dataset("indices", data=B.indices.astype(
                    np.int32 if B.shape[1] < 2 ** 31 else np.int64))
                g.create_dataset("indptr", data=B.indptr.astype(np.int64))
            else:
                d = f.create_dataset("B", data=B, chunks=(min(256, len(B)) or None, len(B))
                                     if len(B) else None)
                d.attrs.update({"encoding-type": "array", "encoding-version": 1})
            if fold is not None:
                g = f.create_group("fold")
                g.attrs.update({"encoding-type": FOLD_FORMAT, "encoding-version": FOLD_VERSION,
                                "pull-mean": float(fold["pull_mean"])})
                if fold.get("budget_scale") is not None:
                    g.attrs["budget-scale"] = float(fold["budget_scale"])
                for name in FOLD_ARRAYS:
                    if fold.get(name) is not None:
                        g.create_dataset(name, data=np.asarray(fold[name]))


def read_model(path):
    """Read a model file into a dict (item_ids, B, diag, popularity, config, timings, ...)."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise DataFormatError("no such model file", path=path) from None
    except OSError as exc:
        raise DataFormatError(f"not an HDF5 model file ({exc})", path=path) from None
    with f:
        kind, ver = f.attrs.get("encoding-type"), f.attrs.get("encoding-version")
        if kind != FORMAT:
            raise DataFormatError(f"not an l3ae model (encoding-type {kind!r})", path=path)
        try:
            newer = int(ver) > VERSION
            readable = 1 <= int(ver) <= VERSION
        except (TypeError, ValueError):  # absent or not a number: not a file we wrote
            newer = readable = False
        if not readable:
            raise DataFormatError(
                f"model format version {ver} is not readable by this l3ae ({__version__} reads "
                f"version {'1 to ' if VERSION > 1 else ''}{VERSION}); "
                + ("upgrade l3ae or rebuild the model" if newer
                   else "rebuild the model with `l3ae build`"), path=path)
        try:
            g = f["B"]
            if g.attrs.get("encoding-type") == "csr_matrix":
                B = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]),
                                  shape=tuple(g.attrs["shape"]))
            else:
                B = g[()]
            out = {
                "item_ids": [s.decode() if isinstance(s, bytes) else s for s in f["item_ids"][()]],
                "B": B, "diag": f["diag"][()], "popularity": f["popularity"][()],
                "config": json.loads(f.attrs["config"]), "timings": json.loads(f.attrs["timings"]),
                "input-sha256": f.attrs.get("input-sha256", ""),
                "l3ae-version": f.attrs.get("l3ae-version", ""),
                "encoder": f.attrs.get("encoder", ""),
                "foldable": "fold" in f,
            }
        except KeyError as exc:
            raise DataFormatError(f"model file is missing {exc}", path=path) from None
    n = len(out["item_ids"])
    if out["B"].shape != (n, n):
        raise DataFormatError(f"B is {out['B'].shape} for {n} item ids", path=path)
    return out


def read_fold(path):
    """The fold state of a model file as a dict (E, pwe, ete, s, pull_mean).

    Raises DataFormatError when the model was built without ``--foldable`` or the state is of a
    newer version or damaged.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"not an HDF5 model file ({exc})", path=path) from None
    with f:
        if "fold" not in f:
            raise DataFormatError("this model was built without --foldable, so it holds no "
                                  "fold-in state; rebuild it with `l3ae build --foldable`",
                                  path=path)
        g = f["fold"]
        kind, ver = g.attrs.get("encoding-type"), g.attrs.get("encoding-version")
        if kind != FOLD_FORMAT or ver is None or int(ver) > FOLD_VERSION:
            raise DataFormatError(f"fold state {kind!r} version {ver} is not readable by this "
                                  f"l3ae ({__version__}; reads <= {FOLD_VERSION})", path=path)
        out = {name: g[name][()] if name in g else None for name in FOLD_ARRAYS}
        out["pull_mean"] = float(g.attrs["pull-mean"])
        scale = g.attrs.get("budget-scale")  # absent: topk per row (files before budgets)
        out["budget_scale"] = None if scale is None else float(scale)
        n = len(f["item_ids"])
    for name in ("E", "pwe", "s"):
        if out[name] is not None and len(out[name]) != n:
            raise DataFormatError(f"fold state {name} has {len(out[name])} rows for {n} items",
                                  path=path)
    return out
