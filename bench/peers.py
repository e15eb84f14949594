"""Cornac's EASE (PyPI `cornac`) beside l3ae's EASE on the same split, scored by the same code.

Cornac lives in its own virtual environment (its pins differ from l3ae's): make it once with
    python -m venv ../cornac-venv && ../cornac-venv/bin/pip install cornac==3.0.1
and point L3AE_CORNAC_PYTHON at its python (default: ../cornac-venv/bin/python beside the repo).
The train matrix goes to Cornac as (user, item, 1) triplets in a subprocess; its B comes back in
l3ae's item order and is scored with l3ae's top-N and metric code.

    python bench/peers.py --datasets ml-1m games --reg-x 300
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality import DATASETS  # noqa: E402

from l3ae import api  # noqa: E402
from l3ae.evaluation import score  # noqa: E402
from l3ae.io.atomic import atomic_open  # noqa: E402
from l3ae.model import Recommender  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CORNAC = os.environ.get("L3AE_CORNAC_PYTHON",
                        os.path.join(HERE, "..", "..", "cornac-venv", "bin", "python"))
WORKER = r"""
import sys, time, numpy as np, scipy.sparse as sp
from cornac.data import Dataset
from cornac.models import EASE
X = sp.load_npz(sys.argv[1]).tocoo()
lam, posB, out = float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
ds = Dataset.from_uir(list(zip(X.row.astype(str), X.col.astype(str), np.ones(X.nnz))), seed=0)
t = time.perf_counter()
m = EASE(lamb=lam, posB=posB, verbose=False).fit(ds)
secs = time.perf_counter() - t
order = np.array([int(k) for k, _ in sorted(ds.iid_map.items(), key=lambda kv: kv[1])])
np.savez(out, B=m.B, items=order, secs=secs)
"""


def cornac_ease(train, lam, posB):
    """(B (n, n) float64 in l3ae's item order, fit seconds) from Cornac's EASE."""
    with tempfile.TemporaryDirectory() as tmp:
        sp.save_npz(f"{tmp}/X.npz", train)
        subprocess.run([CORNAC, "-c", WORKER, f"{tmp}/X.npz", str(lam), str(int(posB)),
                        f"{tmp}/B.npz"], check=True)
        z = np.load(f"{tmp}/B.npz")
        n = train.shape[1]
        B = np.zeros((n, n))
        B[np.ix_(z["items"], z["items"])] = z["B"]
        return B, float(z["secs"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-1m"], choices=list(DATASETS))
    ap.add_argument("--reg-x", type=float, help="EASE λ (default: the one bench/quality.py tuned "
                    "for the dataset, from bench/results/quality*.json, else 300)")
    args = ap.parse_args()
    tuned = {}
    for name in ("quality.json", "quality-large.json"):
        path = os.path.join(HERE, "results", name)
        if os.path.exists(path):
            with open(path) as fh:
                tuned.update({r["dataset"]: r["config"]["reg_x"] for r in json.load(fh)
                              if r["model"] == "EASE" and r["regime"] == "train 1"})
    if not os.path.exists(CORNAC):
        raise SystemExit(f"no Cornac python at {CORNAC}; see --help")
    lines = [f"Command: `python bench/peers.py {' '.join(sys.argv[1:])}` (seeded 8:1:1 split, "
             "test ranked over all items, train and validation masked; l3ae's metric code "
             "scores every B)\n",
             "| dataset | model | λ | test R@20 | test N@20 | tail R@20 | fit s |",
             "|---" * 7 + "|"]
    print("\n".join(lines), flush=True)
    Recommender("ease", reg_x=1.0).fit(sp.eye(3, format="csr"))  # load the numba kernels once
    for ds in args.datasets:
        lam = args.reg_x or tuned.get(ds, 300.0)
        source = api.Data(**DATASETS[ds]).load()
        split = api.load_split(source, seed=0)
        t = time.perf_counter()
        ours = Recommender("ease", reg_x=lam, topk=0).fit(split.train)
        runs = [("l3ae EASE (dense B)", ours.B_, time.perf_counter() - t)]
        for posB in (False, True):
            B, secs = cornac_ease(split.train, lam, posB)
            runs.append((f"Cornac EASE posB={posB}", B.astype(np.float32), secs))
        for name, B, secs in runs:
            te = score(B, split, (20,), which=("test",))["test"]
            lines.append(f"| {ds} | {name} | {lam:g} | {te['all']['recall@20']:.4f} | "
                         f"{te['all']['ndcg@20']:.4f} | {te['tail']['recall@20']:.4f} | "
                         f"{secs:.1f} |")
            print(lines[-1], flush=True)
    with atomic_open(os.path.join(HERE, "results", "peers.md")) as fh:
        fh.write("# Cornac's EASE beside l3ae's EASE\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
