"""Presets as data: every model of the family is one row of :data:`PRESETS` for one closed form.

A preset names a *form* and the defaults it sets; every other knob keeps its neutral value.

| preset     | form       | Λ                      | λ_E | ξ   | diag(B)       |
| lae        | solve      | λ_X                    | 0   | 1   | ≤ (never binds) |
| ease       | solve      | λ_X                    | 0   | 0   | =             |
| dlae/edlae | solve      | λ_X + p/(1−p)·diag(G)  | 0   | 1/0 | ≤ / =         |
| rlae/rdlae | solve      | λ_X (+ dropout)        | 0   | ξ   | ≤             |
| l3ae       | solve      | λ_X (may be < 0)       | λ_E | 0   | = (≤ when ξ > 0) |
| text       | text       | B = C (phase 1 alone)                                |
| collective | collective | EASE on [X; αFᵀ]: G + α²EEᵀ (L3AE paper, Table 3)   |
| additive   | additive   | (1−α)·B + α·C  (L3AE paper, Table 3)                 |
| slist      | slist      | λ_X, on α XᵀX + (1−α) SᵀS; right side α XᵀX + (1−α) SᵀT (SLIST) |

Presets only choose defaults: ``ease`` with ``reg_e > 0`` is L3AE's closed form at ξ = 0, ``l3ae``
with ``xi > 0`` is relaxed. :data:`KNOBS` says where each knob enters the closed form; a knob
given where it does not enter (``xi`` of ``text``, ``pull_power`` of a uniform pull, ``alpha``
outside the fusions) is refused, never dropped, and a resolved Config records exactly what is
built: knobs that do not enter keep their neutral value (``None`` for reg_f and pull_power).
"""

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import scipy.sparse as sp

from l3ae.engine.sequences import TARGETS, slist_inputs
from l3ae.errors import ConfigError

# preset: (form, defaults). Forms: "solve" = the generalized closed form (DESIGN §2); "text" =
# B = C; "collective" / "additive" = the L3AE paper's fusion baselines (weight α).
PRESETS = {
    "lae": ("solve", dict(reg_x=500.0, xi=1.0)),
    "ease": ("solve", dict(reg_x=500.0)),
    "dlae": ("solve", dict(reg_x=30.0, dropout=0.3, xi=1.0)),
    "edlae": ("solve", dict(reg_x=30.0, dropout=0.3)),
    "rlae": ("solve", dict(reg_x=500.0, xi=0.1)),
    "rdlae": ("solve", dict(reg_x=30.0, dropout=0.3, xi=0.1)),
    # tuned on MovieLens-1M's validation split (README); the paper's Amazon optimum is
    # λ_X = −100, λ_E = 150: sparser data wants a smaller total ridge
    "l3ae": ("solve", dict(reg_x=-100.0, reg_e=600.0, reg_f=3.0)),
    "text": ("text", dict(reg_f=3.0)),
    "collective": ("collective", dict(reg_x=300.0, alpha=1.0)),
    "additive": ("additive", dict(reg_x=300.0, reg_f=1.0, alpha=0.1)),
    # SLIST (WWW 2021) on ordered histories: similarity (X, weight α) and transitions (S → T,
    # l3ae.engine.sequences); the relaxed bound of SLIST's code; λ and α selected on FAERec's
    # validation splits (bench/results/faerec-slist.md)
    "slist": ("slist", dict(reg_x=100.0, alpha=0.5, window=5, decay=0.5, targets="next",
                            xi=0.1)),
}

# knob: (its flag's meaning, when it enters the closed form). Checked in this order: a later
# knob's condition sees the earlier knobs resolved.
KNOBS = {
    "reg_x": ("the ridge λ_X of phase 2", lambda c: not c.c_alone),
    "dropout": ("the dropout ridge p/(1−p)·diag(G)", lambda c: not c.c_alone),
    "xi": ("the bound ξ on diag(B)", lambda c: not c.c_alone),
    "reg_e": ("the text pull λ_E", lambda c: not c.c_alone),
    "alpha": ("the weight α of the fusions and of slist",
              lambda c: c.form in ("collective", "additive", "slist")),
    "pull": ("the per-item weights w of the text pull λ_E", lambda c: c.reg_e != 0),
    "pull_power": ("the exponent of the adaptive pull",
                   lambda c: c.reg_e != 0 and c.pull == "adaptive"),
    "reg_f": ("the ridge λ_F of phase 1 (the semantic C)", lambda c: c.uses_c),
    "catalog": ("a catalog taken from the embeddings' items", lambda c: c.needs_text),
    "prune": ("how the --topk·n weights are chosen", lambda c: c.topk != 0),
    "budget": ("how --topk is shared out among the rows",
               lambda c: c.topk != 0 and c.prune == "row"),
    "window": ("the prefix window of slist's transitions", lambda c: c.transitions),
    "decay": ("the position decay of slist's transitions", lambda c: c.transitions),
    "targets": ("what follows a prefix in slist's transitions", lambda c: c.transitions),
}
# the value of a knob that does not enter, and the default of one that enters unset
NEUTRAL = {"reg_x": 0.0, "dropout": 0.0, "xi": 0.0, "reg_e": 0.0, "alpha": 0.0,
           "pull": "uniform", "pull_power": None, "reg_f": None, "prune": "global", "budget": 0.0,
           "window": 0, "decay": 1.0, "targets": "next", "catalog": "interactions"}
PRUNE = ("global", "row")  # how a pruned B's weights are chosen (l3ae.engine.prune)
AUTO_TOPK = 500  # the weights a row keeps under --topk auto (n >= 4,000 items)
UNSET = {"reg_f": 1.0, "pull_power": 0.5, "catalog": "both"}
# config files of l3ae 0.1 recorded these defaults for knobs that did not enter the model:
# reset where they do not enter, instead of refused (any other value of such a knob is)
LEGACY_DEFAULTS = {"reg_f": 1.0, "pull_power": 0.5}
# the items of a build from files (l3ae.api.Catalog): the interactions' items, the embeddings'
# items (interactions on other items dropped), or both (the embeddings' other items are cold)
CATALOGS = ("interactions", "embeddings", "both")


@dataclass(frozen=True)
class Config:
    """Every hyperparameter of a build (see :data:`PRESETS` and :data:`KNOBS`)."""

    model: str = "l3ae"
    reg_x: float = 0.0
    reg_e: float = 0.0
    reg_f: float | None = None
    dropout: float = 0.0
    xi: float = 0.0
    pull: str = "uniform"
    pull_power: float | None = None
    alpha: float = 0.0
    # weights kept per item on average; 0 keeps B dense; "auto": AUTO_TOPK, or dense where that
    # would not make B at least 4× smaller (:meth:`topk_for`)
    topk: int | str = "auto"
    # "global": the topk·n largest |B_ij| of B, at most 2·topk a row; "row": each row its own
    prune: str = "global"
    # (prune "row") a pruned row i keeps about topk·n·(1 + c_i)^budget / Σ(1 + c)^budget weights (c: train
    # counts; 0: topk each): see l3ae.engine.prune and bench/results/compact.md
    budget: float = 0.0
    # slist: a prefix holds its last `window` events, the one k steps back weighted decay**k;
    # targets "next" (the next event) or "following" (the next `window`, weighted decay**j)
    window: int = 0
    decay: float = 1.0
    targets: str = "next"
    # the items a build from files holds (CATALOGS; unset: "both" where text enters, else the
    # interactions'): a text-aware model recommends items without interactions from their
    # text alone (DESIGN §2, Scoring). Recommender.fit takes X's columns as the catalog given.
    catalog: str | None = None
    dtype: str = "float32"
    # scoring: a history item of age t (0 = the most recent) weighs recency**t; ordered
    # histories only (sequence files), 1 = every item alike
    recency: float = 1.0
    # popularity compensation: column j of B times (1 + c_j)^-debias, c = train counts
    debias: float = 0.0

    def __post_init__(self):
        for name in ("window", "topk"):  # from a grid or JSON
            v = getattr(self, name)
            if isinstance(v, float) and v.is_integer():
                object.__setattr__(self, name, int(v))

    def topk_for(self, n):
        """The weights a row keeps (0: dense) in a build on n items: ``topk``, or for "auto"
        AUTO_TOPK where a pruned B (8 bytes a weight) is at most a quarter of a dense float32
        one (n >= 8·AUTO_TOPK) and dense below: on a small catalog pruning saves little and
        costs tail items (bench/results/compact.md)."""
        if self.topk != "auto":
            return self.topk
        return AUTO_TOPK if n >= 8 * AUTO_TOPK else 0

    def for_items(self, n):
        """This config with ``topk`` as a build on n items resolves it (what a model records)."""
        k = self.topk_for(n)
        values = {**self.to_dict(), "topk": k}
        return self if k == self.topk else Config.from_preset(values.pop("model"), strict=(),
                                                              **values)

    @classmethod
    def from_preset(cls, model, strict=None, **overrides):
        """The preset's defaults, then every override that is not None; refused where an
        override does not enter the closed form (``strict``: only these names; the others are
        reset)."""
        if model not in PRESETS:
            raise ConfigError(f"unknown model {model!r}; choose from {', '.join(PRESETS)}")
        unknown = set(overrides) - {f.name for f in fields(cls)} - {"model"}
        if unknown:
            raise ConfigError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None and k != "model"}
        cfg = cls(model=model, **{**PRESETS[model][1], **given})
        return cfg.resolve(strict=given if strict is None else strict)

    def override(self, **params):
        """This config with ``params`` (None: keep) laid over it; only ``params`` are refused
        where they do not enter (a knob of this config that stops entering is reset)."""
        given = {k: v for k, v in params.items() if v is not None}
        kept = {k: v for k, v in self.to_dict().items() if v is not None and k != "model"}
        return Config.from_preset(self.model, strict=set(given), **{**kept, **given})

    @classmethod
    def from_dict(cls, values):
        """A Config as recorded in a model file or a config file, knobs that do not enter reset
        (older files recorded every knob)."""
        values = dict(values)
        if "topk" not in values:
            values["topk"] = 500  # files before "auto" recorded their topk (500 by default)
        if "prune" not in values and values["topk"]:
            values["prune"] = "row"  # files before the global selection pruned each row
        if "budget" not in values and values.get("model") != "l3ae":
            values["reg_e"] = 0.0  # l3ae 0.1 recorded reg_e for every preset, used it for l3ae
        values.setdefault("catalog", "interactions")  # files before the knob: no cold items
        return cls(**values).resolve(strict=())

    def resolve(self, strict=None):
        """This config with knobs that do not enter at their neutral value and unset ones at
        their default, checked. ``strict``: the names whose non-neutral value is refused where
        it does not enter (None: every name)."""
        cfg = self
        for name, (what, enters) in KNOBS.items():
            value = getattr(cfg, name)
            if enters(cfg):
                if value is None:
                    cfg = replace(cfg, **{name: UNSET[name]})
            elif value != NEUTRAL[name]:
                if value is not None and (strict is None or name in strict):  # None: unset
                    raise ConfigError(f"--{name.replace('_', '-')} {value}: {what} does not "
                                      f"enter {cfg.describe(name)}; drop it{_hint(cfg, name)}")
                cfg = replace(cfg, **{name: NEUTRAL[name]})
        cfg.check()
        return cfg

    def check(self):
        if self.model not in PRESETS:
            raise ConfigError(f"unknown model {self.model!r}; choose from {', '.join(PRESETS)}")
        if self.pull not in ("uniform", "adaptive"):
            raise ConfigError(f"pull must be 'uniform' or 'adaptive', got {self.pull!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.topk != "auto" and not (isinstance(self.topk, int) and self.topk >= 0):
            raise ConfigError(f"topk must be an integer >= 0 (0 keeps B dense) or 'auto', got "
                              f"{self.topk!r}")
        for name in ("reg_x", "reg_e", "reg_f", "alpha", "pull_power"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.xi >= 0:
            raise ConfigError(f"xi must be >= 0, got {self.xi}")
        if self.form == "additive" and not 0 <= self.alpha <= 1:
            raise ConfigError(f"the additive fusion's alpha must be in [0, 1], got {self.alpha}")
        if not 0 < self.recency <= 1:
            raise ConfigError(f"recency must be in (0, 1], got {self.recency}")
        if not self.debias >= 0:
            raise ConfigError(f"debias must be >= 0, got {self.debias}")
        if self.catalog is not None and self.catalog not in CATALOGS:
            raise ConfigError(f"catalog must be one of {', '.join(CATALOGS)}, got "
                              f"{self.catalog!r}")
        if self.prune not in PRUNE:
            raise ConfigError(f"prune must be one of {', '.join(PRUNE)}, got {self.prune!r}")
        if not 0 <= self.budget <= 4:
            raise ConfigError(f"budget must be in [0, 4], got {self.budget}")
        if self.form == "slist" and not 0 <= self.alpha <= 1:
            raise ConfigError(f"slist's alpha must be in [0, 1], got {self.alpha}")
        if self.transitions:
            if not (float(self.window).is_integer() and self.window >= 1):
                raise ConfigError(f"window must be an integer >= 1, got {self.window}")
            if not 0 < self.decay <= 1:
                raise ConfigError(f"decay must be in (0, 1], got {self.decay}")
            if self.targets not in TARGETS:
                raise ConfigError(f"targets must be one of {', '.join(TARGETS)}, got "
                                  f"{self.targets!r}")

    @property
    def form(self):
        return PRESETS[self.model][0]

    @property
    def transitions(self):
        """Whether B learns from transitions in ordered histories (slist with α < 1; α = 1 is
        SLIS, EASE's objective, which needs no order)."""
        return self.form == "slist" and self.alpha != 1

    @property
    def c_alone(self):
        """Whether B is the semantic C alone: the text preset, or the additive fusion at α = 1
        (phase 2 then has no weight, so its knobs do not enter and it is not solved)."""
        return self.form == "text" or (self.form == "additive" and self.alpha == 1)

    @property
    def uses_c(self):
        """Whether B involves the semantic C (phase 1): text, the additive fusion, or λ_E ≠ 0."""
        return (self.form == "text" or self.reg_e != 0
                or (self.form == "additive" and self.alpha != 0))

    @property
    def needs_text(self):
        """Whether the build needs item embeddings (C, or the collective fusion's α²EEᵀ)."""
        return self.uses_c or (self.form == "collective" and self.alpha != 0)

    def describe(self, knob=None):
        """The model as an error message names it (``knob``: the one being refused)."""
        if self.form == "text":
            return f"model {self.model!r} (B = C, phase 1 alone)"
        if self.c_alone:
            return f"model {self.model!r} with alpha 1 (B = C, phase 1 alone)"
        if knob == "reg_f" and self.form == "additive" and self.alpha == 0:
            return f"model {self.model!r} with alpha 0 (no text term)"
        if knob in ("pull", "pull_power", "reg_f") and self.reg_e == 0:
            return f"model {self.model!r} without a text pull (reg-e 0)"
        if knob in ("window", "decay", "targets") and self.form == "slist":
            return f"model {self.model!r} with alpha 1 (SLIS: no transitions)"
        if knob in ("prune", "budget") and self.topk == 0:
            return "a dense B (--topk 0)"
        if knob == "catalog":
            return (f"model {self.model!r}, which uses no text (an item without interactions "
                    "gets zero weights)")
        if knob == "budget" and self.prune != "row":
            return f"the {self.prune} selection (--prune {self.prune})"
        return f"model {self.model!r}"

    def replace(self, **kw):
        return replace(self, **kw)

    def to_dict(self):
        return asdict(self)


def _hint(cfg, name):
    if name == "pull_power":
        return " (or add --pull adaptive)" if cfg.reg_e else " (or give --reg-e)"
    if name in ("pull", "reg_f") and cfg.form == "solve":
        return " (or give --reg-e, the pull towards C)"
    if name == "alpha":
        return " (or use --model collective, additive or slist)"
    if name == "catalog":
        return (" (or give --alpha above 0)" if cfg.form in ("collective", "additive")
                else " (or give --reg-e, the pull towards C)")
    if name in ("window", "decay", "targets"):
        return " (or give --alpha below 1)" if cfg.form == "slist" else " (or use --model slist)"
    if name in ("prune", "budget") and cfg.topk == 0:
        return " (or give --topk K)"
    if name == "budget":
        return " (or give --prune row)"
    return ""


@dataclass(frozen=True)
class Terms:
    """What the closed form of a Config sees (DESIGN §2): a = Λ + λ_E·w, Λ = λ_X [+ dropout
    term]; collective/additive: the fusions' α (0 when the form is another). w : (n,) float64."""

    reg_x: float
    reg_e: float
    w: np.ndarray
    dropout: float
    collective: float
    xi: float
    reg_f: float | None
    additive: float
    order: tuple | None = None  # slist: (α, window, decay, targets) of X̃ and N

    def factor(self):
        """Keyword arguments of :func:`l3ae.engine.solve.factorize` (what P depends on)."""
        return dict(reg_x=self.reg_x, reg_e=self.reg_e, w=self.w, dropout=self.dropout,
                    collective=self.collective)

    def weights(self):
        """Keyword arguments of :func:`l3ae.engine.solve.weights_from_inverse`."""
        return dict(reg_e=self.reg_e, w=self.w, xi=self.xi, reg_f=self.reg_f,
                    additive=self.additive)

    def solve(self):
        """Keyword arguments of :func:`l3ae.engine.solve.solve_weights` (both of the above)."""
        return {**self.factor(), **self.weights()}

    def key(self):
        """Hashable: terms with equal keys share one P = (G + Dg(a))⁻¹."""
        if np.all(self.w == 1.0):  # a = Λ + λ_E: only the sum enters
            return (self.dropout, self.collective, self.order,
                    round(self.reg_x + self.reg_e, 9))
        return (self.dropout, self.collective, self.order, self.reg_x, self.reg_e,
                hash(self.w.tobytes()))

    def restrict(self, active):
        """The terms of the sub-problem on ``active`` items."""
        return replace(self, w=self.w[active])


def terms(cfg: Config, popularity) -> Terms:
    """The solver's view of ``cfg`` on items of train counts ``popularity`` (n,)."""
    if cfg.c_alone:
        raise ConfigError(f"{cfg.describe()} has no phase 2")
    collective, additive = fusion(cfg)
    order = ((float(cfg.alpha), int(cfg.window), float(cfg.decay), cfg.targets)
             if cfg.transitions else None)
    return Terms(float(cfg.reg_x), float(cfg.reg_e),
                 pull_weights(popularity, cfg.pull, cfg.pull_power), float(cfg.dropout),
                 collective, float(cfg.xi), cfg.reg_f, additive, order)


def solve_inputs(cfg: Config, X, sequences=None, active=None):
    """(the matrix whose Gram the solve factors, N (k, k) CSR or None) of ``cfg`` on X (m, n)
    CSR, restricted to ``active`` items: X and None, or slist's X̃ and N
    (:func:`l3ae.engine.sequences.slist_inputs`) from ``sequences`` (indptr, items)."""
    X, N = sp.csr_matrix(X), None
    if cfg.transitions:
        if sequences is None:
            raise ConfigError(f"model {cfg.model!r} learns from the order of events: give "
                              "ordered histories (--interactions FILE --format sequences; to "
                              "evaluate or tune, --protocol loo)")
        indptr, items = sequences
        m, n = X.shape
        if (len(indptr) != m + 1 or indptr[-1] != len(items)
                or (len(items) and not 0 <= items.min() <= items.max() < n)):
            raise ConfigError(f"the sequences ({len(indptr) - 1} users, {len(items)} events) "
                              f"are not of X ({m} users × {n} items): give X's own events "
                              "in time order")
        X, N = slist_inputs(X, sequences, cfg.alpha, cfg.window, cfg.decay, cfg.targets)
    if active is not None:
        X = X[:, active]
        N = None if N is None else N[active][:, active].tocsr()
    return X, N


def fusion(cfg: Config):
    """(α of the collective fusion, α of the additive fusion): 0 where the form is another."""
    return {"collective": (float(cfg.alpha), 0.0),
            "additive": (0.0, float(cfg.alpha))}.get(cfg.form, (0.0, 0.0))


def solved_terms(cfg: Config, popularity):
    """(active items (k,) int64 or None for all, the Terms of the solve on them)."""
    active = active_items(cfg, popularity)
    t = terms(cfg, popularity)
    return active, (t if active is None else t.restrict(active))


def row_budgets_of(cfg: Config, popularity, active=None):
    """(n,) int64 weights each row of a pruned build keeps (over ``active`` items when given),
    or None when every row keeps topk or the selection is global (:mod:`l3ae.engine.prune`)."""
    topk = cfg.topk_for(len(popularity))
    if not topk or not cfg.budget or cfg.prune != "row":
        return None
    # here, not at the top: the presets and knobs load for `l3ae --help` without numba
    from l3ae.engine.prune import budget_scale, row_budgets

    c = np.asarray(popularity) if active is None else np.asarray(popularity)[active]
    return row_budgets(c, budget_scale(c, topk, cfg.budget), cfg.budget, len(c) - 1)


def pruning(cfg: Config, popularity, active=None):
    """The solvers' keywords that size B: topk, prune and the row budgets (over ``active``)."""
    return dict(topk=cfg.topk_for(len(popularity)), prune=cfg.prune,
                budgets=row_budgets_of(cfg, popularity, active))


def pull_weights(popularity, pull="uniform", power=0.5):
    """w (n,) float64 > 0: ones, or ((1 + mean c) / (1 + c_i))^power so tail items lean on text."""
    c = np.asarray(popularity, dtype=np.float64)
    if pull == "uniform":
        return np.ones_like(c)
    return ((1.0 + c.mean()) / (1.0 + c)) ** power


def active_items(cfg: Config, popularity):
    """(n_active,) int64 items whose weights need solving, or None for all of them.
    popularity : (n,) interaction counts per item (X's column sums).

    Without item embeddings in the build (no C, no collective α), an item no one interacted
    with is a block of its own in G + Dg(a): its row and column of B are exactly 0 (its
    diagonal too, under both constraints), so the n³ solve runs on the other items only.
    """
    if cfg.needs_text:
        return None
    active = np.flatnonzero(np.asarray(popularity) > 0)
    return active if len(active) < len(popularity) else None


def expand(B, active, n):
    """B (k, k) over ``active`` items → (n, n), zeros elsewhere (CSR stays CSR)."""
    if sp.issparse(B):
        B = sp.csr_matrix(B)
        indptr = np.zeros(n + 1, np.int64)
        indptr[active + 1] = np.diff(B.indptr)
        return sp.csr_matrix((B.data, active[B.indices], np.cumsum(indptr)), shape=(n, n))
    full = np.zeros((n, n), B.dtype)
    full[np.ix_(active, active)] = B
    return full


def debias_columns(B, popularity, beta):
    """B Dg((1 + c)^-β) (a copy; B itself when β = 0): popularity compensation, which lifts
    tail items as targets. B (n, n) CSR or dense; popularity c (n,) train counts."""
    if not beta:
        return B
    f = (1.0 + np.asarray(popularity, np.float64)) ** -beta
    if sp.issparse(B):
        B = sp.csr_matrix(B, copy=True)
        B.data *= f[B.indices].astype(B.dtype)
        return B
    return B * f.astype(B.dtype)[None, :]


def check_solver(cfg: Config, solver):
    """Refuse options of the n×n solve (--cluster, --tile) for a model that has none."""
    given = [k for k in ("cluster", "tile") if solver.get(k)]
    if cfg.c_alone and given:
        raise ConfigError(f"--{given[0]}: model {cfg.model!r} solves no n×n system (B = C, "
                          "phase 1 alone, O(n·d²)); drop it")


def fit_weights(cfg: Config, X, E=None, item_ids=None, progress=None, sequences=None,
                **solver):
    """Weights (B, diag, timings) of the model ``cfg`` on X (m, n) CSR and E (n, d).

    sequences : X's events in time order, (indptr, items) (:mod:`l3ae.engine.sequences`):
    what the order-aware ``slist`` learns from (the others ignore it).
    solver : run-time options of :func:`l3ae.engine.solve.solve_weights` that do not change
    the result (memory budget, work folder, resume, keep_pwe).
    """
    from l3ae.engine.solve import solve_weights, text_weights

    dtype = np.dtype(cfg.dtype)
    if cfg.needs_text and E is None:
        raise ConfigError(f"model {cfg.model!r} needs item embeddings (--embeddings)")
    popularity = np.asarray(X.sum(axis=0)).ravel()
    check_solver(cfg, solver)
    if cfg.c_alone:
        out = text_weights(np.asarray(E, dtype), cfg.reg_f, **pruning(cfg, popularity),
                           progress=progress)
    else:
        active, t = solved_terms(cfg, popularity)
        X, N = solve_inputs(cfg, X, sequences, active)
        if active is not None:
            item_ids = None if item_ids is None else [item_ids[j] for j in active]
        out = solve_weights(X, **t.solve(), transition=N, E=E if cfg.needs_text else None,
                            **pruning(cfg, popularity, active), dtype=dtype,
                            item_ids=item_ids, progress=progress, **solver)
        if active is not None:
            n = len(popularity)
            diag = np.zeros(n, out.diag.dtype)
            diag[active] = out.diag
            out = replace(out, B=expand(out.B, active, n), diag=diag)
    return replace(out, B=debias_columns(out.B, popularity, cfg.debias))
