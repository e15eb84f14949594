"""Dataset folders with item text, in the two layouts of ``../shared/datasets`` (bench and CI).

Layout "table": ``interactions.tsv`` (user_id, item_id[, ...]) + ``items.tsv`` (item_id, title, ...)
— e.g. amazon18-games-16k. Layout "split": ``trn_mat.npz``, ``val_mat.npz``, ``tst_mat.npz``
(users × items CSR, the L3AE/RLMRec code's own split) + ``diverse_item_profile_0.json`` (JSON lines
``{"item_id": i, "profile": ...}``, ids in matrix column order) — e.g. easyrec-amazon18/games.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from l3ae.errors import DataFormatError
from l3ae.io.interactions import Interactions
from l3ae.io.readers import read_interactions, read_items

SPLIT_FILES = ("trn_mat.npz", "val_mat.npz", "tst_mat.npz")
PROFILE_FILE = "diverse_item_profile_0.json"


@dataclass
class DatasetDir:
    """item_ids (n,) str; texts (n,) str; either ``interactions`` or a given ``split``
    (train, validation, test: (m, n) binary CSR float32)."""

    name: str
    path: Path
    item_ids: list
    texts: list
    interactions: Interactions | None = None
    split: tuple | None = None


def _read_profiles(path, n):
    texts = [""] * n
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                i = int(rec["item_id"])
                texts[i] = str(rec.get("profile") or "")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise DataFormatError(f"bad profile line ({exc})", path=path, line=lineno) from None
    return texts


def _binary(M):
    M = sp.csr_matrix(M, dtype=np.float32)
    M.sum_duplicates()
    M.data[:] = 1
    M.indptr, M.indices = M.indptr.astype(np.int64), M.indices.astype(np.int64)
    return M


def load_dataset_dir(path) -> DatasetDir:
    """Read a dataset folder of either layout."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError("not a folder", path=path)
    name = path.name
    if all((path / f).is_file() for f in SPLIT_FILES):
        mats = [_binary(sp.load_npz(path / f)) for f in SPLIT_FILES]
        n = mats[0].shape[1]
        if any(m.shape != mats[0].shape for m in mats):
            raise DataFormatError(f"split matrices differ in shape: {[m.shape for m in mats]}",
                                  path=path)
        prof = path / PROFILE_FILE
        if not prof.is_file():
            raise DataFormatError(f"missing {PROFILE_FILE} (item texts)", path=path)
        texts = _read_profiles(prof, n)
        return DatasetDir(f"{path.parent.name}-{name}", path, [str(i) for i in range(n)], texts,
                          split=tuple(mats))
    inter, items = path / "interactions.tsv", path / "items.tsv"
    if inter.is_file() and items.is_file():
        ids, cols = read_items(items)
        text_col = "title" if "title" in cols else [c for c in cols if c != "item_id"][0]
        it = read_interactions(inter)
        pos = {i: k for k, i in enumerate(ids)}
        missing = [i for i in it.item_ids if i not in pos]
        if missing:
            raise DataFormatError(f"{len(missing)} interaction items have no row in items.tsv "
                                  f"(first: {missing[:3]})", path=inter)
        return DatasetDir(name, path, ids, cols[text_col], interactions=it)
    raise DataFormatError(f"expected {', '.join(SPLIT_FILES)} + {PROFILE_FILE}, or "
                          "interactions.tsv + items.tsv", path=path)
