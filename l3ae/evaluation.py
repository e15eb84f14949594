"""Evaluation protocols, regimes and scoring of a model on a split (DESIGN §6).

A :class:`Split` holds train / validation / test (m, n) CSR matrices over one catalog.
Protocols: ``random`` (per-user random 8:1:1, :func:`split_interactions`; Recall/NDCG@10/20/50,
head = 20% most popular by train count, :func:`head_items`; test ranks from the train history)
and ``loo`` (leave-one-out on time-ordered sequences as FAERec/SASRec: last item = test,
second-to-last = validation, HR/NDCG@5/10/20, head = the ⌊20% n⌋ most frequent items over all
sequences; test ranks from train + validation).
Both mask every known item: validation masks train, test masks train and validation.
Regimes transform a split: ``train_fraction`` keeps a random fraction of each user's train
interactions (sparsity curves); ``cold_items`` removes a random fraction of items from train
entirely, so their held-out interactions measure text-only recommendation (group "cold").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from l3ae.engine.metrics import ranking_metrics
from l3ae.engine.score import topn
from l3ae.engine.sequences import from_events
from l3ae.errors import ConfigError
from l3ae.io.interactions import latest_matrix, to_csr

KS = (10, 20, 50)
PROTOCOLS = {"random": KS, "loo": (5, 10, 20)}


@dataclass
class Split:
    """train, validation, test : (m, n) binary CSR; cold : (n,) bool or None.

    protocol : "random" or "loo" (see the module docstring). head : (n,) bool fixed by the
    protocol (loo), or None for the 20% most popular items by train count.
    ages : {"validation"|"test": (m, n) CSR} on the pattern of that target's history, 1 + the
    item's age (0 = the most recent) when histories are ordered (loo); else None.
    sequences : {"train"|"known": (indptr, items)}, those events in time order (loo), for
    order-aware models; else None.
    """

    train: sp.csr_matrix
    validation: sp.csr_matrix
    test: sp.csr_matrix
    cold: np.ndarray | None = None
    protocol: str = "random"
    head: np.ndarray | None = None
    ages: dict | None = None
    sequences: dict | None = None

    @property
    def ks(self):
        return PROTOCOLS[self.protocol]

    def groups(self):
        """{group: (n,) bool or None}: all, head/tail, and cold."""
        head = self.head if self.head is not None else \
            head_items(np.asarray(self.train.sum(axis=0)).ravel())
        g = {"all": None, "head": head, "tail": ~head}
        if self.cold is not None:
            g["cold"] = self.cold
        return g

    @cached_property
    def known(self):
        """(m, n) binary CSR: train + validation, what the test masks (and loo ranks from)."""
        known = (self.train + self.validation).tocsr()
        known.data[:] = 1
        return known

    def targets(self):
        """(name, truth, history, mask) for validation and test: rank from ``history``,
        never returning ``mask``'s items."""
        return (("validation", self.validation, self.history("validation"), self.train),
                ("test", self.test, self.history("test"), self.known))

    def history(self, name, recency=1.0):
        """The history a target ranks from; items weigh ``recency ** age`` when < 1."""
        if recency == 1.0:
            return self.known if (name == "test" and self.protocol == "loo") else self.train
        if self.ages is None:
            raise ConfigError("recency < 1 needs ordered histories: --interactions FILE "
                              "--format sequences --protocol loo")
        weighted = self.ages[name].copy()
        weighted.data = (recency ** (weighted.data - 1)).astype(np.float32)
        return weighted

    def metrics(self, top, truth, ks=None, item_mask=None):
        """:func:`ranking_metrics` under this protocol's names (loo: one target, hr@K)."""
        out = ranking_metrics(top, truth, ks or self.ks, item_mask)
        if self.protocol == "loo":
            out = {k.replace("recall@", "hr@"): v for k, v in out.items()}
        return out


def head_items(popularity, head_fraction=0.2):
    """(n,) bool: the round(head_fraction·n) most popular items of ``popularity`` (n,) counts,
    ties by lower index (the random protocol's head; loo fixes its own, :func:`loo_split`)."""
    n = len(popularity)
    n_head = int(round(head_fraction * n))
    order = np.argsort(-np.asarray(popularity), kind="stable")
    head = np.zeros(n, bool)
    head[order[:n_head]] = True
    return head


def loo_split(inter, head_fraction=0.2) -> Split:
    """Leave-one-out split of time-ordered sequences (``Interactions.ordered``).

    Per user: the last event is the test target, the second-to-last the validation target,
    the rest is train (a user with 2 events has no train, with 1 no validation). Head items
    (FAERec's ht_process): items sorted by event count over all sequences, most frequent
    first, ties in order of first appearance; the first ⌊head_fraction·n⌋ are head.
    """
    if not getattr(inter, "ordered", False):
        raise ConfigError("--protocol loo needs time-ordered sequences: pass "
                          "--interactions FILE --format sequences")
    users, items = inter.users, inter.items
    m, n = inter.shape
    count = np.bincount(users, minlength=m)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    if np.any(np.diff(users) < 0):
        raise ConfigError("sequence events must be grouped by user, users in code order")
    back = count[users] - 1 - (np.arange(len(users)) - start[users])  # 0 = last event
    parts = [back >= 2, back == 1, back == 0]
    train, validation, test = (to_csr(users[p], items[p], (m, n)) for p in parts)
    ages = {"validation": _ages(users, items, back - 2, (m, n)),
            "test": _ages(users, items, back - 1, (m, n))}
    # codes follow first appearance, so a stable sort breaks ties exactly as FAERec's Counter
    freq = np.bincount(items, minlength=n)
    head = np.zeros(n, bool)
    head[np.argsort(-freq, kind="stable")[:int(n * head_fraction)]] = True
    seqs = {"train": from_events(users[parts[0]], items[parts[0]], m),
            "known": from_events(users[back >= 1], items[back >= 1], m)}
    return Split(train, validation, test, protocol="loo", head=head, ages=ages, sequences=seqs)


def _ages(users, items, age, shape):
    """(m, n) CSR of 1 + the age of each item's most recent event with age >= 0."""
    keep = age >= 0
    return latest_matrix(users[keep], items[keep], age[keep], shape, lambda a: a + 1)


def split_interactions(users, items, shape, fractions=(0.8, 0.1, 0.1), seed=0):
    """Random per-user split of (user, item) code pairs into train/validation/test CSR (m, n).

    Each user's interactions are shuffled (seeded); position r of k goes to train if
    r/k < f_train, to validation if r/k < f_train + f_val, else to test.
    """
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(users)), users))
    u_sorted = users[order]
    starts = np.searchsorted(u_sorted, u_sorted, side="left")
    counts = np.bincount(u_sorted, minlength=shape[0])[u_sorted]
    frac = (np.arange(len(users)) - starts) / counts
    cut1, cut2 = fractions[0], fractions[0] + fractions[1]
    parts = [frac < cut1, (frac >= cut1) & (frac < cut2), frac >= cut2]
    return tuple(to_csr(u_sorted[p], items[order][p], shape) for p in parts)


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
    same = train is split.train  # a thinned train has other ages and sequences
    return Split(train, split.validation, split.test, cold, split.protocol, split.head,
                 split.ages if same else None, split.sequences if same else None)


def score(B, split: Split, ks=None, which=("validation", "test"), weights=None, recency=1.0):
    """{"validation"|"test": {group: {"recall@K" (loo: "hr@K"), "ndcg@K", "users"}}} of weights
    B on a split. weights : {"validation"|"test": B} overrides B per target (a refit).
    recency : history items weigh recency ** age (ordered histories)."""
    ks = ks or split.ks
    groups = split.groups()
    out = {}
    for name, truth, _, mask in split.targets():
        if name not in which:
            continue
        history = split.history(name, recency)
        top, _ = topn(history, (weights or {}).get(name, B), N=max(ks), mask=mask)
        out[name] = {g: split.metrics(top, truth, ks, m) for g, m in groups.items()}
    return out


def format_table(result):
    """A fixed-width text table of an evaluation result."""
    first = next(iter(result.get("validation", result.get("test", {})).values()))
    names = [c for c in first if c != "users"]
    cols = sorted(names, key=lambda c: (int(c.split("@")[1]), c.startswith("ndcg")))
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
