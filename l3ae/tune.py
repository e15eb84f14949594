"""Hyperparameter search on the validation split, reusing work between points.

What is reused: P = (G + Dg(a))⁻¹ depends on the hyperparameters only through the total ridge
a = Λ + λ_E·w (and α of the collective baseline), so every point with the same a — EASE/LAE/
RLAE/additive at λ, L3AE at λ_X + λ_E = λ for any λ_E, ξ, λ_F — shares one factorization; points
are grouped by a and each P is computed once and dropped. Phase 1 is cheap (O(n d²)) and redone.

Grids name Config fields (``reg_x``, ``reg_e``, ``reg_f``, ``dropout``, ``xi``, ``alpha``,
``pull_power``, ``recency``, ``debias``; slist's ``window``, ``decay``, ``targets``) or ``total``
(= λ_X + λ_E: sets reg_x = total − reg_e), which is the parametrization that makes L3AE sweeps
reuse P. Word-valued fields (``targets``, ``pull``, ``dtype``) take words.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import fields

import numpy as np

from l3ae.engine.models import (Config, active_items, check_solver, debias_columns, expand,
                                pruning, solve_inputs, solved_terms, terms)
from l3ae.engine.score import topn
from l3ae.engine.solve import factorize, text_weights, weights_from_inverse
from l3ae.errors import ConfigError

# default grids: totals shared across presets so one sweep of several models reuses P
TOTALS = [30.0, 100.0, 300.0, 1000.0]
GRIDS = {
    "ease": {"reg_x": TOTALS},
    "lae": {"reg_x": TOTALS},
    "rlae": {"reg_x": TOTALS, "xi": [0.05, 0.2, 0.5]},
    "edlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5]},
    "dlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5]},
    "rdlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5], "xi": [0.05, 0.2]},
    "l3ae": {"total": TOTALS, "reg_e": [30.0, 100.0, 300.0, 1000.0, 3000.0], "reg_f": [1.0, 10.0]},
    "text": {"reg_f": [0.1, 1.0, 10.0, 100.0]},
    "collective": {"reg_x": TOTALS, "alpha": [0.3, 1.0, 3.0]},
    "additive": {"reg_x": TOTALS, "alpha": [0.05, 0.2, 0.5], "reg_f": [1.0, 10.0]},
    # every (λ, α) is a factorization of its own (α = 1: SLIS, EASE's); ξ and recency share
    # it. bench/results/faerec-slist.md selected λ 100, α 0.5 on FAERec's three sets
    "slist": {"reg_x": [100.0, 400.0], "alpha": [0.5, 1.0], "xi": [0.0, 0.1],
              "recency": [1.0, 0.7, 0.5]},
}
# log-uniform ranges for random search
RANGES = {"reg_x": (3.0, 3000.0), "total": (3.0, 3000.0), "reg_e": (3.0, 10000.0),
          "reg_f": (0.03, 300.0), "dropout": (0.05, 0.7), "xi": (0.01, 0.8),
          "alpha": (0.01, 3.0), "pull_power": (0.1, 1.0), "recency": (0.3, 1.0), "debias": (0.05, 1.0),
          "decay": (0.1, 1.0)}


# Config fields whose values are words (targets=next,following; pull=adaptive)
WORDS = {f.name for f in fields(Config) if f.type in (str, "str")} - {"model"}


def parse_grid(specs):
    """["reg_x=100,300", "xi=0.1", "targets=next"] -> {"reg_x": [100.0, 300.0], "xi": [0.1],
    "targets": ["next"]}."""
    grid = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ConfigError(f"--grid takes NAME=V1,V2,…, got {spec!r}")
        words = [v.strip() for v in values.split(",")]
        if name in WORDS:  # the Config checks them
            grid[name] = words
            continue
        try:
            grid[name] = [float(v) for v in words]
        except ValueError:
            raise ConfigError(f"--grid {spec!r}: values must be numbers") from None
    return grid


def _config(base: Config, point: dict) -> Config:
    point = dict(point)
    total = point.pop("total", None)
    cfg = base.replace(**point)
    if total is not None:
        cfg = cfg.replace(reg_x=total - cfg.reg_e)
        point["reg_x"] = cfg.reg_x
    return cfg.resolve(strict=point)  # a grid knob that does not enter is refused


def grid_configs(base: Config, grid: dict) -> list:
    """Every combination of the grid's values over ``base``."""
    names = list(grid)
    known = set(base.to_dict()) | {"total"}
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown grid names {bad}; use Config fields or 'total'")
    return [_config(base, dict(zip(names, vals)))
            for vals in itertools.product(*(grid[n] for n in names))]


def random_configs(base: Config, names, count, seed=0) -> list:
    """``count`` points drawn log-uniformly from RANGES for the given names."""
    missing = [n for n in names if n not in RANGES]
    if missing:
        raise ConfigError(f"--random has no range for {', '.join(missing)}; known: "
                          f"{', '.join(RANGES)} (or give those knobs by --grid alone)")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        point = {}
        for n in names:
            lo, hi = RANGES[n]
            if n == "alpha" and base.form in ("additive", "slist"):
                hi = 1.0  # a share
            point[n] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        out.append(_config(base, point))
    return out


def validation_scorer(split, ks=(20,)):
    """score(B, cfg) -> {"recall@K" (loo: "hr@K"), "ndcg@K", ..., "tail:hr@K", ...} on
    split.validation, train items masked; groups other than "all" are prefixed "group:"."""
    def score(B, cfg=None):
        history = split.history("validation", cfg.recency if cfg else 1.0)
        top, _ = topn(history, B, N=max(ks), mask=split.train)
        out = {}
        for g, mask in split.groups().items():
            res = split.metrics(top, split.validation, ks, mask)
            out.update({k if g == "all" else f"{g}:{k}": v for k, v in res.items()
                        if k != "users"})
        return out
    return score


def _solved(cfg):
    """The part of a config the solve sees: points equal here share B itself."""
    return cfg.replace(recency=1.0, debias=0.0)


def sweep(configs, train, score, E=None, progress=None, solver=None, sequences=None):
    """Fit every config on ``train`` (m, n) CSR and ``score(B, config) -> dict`` it.

    Returns [{"config", "metrics", "seconds", "shared"}] in the order given; ``shared`` is True
    when the point reused another point's factorization. Points that differ only in recency or
    debias share B itself. A config the solver refuses (e.g. a total ridge <= 0 for
    some item) gets ``metrics=None`` and its reason in ``error``.
    solver : run-time options of the factorizations (``cluster``, ``tile``: see
    :func:`l3ae.engine.solve.factorize`). sequences : train's events in time order (indptr,
    items), for the order-aware slist (:func:`l3ae.engine.models.solve_inputs`).
    """
    popularity = np.asarray(train.sum(axis=0)).ravel()
    if E is None and any(c.needs_text for c in configs):
        bad = next(c for c in configs if c.needs_text)
        raise ConfigError(f"model {bad.model!r} needs item embeddings")
    for cfg in configs:
        check_solver(cfg, solver or {})
    results = [None] * len(configs)
    groups = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(_factorization(cfg, popularity), []).append(i)
    done = 0
    for key, idx in groups.items():
        inv, last = None, (None, None)
        idx.sort(key=lambda i: repr(_solved(configs[i])))  # equal B back to back
        for rank, i in enumerate(idx):
            cfg = configs[i]
            t = time.perf_counter()
            try:
                if last[0] == _solved(cfg):
                    B = last[1]
                else:
                    B, inv = _weights(cfg, train, popularity, E, inv, solver or {},
                                      sequences)
                    last = (_solved(cfg), B)
                metrics = score(debias_columns(B, popularity, cfg.debias), cfg)
                results[i] = {"config": cfg, "metrics": metrics,
                              "seconds": time.perf_counter() - t, "shared": rank > 0}
            except ConfigError as exc:
                results[i] = {"config": cfg, "metrics": None, "error": str(exc),
                              "seconds": time.perf_counter() - t, "shared": False}
            done += 1
            if progress:
                progress("tune", done, len(configs))
        if inv is not None and hasattr(inv.P, "remove"):
            inv.P.remove()  # a tiled P lives in a temporary file, or on the cluster's workers
        del inv
    return results


def _factorization(cfg, popularity):
    """What a point's P depends on: points with equal keys share one factorization."""
    if cfg.c_alone:
        return ("text", cfg.reg_f)
    active = active_items(cfg, popularity)
    return (cfg.dtype, active is None) + terms(cfg, popularity).key()


def _weights(cfg, train, popularity, E, inv, solver, sequences=None):
    """(B (n, n) before debias, the factorization it used): ``inv`` when given, else a new one
    on the items the config solves (:func:`l3ae.engine.models.active_items`)."""
    dtype = np.dtype(cfg.dtype)
    Ed = np.asarray(E, dtype) if cfg.needs_text else None
    if cfg.c_alone:
        return text_weights(Ed, cfg.reg_f, **pruning(cfg, popularity)).B, None
    active, t = solved_terms(cfg, popularity)
    if inv is None:
        X, N = solve_inputs(cfg, train, sequences, active)
        inv = factorize(X, **t.factor(), E=Ed, dtype=dtype, **solver)
        inv.transition = N
    B = weights_from_inverse(inv, **t.weights(), E=Ed, **pruning(cfg, popularity, active)).B
    return (B if active is None else expand(B, active, train.shape[1])), inv


def check_metric(metric, split):
    """The validation metric to select on (default: recall@20, hr@10 for leave-one-out):
    [GROUP:]recall@K / hr@K / ndcg@K, "all:" dropped; ConfigError naming the choices."""
    metric = metric or ("hr@10" if split.protocol == "loo" else "recall@20")
    kinds = ("hr", "ndcg") if split.protocol == "loo" else ("recall", "ndcg")
    group, _, plain = metric.rpartition(":")
    name, _, k = plain.partition("@")
    if name not in kinds or not k.isdigit() or int(k) < 1 or (group or "all") not in split.groups():
        raise ConfigError(
            f"--metric {metric!r}: use [GROUP:]{kinds[0]}@K or [GROUP:]ndcg@K with this "
            f"protocol, GROUP one of {', '.join(g for g in split.groups() if g != 'all')}")
    return metric.removeprefix("all:")


def best(results, metric="recall@20"):
    """The result with the highest validation ``metric`` (first on ties)."""
    results = [r for r in results if r["metrics"] is not None]
    if not results:
        raise ConfigError("no valid configurations to compare")
    if metric not in results[0]["metrics"]:
        raise ConfigError(f"unknown metric {metric!r}; have {sorted(results[0]['metrics'])}")
    return max(results, key=lambda r: np.nan_to_num(r["metrics"][metric], nan=-1.0))
