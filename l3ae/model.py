"""The Python API: one estimator for every preset, scikit-learn shaped.

>>> rec = Recommender("ease", reg_x=300).fit(X)          # X: (m, n) binary CSR
>>> rec = Recommender(cfg).fit(X, E)                     # cfg: a Config
>>> items, scores = rec.recommend(X[:10], N=20)           # (10, 20) int64, float32
>>> rec = Recommender("l3ae").fit(X, E, foldable=True)    # E: (n, d) item embeddings
>>> rec.add_items(["new1", "new2"], E_new)                # (2, d): no rebuild
"""

from dataclasses import asdict

import numpy as np
import scipy.sparse as sp

from l3ae.engine import foldin
from l3ae.engine.models import Config, debias_columns, fit_weights
from l3ae.engine.score import topn
from l3ae.errors import ConfigError, DataFormatError
from l3ae.io.model_file import (extend_checksum, input_checksum, read_fold, read_model,
                                write_model)


class Recommender:
    """Closed-form item–item recommender (EASE, LAE, DLAE, EDLAE, RLAE, RDLAE, L3AE, ...).

    ``Recommender(model, **params)``: a preset name and hyperparameters of
    :class:`l3ae.engine.models.Config` (None or absent: the preset's default), or a Config
    itself (params then override it). Kept as ``config``. Learned attributes: ``config_``,
    ``B_`` ((n, n) CSR or dense), ``diag_`` (n,), ``popularity_`` (n,) int64, ``item_ids_``,
    ``timings_`` (seconds per phase), ``checksum_``, ``fold_``.
    """

    def __init__(self, model="l3ae", **params):
        self.config = (model.override(**params) if isinstance(model, Config)
                       else Config.from_preset(model, **params))

    def get_params(self):
        return self.config.to_dict()

    def fit(self, X, E=None, item_ids=None, progress=None, foldable=False, sequences=None,
            **solver):
        """Learn B from X (m, n) binary CSR and, for text-aware presets, E (n, d) embeddings.

        sequences : X's events in time order, (indptr (m+1,), items) int64 (user u's events,
        oldest first: items[indptr[u]:indptr[u+1]]; :func:`l3ae.engine.sequences.from_events`),
        which the order-aware ``slist`` learns from.
        foldable : also keep ``fold_``, the state :meth:`add_items` needs (saved with the model).
        solver : run-time options passed to :func:`l3ae.engine.solve.solve_weights`.
        """
        X = sp.csr_matrix(X)
        self.config_ = self.config.for_items(X.shape[1])  # topk "auto" resolved
        if foldable:
            foldin.coefficients(self.config_)  # refuse what cannot be folded before the build
            solver["keep_pwe"] = True
        n = X.shape[1]
        self.item_ids_ = list(item_ids) if item_ids is not None else [str(i) for i in range(n)]
        self.popularity_ = np.asarray(X.sum(axis=0)).ravel().astype(np.int64)
        w = fit_weights(self.config_, X, E, item_ids=self.item_ids_, progress=progress,
                        sequences=sequences, **solver)
        self.B_, self.diag_, self.timings_ = w.B, w.diag, w.timings
        self.checksum_ = input_checksum(X, self.item_ids_)
        self.fold_ = (foldin.fold_state(self.config_, E, w.pwe, self.popularity_)
                      if foldable else None)
        return self

    def add_items(self, item_ids, E=None, progress=None):
        """Fold new items (ids, E (k, d) embeddings; no interactions) into the model, in place.

        Their rows and columns of B equal a rebuild's; the old–old block is kept as built
        (exact for text-free presets). Needs ``fold_`` (``fit(..., foldable=True)`` or
        ``load(path, foldable=True)``). See :mod:`l3ae.engine.foldin`.
        """
        if getattr(self, "fold_", None) is None:
            raise ConfigError("this model holds no fold-in state: fit it with foldable=True, or "
                              "load a model built with --foldable with load(path, foldable=True)")
        ids = [str(i) for i in item_ids]
        known = set(self.item_ids_)
        clash = next((i for i in ids if i in known), None)
        if clash is not None or not ids:
            raise DataFormatError(f"item id {clash!r} is already in the model" if ids
                                  else "no new items")
        if len(set(ids)) < len(ids):
            raise DataFormatError(f"item id {next(i for i in ids if ids.count(i) > 1)!r} is "
                                  "listed twice")
        if self.fold_.E is None:  # text-free: new rows and columns are zero, E is not needed
            E = np.zeros((len(ids), 0))
        elif E is None or np.ndim(E) != 2 or np.shape(E)[1] != self.fold_.E.shape[1]:
            raise DataFormatError(f"the model needs {self.fold_.E.shape[1]}-d embeddings of the "
                                  f"new items, got shape {np.shape(E)}")
        # popularity compensation comes after pruning in a build: fold the uncompensated B
        beta = self.config_.debias
        B = debias_columns(self.B_, self.popularity_, -beta)
        B, diag, self.fold_, secs = foldin.fold_in(self.config_, self.fold_, B, np.asarray(E),
                                                   popularity=self.popularity_, item_ids=ids,
                                                   progress=progress)
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(len(ids), np.int64)])
        self.B_ = debias_columns(B, self.popularity_, beta)
        self.diag_ = np.concatenate([self.diag_, diag])
        self.item_ids_ = self.item_ids_ + ids
        self.checksum_ = extend_checksum(self.checksum_, ids)
        self.timings_ = dict(self.timings_, **{"add-items": secs})
        return self

    def recommend(self, X, N=20, mask=None, allowed=None):
        """Top-N unseen items for each row of X (m, n): (items (m, N) int64, scores float32)."""
        return topn(X, self.B_, N, allowed=allowed, mask=mask)

    def save(self, path, encoder=""):
        fold = getattr(self, "fold_", None)
        write_model(path, self.item_ids_, self.B_, self.diag_, self.popularity_,
                    self.config_.to_dict(), self.timings_, self.checksum_, encoder,
                    fold=asdict(fold) if fold is not None else None)

    @classmethod
    def load(cls, path, foldable=False):
        """A saved model; ``foldable``: also read its fold-in state (refused if it has none)."""
        d = read_model(path)
        rec = cls(Config.from_dict(d["config"]))
        rec.config_, rec.item_ids_, rec.B_ = rec.config, d["item_ids"], d["B"]
        rec.diag_, rec.popularity_, rec.timings_ = d["diag"], d["popularity"], d["timings"]
        rec.checksum_, rec.encoder_ = d["input-sha256"], d["encoder"]
        rec.fold_ = foldin.FoldState(**read_fold(path)) if foldable else None
        return rec
