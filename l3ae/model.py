"""The Python API: one estimator for every preset, scikit-learn shaped.

>>> rec = Recommender("ease", reg_x=300).fit(X)          # X: (m, n) binary CSR
>>> items, scores = rec.recommend(X[:10], N=20)           # (10, 20) int64, float32
"""

import numpy as np
import scipy.sparse as sp

from l3ae.engine.models import Config, fit_weights
from l3ae.engine.score import topn
from l3ae.io.model_file import input_checksum, read_model, write_model


class Recommender:
    """Closed-form item–item recommender (EASE, LAE, DLAE, EDLAE, RLAE, RDLAE, L3AE, ...).

    Constructor arguments are the hyperparameters of :class:`l3ae.engine.models.Config`; None
    takes the preset's default. Learned attributes: ``config_``, ``B_`` ((n, n) CSR or dense),
    ``diag_`` (n,), ``popularity_`` (n,) int64, ``item_ids_``, ``timings_`` (seconds per phase).
    """

    def __init__(self, model="l3ae", *, reg_x=None, reg_e=None, reg_f=None, dropout=None,
                 xi=None, pull=None, pull_power=None, alpha=None, topk=None, dtype=None):
        self.model, self.reg_x, self.reg_e, self.reg_f = model, reg_x, reg_e, reg_f
        self.dropout, self.xi, self.pull, self.pull_power = dropout, xi, pull, pull_power
        self.alpha, self.topk, self.dtype = alpha, topk, dtype

    def get_params(self):
        names = ["reg_x", "reg_e", "reg_f", "dropout", "xi", "pull", "pull_power", "alpha",
                 "topk", "dtype"]
        return {k: getattr(self, k) for k in names}

    def fit(self, X, E=None, item_ids=None, progress=None, **solver):
        """Learn B from X (m, n) binary CSR and, for text-aware presets, E (n, d) embeddings.

        solver : run-time options passed to :func:`l3ae.engine.solve.solve_weights`.
        """
        X = sp.csr_matrix(X)
        self.config_ = Config.from_preset(self.model, **self.get_params())
        n = X.shape[1]
        self.item_ids_ = list(item_ids) if item_ids is not None else [str(i) for i in range(n)]
        self.popularity_ = np.asarray(X.sum(axis=0)).ravel().astype(np.int64)
        w = fit_weights(self.config_, X, E, item_ids=self.item_ids_, progress=progress, **solver)
        self.B_, self.diag_, self.timings_ = w.B, w.diag, w.timings
        self.checksum_ = input_checksum(X, self.item_ids_)
        return self

    def recommend(self, X, N=20, mask=None, allowed=None):
        """Top-N unseen items for each row of X (m, n): (items (m, N) int64, scores float32)."""
        return topn(X, self.B_, N, allowed=allowed, mask=mask)

    def save(self, path, encoder=""):
        write_model(path, self.item_ids_, self.B_, self.diag_, self.popularity_,
                    self.config_.to_dict(), self.timings_, self.checksum_, encoder)

    @classmethod
    def load(cls, path):
        d = read_model(path)
        cfg = Config(**d["config"])
        rec = cls(cfg.model, **{k: v for k, v in cfg.to_dict().items() if k != "model"})
        rec.config_, rec.item_ids_, rec.B_ = cfg, d["item_ids"], d["B"]
        rec.diag_, rec.popularity_, rec.timings_ = d["diag"], d["popularity"], d["timings"]
        rec.checksum_, rec.encoder_ = d["input-sha256"], d["encoder"]
        return rec
