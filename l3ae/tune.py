"""Hyperparameter search on the validation split, reusing work between points.

What is reused: P = (G + Dg(a))⁻¹ depends on the hyperparameters only through the total ridge
a = Λ + λ_E·w (and α of the collective baseline), so every point with the same a — EASE/LAE/
RLAE/additive at λ, L3AE at λ_X + λ_E = λ for any λ_E, ξ, λ_F — shares one factorization; points
are grouped by a and each P is computed once and dropped. Phase 1 is cheap (O(n d²)) and redone.

Grids name Config fields (``reg_x``, ``reg_e``, ``reg_f``, ``dropout``, ``xi``, ``alpha``,
``pull_power``, ``recency``, ``debias``; slist's ``window``, ``decay``, ``targets``) or ``total``
(= λ_X + λ_E: sets reg_x = total − reg_e), which is the parametrization that makes L3AE sweeps
reuse P. Word-valued fields (``targets``, ``pull``, ``dtype``) take words.

Past the edge (:func:`search`): when the best point holds the lowest or highest value tried of
a numeric knob, a later round tries that knob one step further (:func:`widen`), the other knobs
held at the best point, while the best improves (:data:`EXTEND_ROUNDS` rounds at most). A round
that moves only recency or debias rescores the best point's B, kept from the round before.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import fields

import numpy as np

from l3ae.engine.models import (KNOBS, Config, active_items, check_solver, debias_columns, expand,
                                pruning, solve_inputs, solved_terms, terms)
from l3ae.engine.score import topn
from l3ae.engine.solve import factorize, text_weights, weights_from_inverse
from l3ae.errors import ConfigError

# Default grids: each spans the settings of the published papers and of this project's benchmarks
# (bench/quality.py, bench/faerec.py, bench/chain.py) at about 3x the factorizations the grids
# had before the edge-widening rounds (issue 23); a best point on a grid's edge is then widened
# (:func:`search`), so the grids need not reach every extreme. Totals are shared across presets
# so one sweep of several models reuses P. A grid is a dict of knob -> values (every
# combination) or a list of them (their union).
TOTALS = [10.0, 30.0, 100.0, 300.0, 1000.0]
# on ordered histories (--protocol loo) every default grid also scores these (they share B)
ORDERED = {"recency": [1.0, 0.7, 0.4]}
_SLIST = {"xi": [0.0, 0.1], **ORDERED}
GRIDS = {
    "ease": {"reg_x": TOTALS},
    "lae": {"reg_x": TOTALS},
    "rlae": {"reg_x": TOTALS, "xi": [0.05, 0.1, 0.2, 0.5]},
    "edlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5]},
    "dlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5]},
    "rdlae": {"reg_x": [10.0, 100.0], "dropout": [0.1, 0.3, 0.5], "xi": [0.05, 0.2]},
    # the L3AE paper's optimum λ_X = −100, λ_E = 150 is total 50; the preset's, 500
    "l3ae": {"total": TOTALS, "reg_e": [30.0, 100.0, 300.0, 1000.0, 3000.0], "reg_f": [1.0, 10.0]},
    "text": {"reg_f": [0.1, 1.0, 10.0, 100.0]},
    "collective": {"reg_x": TOTALS, "alpha": [0.3, 1.0, 3.0]},
    "additive": {"reg_x": TOTALS, "alpha": [0.05, 0.2, 0.5], "reg_f": [1.0, 10.0]},
    # every (λ, α, window) is a factorization of its own (α = 1: SLIS, EASE's solve, with no
    # window), ξ shares it and recency shares B: 12 factorizations, 3x the grid's before the
    # widening rounds (λ {100, 400} × α {0.5, 1}). SLIST's code defaults to λ 10, α 0.5 and
    # searches α in {0.2, …, 0.8}; FAERec's sets select λ 100, α 0.5, window 5 (the preset,
    # bench/results/faerec-slist.md), the directed chain of bench/chain.py α 0
    "slist": [{"reg_x": [10.0, 100.0, 400.0], "alpha": [0.0, 0.2, 0.5], "window": [3], **_SLIST},
              {"reg_x": [100.0, 400.0], "alpha": [1.0], **_SLIST},
              {"reg_x": [100.0], "alpha": [0.5], "window": [5], **_SLIST}],
}
# log-uniform ranges for random search
RANGES = {"reg_x": (3.0, 3000.0), "total": (3.0, 3000.0), "reg_e": (3.0, 10000.0),
          "reg_f": (0.03, 300.0), "dropout": (0.05, 0.7), "xi": (0.01, 0.8),
          "alpha": (0.01, 3.0), "pull_power": (0.1, 1.0), "recency": (0.3, 1.0), "debias": (0.05, 1.0),
          "decay": (0.1, 1.0)}
# How far a knob's values may be widened: (lowest, highest, lowest excluded, highest excluded).
# Ridges step by the grid's ratio when all its values are > 0, the others by its difference;
# topk (a size, not a fit) and the word-valued knobs are never widened.
INF = float("inf")
LIMITS = {"reg_x": (-INF, INF, True, True), "total": (0.0, INF, True, True),
          "reg_e": (0.0, INF, False, True), "reg_f": (0.0, INF, True, True),
          "dropout": (0.0, 1.0, False, True), "xi": (0.0, 1.0, False, False),
          "alpha": (0.0, 1.0, False, False), "pull_power": (0.0, INF, True, True),
          "recency": (0.0, 1.0, True, False), "debias": (0.0, INF, False, True),
          "decay": (0.0, 1.0, True, False), "window": (1.0, INF, False, True),
          "budget": (0.0, 4.0, False, False)}
RATIO = {"reg_x", "total", "reg_e", "reg_f"}
EXTEND_ROUNDS = 4  # widening rounds after the first, at most

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


def default_grid(model, ordered=False):
    """The preset's grid (a list of dicts), with :data:`ORDERED`'s scoring knobs on ordered
    histories."""
    grids = GRIDS[model] if isinstance(GRIDS[model], list) else [GRIDS[model]]
    return [{**g, **ORDERED} if ordered else dict(g) for g in grids]


def grid_names(grid):
    """The knobs of a grid (dict or list of dicts), in order of appearance."""
    grids = grid if isinstance(grid, list) else [grid]
    return list(dict.fromkeys(n for g in grids for n in g))


def _config(base: Config, point: dict, strict=None) -> Config:
    point = dict(point)
    total = point.pop("total", None)
    cfg = base.replace(**point)
    if total is not None:
        cfg = cfg.replace(reg_x=total - cfg.reg_e)
        point["reg_x"] = cfg.reg_x
    return cfg.resolve(strict=point if strict is None else strict)


def _enters(cfg: Config, name):
    """Whether knob ``name`` (a Config field or "total") enters ``cfg``'s closed form."""
    if name == "total":
        name = "reg_x"
    return KNOBS[name][1](cfg) if name in KNOBS else True


def _value(cfg: Config, name):
    return float(f"{cfg.reg_x + cfg.reg_e:.12g}") if name == "total" else getattr(cfg, name)


def grid_configs(base: Config, grid) -> list:
    """Every combination of the grid's values over ``base`` (a list of grids: their union),
    each distinct config once. A knob is honoured where it enters and reset where another knob
    of the point shuts it out (slist's window at α = 1); one that enters no point is refused."""
    grids = grid if isinstance(grid, list) else [grid]
    known = set(base.to_dict()) | {"total"}
    bad = [n for n in grid_names(grids) if n not in known]
    if bad:
        raise ConfigError(f"unknown grid names {bad}; use Config fields or 'total'")
    points = [dict(zip(g, vals)) for g in grids for vals in itertools.product(*g.values())]
    configs = list(dict.fromkeys(_config(base, p, strict=()) for p in points))
    for name in grid_names(grids):
        if not any(_enters(c, name) for c in configs):
            for p in points:  # refused in the words of the Config
                _config(base, p, strict={"reg_x" if name == "total" else name})
    return configs


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


def sweep(configs, train, score, E=None, progress=None, solver=None, sequences=None,
          known=None, keep=None):
    """Fit every config on ``train`` (m, n) CSR and ``score(B, config) -> dict`` it.

    Returns [{"config", "metrics", "seconds", "shared"}] in the order given; ``shared`` is True
    when the point reused another point's factorization. Points that differ only in recency or
    debias share B itself. A config the solver refuses (e.g. a total ridge <= 0 for
    some item) gets ``metrics=None`` and its reason in ``error``.
    solver : run-time options of the factorizations (``cluster``, ``tile``: see
    :func:`l3ae.engine.solve.factorize`). sequences : train's events in time order (indptr,
    items), for the order-aware slist (:func:`l3ae.engine.models.solve_inputs`).
    known : {solved config: (B, its ``keep`` metric)}, weights to score instead of solving them
    again; with ``keep`` (a metric name) it is left holding the best point's alone, of its own
    and this sweep's (one B more in memory: what a later round of :func:`search` rescores).
    """
    popularity = np.asarray(train.sum(axis=0)).ravel()
    if E is None and any(c.needs_text for c in configs):
        bad = next(c for c in configs if c.needs_text)
        raise ConfigError(f"model {bad.model!r} needs item embeddings")
    for cfg in configs:
        check_solver(cfg, solver or {})
    known = {} if known is None else known
    top = max(known.items(), key=lambda kv: kv[1][1], default=(None, (None, -np.inf)))
    results = [None] * len(configs)
    groups = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(_factorization(cfg, popularity), []).append(i)
    done = 0
    for key, idx in groups.items():
        inv, last = None, (None, None)
        idx.sort(key=lambda i: repr(_solved(configs[i])))  # equal B back to back
        for i in idx:
            cfg = configs[i]
            t = time.perf_counter()
            try:
                shared = inv is not None or _solved(cfg) in known
                if last[0] == _solved(cfg):
                    B = last[1]
                elif _solved(cfg) in known:
                    B = known[_solved(cfg)][0]
                else:
                    B, inv = _weights(cfg, train, popularity, E, inv, solver or {},
                                      sequences)
                last = (_solved(cfg), B)
                metrics = score(debias_columns(B, popularity, cfg.debias), cfg)
                results[i] = {"config": cfg, "metrics": metrics,
                              "seconds": time.perf_counter() - t, "shared": shared}
                if keep and np.nan_to_num(metrics[keep], nan=-1.0) > top[1][1]:
                    top = (_solved(cfg), (B, metrics[keep]))
            except ConfigError as exc:
                results[i] = {"config": cfg, "metrics": None, "error": str(exc),
                              "seconds": time.perf_counter() - t, "shared": False}
            done += 1
            if progress:
                progress("tune", done, len(configs))
        if inv is not None and hasattr(inv.P, "remove"):
            inv.P.remove()  # a tiled P lives in a temporary file, or on the cluster's workers
        del inv
    if keep:
        known.clear()
        if top[0] is not None:
            known[top[0]] = top[1]
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


def widen(name, tried, at, cfg=None):
    """(the value one step past ``at``, "down" or "up") when ``at`` is the lowest or highest of
    ``tried`` (the knob's values searched so far, >= 2 distinct), else None; None too where the
    knob's range (:data:`LIMITS`; alpha of the collective fusion: > 0, unbounded) ends at ``at``.

    The step is the grid's own at that edge: its ratio for ridges on positive values (10, 100 ->
    1), else its difference (0.5, 0.7 -> 0.3); a step past an excluded bound goes halfway to it
    (recency 0.1 -> 0.05), past an included one to the bound (xi 0.9 -> 1)."""
    if name not in LIMITS or len(set(tried)) < 2:
        return None
    tried = sorted(set(tried))
    if at not in (tried[0], tried[-1]):
        return None
    down = at == tried[0]
    near = tried[1] if down else tried[-2]
    collective = cfg is not None and cfg.form == "collective" and name == "alpha"
    lo, hi, lo_out, hi_out = (0.0, INF, True, True) if collective else LIMITS[name]
    new = at * at / near if (name in RATIO or collective) and tried[0] > 0 else 2 * at - near
    bound, out = (lo, lo_out) if down else (hi, hi_out)
    if (new <= bound) if down else (new >= bound):
        new = (at + bound) / 2 if out else bound
    if name == "window":
        new = float(max(round(new), 1))
    new = float(f"{new:.6g}")
    return None if new == at or (down and new > at) or (not down and new < at) else \
        (new, "down" if down else "up")


def edges(top: Config, configs, names):
    """[(knob, "down"|"up", best value, next value)]: the knobs of ``names`` whose value at the
    best config ``top`` is the lowest or highest that ``configs`` tried (where the knob enters)
    and that can widen past it (:func:`widen`)."""
    out = []
    for name in names:
        if name in WORDS or not _enters(top, name):
            continue
        tried = [_value(c, name) for c in configs if _enters(c, name)]
        step = widen(name, tried, _value(top, name), top)
        if step:
            out.append((name, step[1], _value(top, name), step[0]))
    return out


def searched(configs, names):
    """{knob: sorted values} that ``configs`` tried (where the knob enters)."""
    return {n: sorted({_value(c, n) for c in configs if _enters(c, n)}, key=str
                      if n in WORDS else float) for n in names}


def hint(name, direction, at, new, tried):
    """One line telling a user which knob to widen, and how."""
    flag = name.replace("_", "-")
    values = ",".join(f"{v:g}" for v in sorted({*tried, new}))
    return (f"best {flag} {at:g} is the {'lowest' if direction == 'down' else 'highest'} "
            f"tried: widen it {direction}, e.g. --grid {flag}={values}")


def search(base: Config, configs, names, train, score, metric, extend=True, note=None,
           first=None, **sweep_kw):
    """Sweep ``configs`` (the first round), then widen while the best point sits on an edge.

    Each later round takes the best point and moves each knob of ``names`` on whose edge it
    sits one step past it (:func:`edges`), the other knobs held (one new point per knob; they
    share factorizations as any sweep), and stops when a round finds nothing better, nothing
    is on an edge, or after :data:`EXTEND_ROUNDS` rounds. ``extend=False`` runs the first
    round alone. note(line) : where each round and each remaining edge are told (stderr).
    first : the results of ``configs`` from a sweep already run (one over several models, which
    shared their factorizations), taken as the first round. sweep_kw : E, progress, solver,
    sequences of :func:`sweep`.

    Returns {"results" (every point, each with its "round"), "best", "rounds" [{"round",
    "points", "factorizations", "values" (knob -> the values new in that round), "best"}],
    "grid" (knob -> every value searched), "edges" (what is still on an edge: hints)}.
    """
    note = note or (lambda line: None)
    results, rounds, todo = [], [], list(configs)
    known = {}  # the best point's B: a later round that moves only recency or debias rescores it
    for r in range(1, 2 + (EXTEND_ROUNDS if extend else 0)):
        res = (first if r == 1 and first is not None else
               sweep(todo, train, score, known=known, keep=metric if extend else None,
                     **sweep_kw))
        for x in res:
            x["round"] = r
        before = searched([x["config"] for x in results], names)
        results += res
        top = best(results, metric)
        now = searched([x["config"] for x in results], names)
        rounds.append({"round": r, "points": len(res),
                       "factorizations": sum(not x["shared"] for x in res),
                       "values": {n: new for n in names
                                  if (new := [v for v in now[n] if v not in before[n]])},
                       "best": top["metrics"][metric]})
        if r > 1:
            was = rounds[-2]["best"]
            better = top["metrics"][metric] > was
            note(f"round {r}: best {metric} {top['metrics'][metric]:.4f}"
                 + (f" (was {was:.4f})" if better else f", no better than {was:.4f}: stopping"))
            if not better:
                break
        found = edges(top["config"], [x["config"] for x in results], names)
        if not found or not extend or r == 1 + EXTEND_ROUNDS:
            break
        tried = {x["config"] for x in results}
        point = {n: _value(top["config"], n) for n in names if _enters(top["config"], n)}
        todo = [c for c in dict.fromkeys(_config(base, {**point, n: new}, strict=())
                                         for n, _, _, new in found) if c not in tried]
        if not todo:
            break
        note(f"round {r + 1}: the best {metric} {top['metrics'][metric]:.4f} sits on the edge "
             "of the grid: trying " + ", ".join(f"{n.replace('_', '-')} {new:g} ({d})"
                                                for n, d, _, new in found))
    grid = searched([x["config"] for x in results], names)
    left = edges(top["config"], [x["config"] for x in results], names)
    hints = [hint(n, d, at, new, grid[n]) for n, d, at, new in left]
    for line in hints:
        note(line + ("" if not extend else f" (still on the edge after {len(rounds)} rounds)"))
    return {"results": results, "best": top, "rounds": rounds, "grid": grid, "edges": hints}
