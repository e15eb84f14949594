"""Evaluation regimes and scoring of a model on a split (DESIGN §6).

A :class:`Split` holds train / validation / test (m, n) CSR matrices over one catalog. Regimes
transform it: ``train_fraction`` keeps a random fraction of each user's train interactions
(sparsity curves); ``cold_items`` removes a random fraction of items from train entirely, so
their held-out interactions measure text-only recommendation (group "cold").
Validation ranks with train items masked; test with train and validation items masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from l3ae.engine.metrics import head_items, ranking_metrics, split_interactions
from l3ae.engine.score import topn
from l3ae.errors import ConfigError
from l3ae.io.readers import to_csr

KS = (10, 20, 50)


@dataclass
class Split:
    """train, validation, test : (m, n) binary CSR; cold : (n,) bool or None."""

    train: sp.csr_matrix
    validation: sp.csr_matrix
    test: sp.csr_matrix
    cold: np.ndarray | None = None

    def groups(self):
        """{group: (n,) bool or None}: all, head/tail by train popularity, and cold."""
        head = head_items(np.asarray(self.train.sum(axis=0)).ravel())
        g = {"all": None, "head": head, "tail": ~head}
        if self.cold is not None:
            g["cold"] = self.cold
        return g

    def targets(self):
        """(name, truth, mask) for validation and test."""
        return (("validation", self.validation, self.train),
                ("test", self.test, (self.train + self.validation).tocsr()))


def random_split(users, items, shape, seed=0):
    """Per-user random 8:1:1 split of code pairs."""
    return Split(*split_interactions(users, items, shape, seed=seed))


def _keep_fraction(X, fraction, seed):
    X = sp.coo_matrix(X)
    keep, _, _ = split_interactions(X.row, X.col, X.shape, (fraction, 0.0, 1 - fraction), seed)
    return keep


def apply_regime(split: Split, train_fraction=1.0, cold_items=0.0, seed=0) -> Split:
    """The split under a sparsity regime (see the module docstring); the input is unchanged."""
    if not 0 < train_fraction <= 1:
        raise ConfigError(f"--train-fraction must be in (0, 1], got {train_fraction}")
    if not 0 <= cold_items < 1:
        raise ConfigError(f"--cold-items must be in [0, 1), got {cold_items}")
    train = split.train
    cold = split.cold
    if cold_items > 0:
        n = train.shape[1]
        rng = np.random.default_rng(seed + 7919)
        cold = np.zeros(n, bool)
        cold[rng.choice(n, int(round(cold_items * n)), replace=False)] = True
        train = (train @ sp.diags((~cold).astype(np.float32))).tocsr()
        train.eliminate_zeros()
    if train_fraction < 1:
        train = _keep_fraction(train, train_fraction, seed + 104729)
    train = to_csr(*sp.coo_matrix(train).nonzero(), train.shape) if train is not split.train \
        else train
    return Split(train, split.validation, split.test, cold)


def score(B, split: Split, ks=KS, which=("validation", "test")):
    """{"validation"|"test": {group: {"recall@K", "ndcg@K", "users"}}} of weights B on a split."""
    groups = split.groups()
    out = {}
    for name, truth, mask in split.targets():
        if name not in which:
            continue
        top, _ = topn(split.train, B, N=max(ks), mask=mask)
        out[name] = {g: ranking_metrics(top, truth, ks, m) for g, m in groups.items()}
    return out


def format_table(result, ks=KS):
    """A fixed-width text table of an evaluation result."""
    cols = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    lines = [f"{'split':<11}{'group':<6}{'users':>7}" + "".join(f"{c:>11}" for c in cols)]
    for split in ("validation", "test"):
        for g, r in result.get(split, {}).items():
            lines.append(f"{split:<11}{g:<6}{r['users']:>7}"
                         + "".join(f"{r[c]:>11.4f}" for c in cols))
    return "\n".join(lines)


def format_comparison(result, name, baseline, metrics=("recall@20", "ndcg@20")):
    """Test metrics of ``result`` against ``result["baseline"]``, per group, with the change."""
    base = result["baseline"]
    lines = [f"\ntest: {name} vs {baseline}"]
    for g in result["test"]:
        parts = []
        for m in metrics:
            a, b = result["test"][g][m], base["test"][g][m]
            rel = f"{100 * (a - b) / b:+.1f}%" if b > 0 else "n/a"
            parts.append(f"{m} {a:.4f} vs {b:.4f} ({rel})")
        lines.append(f"  {g:<5} " + "   ".join(parts))
    return "\n".join(lines)
