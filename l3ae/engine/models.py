"""Presets as data: every model of the family is one set of defaults for :func:`solve_weights`.

| preset     | Λ                        | λ_E | ξ   | constraint  |
| lae        | λ_X                      | 0   | 1   | ≤ (never binds)|
| ease       | λ_X                      | 0   | 0   | =           |
| dlae/edlae | λ_X + p/(1−p)·diag(G)    | 0   | 1/0 | ≤ / =       |
| rlae/rdlae | λ_X (+ dropout)          | 0   | ξ   | ≤           |
| l3ae       | λ_X (may be < 0)         | λ_E | 0   | = (≤ when ξ > 0) |
| text       | B = C (phase 1 alone)                                |
| collective | EASE on [X; αFᵀ]  (L3AE paper, Table 3)              |
| additive   | (1−α)·EASE(X) + α·C  (L3AE paper, Table 3)           |

Any preset accepts any knob (``l3ae`` with ``xi > 0``, ``dropout > 0``, ``pull="adaptive"``):
presets only choose defaults.
"""

import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import scipy.sparse as sp

from l3ae.engine.solve import solve_weights, text_weights
from l3ae.errors import ConfigError

PRESETS = {
    "lae": dict(reg_x=500.0, xi=1.0),
    "ease": dict(reg_x=500.0),
    "dlae": dict(reg_x=30.0, dropout=0.3, xi=1.0),
    "edlae": dict(reg_x=30.0, dropout=0.3),
    "rlae": dict(reg_x=500.0, xi=0.1),
    "rdlae": dict(reg_x=30.0, dropout=0.3, xi=0.1),
    # tuned on MovieLens-1M's validation split (README); the paper's Amazon optimum is
    # λ_X = −100, λ_E = 150: sparser data wants a smaller total ridge
    "l3ae": dict(reg_x=-100.0, reg_e=600.0, reg_f=3.0),
    "text": dict(reg_f=3.0),
    "collective": dict(reg_x=300.0, alpha=1.0),
    "additive": dict(reg_x=300.0, reg_f=1.0, alpha=0.1),
}
TEXT_AWARE = {"l3ae", "text", "collective", "additive"}


@dataclass(frozen=True)
class Config:
    """Every hyperparameter of a build. ``None`` fields take the preset's default."""

    model: str = "l3ae"
    reg_x: float = 0.0
    reg_e: float = 0.0
    reg_f: float = 1.0
    dropout: float = 0.0
    xi: float = 0.0
    pull: str = "uniform"
    pull_power: float = 0.5
    alpha: float = 0.0
    topk: int = 500
    dtype: str = "float32"
    # scoring: a history item of age t (0 = the most recent) weighs recency**t; ordered
    # histories only (sequence files), 1 = every item alike
    recency: float = 1.0
    # popularity compensation: column j of B times (1 + c_j)^-debias, c = train counts
    debias: float = 0.0

    @classmethod
    def from_preset(cls, model, **overrides):
        """The preset's defaults, then every override that is not None."""
        if model not in PRESETS:
            raise ConfigError(f"unknown model {model!r}; choose from {', '.join(PRESETS)}")
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
        values = dict(PRESETS[model])
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(model=model, **values)
        cfg.check()
        return cfg

    def check(self):
        if self.pull not in ("uniform", "adaptive"):
            raise ConfigError(f"pull must be 'uniform' or 'adaptive', got {self.pull!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.topk < 0:
            raise ConfigError(f"topk must be >= 0 (0 keeps B dense), got {self.topk}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.xi < 0:
            raise ConfigError(f"xi must be >= 0, got {self.xi}")
        if not 0 < self.recency <= 1:
            raise ConfigError(f"recency must be in (0, 1], got {self.recency}")
        if not self.debias >= 0:
            raise ConfigError(f"debias must be >= 0, got {self.debias}")

    @property
    def needs_text(self):
        return self.model in TEXT_AWARE and (self.model != "l3ae" or self.reg_e != 0)

    def replace(self, **kw):
        return replace(self, **kw)

    def to_dict(self):
        return asdict(self)


def read_config(path):
    """A config file (JSON object of Config fields, as `l3ae tune` writes) as a dict."""
    from l3ae.errors import DataFormatError

    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a JSON config ({exc})", path=path) from None
    if not isinstance(values, dict):
        raise DataFormatError("a config file holds one JSON object", path=path)
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DataFormatError(f"unknown keys {unknown}; known: {sorted(known)}", path=path)
    return values


def pull_weights(popularity, pull="uniform", power=0.5):
    """w (n,) float64 > 0: ones, or ((1 + mean c) / (1 + c_i))^power so tail items lean on text."""
    c = np.asarray(popularity, dtype=np.float64)
    if pull == "uniform":
        return np.ones_like(c)
    return ((1.0 + c.mean()) / (1.0 + c)) ** power


def active_items(cfg: Config, popularity):
    """(n_active,) int64 items whose weights need solving, or None for all of them.
    popularity : (n,) interaction counts per item (X's column sums).

    Without a semantic term (λ_E = 0, no fusion), an item no one interacted with is a block
    of its own in G + Dg(a): its row and column of B are exactly 0 (its diagonal too, under
    both constraints), so the n³ solve runs on the other items only.
    """
    if cfg.needs_text or cfg.model in ("collective", "additive"):
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


def fit_weights(cfg: Config, X, E=None, item_ids=None, progress=None, **solver):
    """Weights (B, diag, timings) of the model ``cfg`` on X (m, n) CSR and E (n, d).

    solver : run-time options of :func:`solve_weights` that do not change the result
    (memory budget, work folder, resume).
    """
    if cfg.debias:
        out = fit_weights(cfg.replace(debias=0.0), X, E, item_ids, progress, **solver)
        pop = np.asarray(sp.csr_matrix(X).sum(axis=0)).ravel()
        return replace(out, B=debias_columns(out.B, pop, cfg.debias))
    dtype = np.dtype(cfg.dtype)
    if cfg.needs_text and E is None:
        raise ConfigError(f"model {cfg.model!r} needs item embeddings (--embeddings)")
    if cfg.model == "text":
        return text_weights(np.asarray(E, dtype), cfg.reg_f, cfg.topk, progress=progress)
    popularity = np.asarray(X.sum(axis=0)).ravel()
    active = active_items(cfg, popularity)
    if active is not None:
        n = X.shape[1]
        ids = None if item_ids is None else [item_ids[j] for j in active]
        out = fit_weights(cfg, sp.csr_matrix(X)[:, active], E, ids, progress, **solver)
        diag = np.zeros(n, out.diag.dtype)
        diag[active] = out.diag
        return replace(out, B=expand(out.B, active, n), diag=diag)
    reg_e = cfg.reg_e if cfg.model == "l3ae" else 0.0
    return solve_weights(
        X, reg_x=cfg.reg_x, reg_e=reg_e, w=pull_weights(popularity, cfg.pull, cfg.pull_power),
        dropout=cfg.dropout, xi=cfg.xi, E=E, reg_f=cfg.reg_f,
        collective=cfg.alpha if cfg.model == "collective" else 0.0,
        additive=cfg.alpha if cfg.model == "additive" else 0.0,
        topk=cfg.topk, dtype=dtype, item_ids=item_ids, progress=progress, **solver)
