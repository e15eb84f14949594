"""L3AE build: the paper code's pipeline written plainly vs l3ae, side by side in one run.

Reference (float64, as the paper's code): G = XᵀX dense, Q = inv(EEᵀ + λ_F I) (n×n),
C = −Q/diag(Q), P = inv(G + (λ_X+λ_E) I), B = P(G + λ_E C) − P·Dg(diag(P(G+λ_E C))/diag(P)).
l3ae: numba Gram, Woodbury phase 1, potrf+potri in place (float32), B rows pruned to top-k.
Also a bare potrf+potri on the same matrix (the floor for the solve).

Each build runs in its own process so that peak RSS (ru_maxrss) is its own.

    python bench/reference.py                 # n = 2000, 4000, 8000
    python bench/reference.py --sizes 2000    # quick
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import synthetic  # noqa: E402

REG_X, REG_E, REG_F, N_USERS_EVAL, TOPN = -20.0, 60.0, 10.0, 3000, 20


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def run_reference(X, E):
    t = time.perf_counter()
    G = (X.T @ X).toarray().astype(np.float64)
    F = E.astype(np.float64)
    Q = np.linalg.inv(F @ F.T + REG_F * np.eye(len(F)))
    C = -Q / np.diag(Q)[None, :]
    np.fill_diagonal(C, 0)
    del Q
    P = np.linalg.inv(G + (REG_X + REG_E) * np.eye(len(G)))
    R = P @ (G + REG_E * C)
    B = R - P * (np.diag(R) / np.diag(P))[None, :]
    return B, time.perf_counter() - t, {}


def run_l3ae(X, E, topk):
    from l3ae.model import Recommender

    t = time.perf_counter()
    rec = Recommender("l3ae", reg_x=REG_X, reg_e=REG_E, reg_f=REG_F, topk=topk).fit(X, E)
    return rec.B_, time.perf_counter() - t, rec.timings_


def run_lapack(X, E):
    from scipy.linalg import lapack

    A = (X.T @ X).toarray().astype(np.float32)
    A.flat[:: len(A) + 1] += REG_X + REG_E
    At = np.asfortranarray(A)
    del A
    t = time.perf_counter()
    c, info = lapack.spotrf(At, lower=1, clean=0, overwrite_a=1)
    c, info = lapack.spotri(c, lower=1, overwrite_c=1)
    return None, time.perf_counter() - t, {}


def write_files(X, E, folder):
    """The build's inputs as an ops team has them: ratings CSV and an embeddings file."""
    from l3ae.io.embeddings import text_hash, write_embeddings

    r, c = X.nonzero()
    with open(os.path.join(folder, "ratings.csv"), "w") as fh:
        fh.write("user_id,item_id\n")
        fh.writelines(f"u{u},i{i}\n" for u, i in zip(r, c))
    ids = [f"i{i}" for i in range(X.shape[1])]
    write_embeddings(os.path.join(folder, "emb.h5"), ids, E, [text_hash(i) for i in ids],
                     {"encoder": {"name": "synthetic", "dim": E.shape[1]}})


def run_cli(folder, topk):
    """`l3ae build` from the files, in its own process: (wall s, peak GiB, its phases)."""
    cmd = [sys.executable, "-m", "l3ae", "build", "--interactions",
           os.path.join(folder, "ratings.csv"), "--embeddings", os.path.join(folder, "emb.h5"),
           "--model", "l3ae", "--reg-x", str(REG_X), "--reg-e", str(REG_E), "--reg-f", str(REG_F),
           "--topk", str(topk), "--out", os.path.join(folder, "model.h5"), "-q"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status:
        raise SystemExit(err)
    phases = dict(p.rsplit(" ", 1) for p in err.rsplit("(", 1)[1].rstrip(")\n").split(", "))
    phases = {k: float(v) for k, v in phases.items()}
    phases["start"] = wall - sum(phases.values())  # interpreter, imports, CLI parsing
    return wall, usage.ru_maxrss / 2 ** 20, phases


def worker(kind, n, seed, out):
    X, E = synthetic(n, seed=seed)
    if kind == "files":
        return write_files(X, E, out)
    base = peak_rss_gib()
    if kind == "reference":
        B, secs, tim = run_reference(X, E)
    elif kind == "lapack":
        B, secs, tim = run_lapack(X, E)
    else:
        B, secs, tim = run_l3ae(X, E, topk=int(kind.split(":")[1]))
    rss = peak_rss_gib()
    if B is not None:
        from l3ae.engine import topn

        users = X[:N_USERS_EVAL]
        top, _ = topn(users, B, TOPN)
        np.save(out, top)
    json.dump({"secs": secs, "rss": rss, "data_rss": base, "timings": tim}, sys.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    ap.add_argument("--topk", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the `l3ae build` process")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.seed, args.worker[2])
    print(f"L3AE build, d=384, λ_X={REG_X}, λ_E={REG_E}, λ_F={REG_F}; {os.cpu_count()} cores")
    print(f"{'n':>6} {'pipeline':<14} {'wall s':>8} {'peak GiB':>9}  phases")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            res = {}
            for kind in ("reference", f"l3ae:{args.topk}", "l3ae:0", "lapack"):
                out = os.path.join(tmp, f"{kind.replace(':', '_')}_{n}.npy")
                p = subprocess.run([sys.executable, __file__, "--seed", str(args.seed),
                                    "--worker", kind, str(n), out], capture_output=True, text=True)
                if p.returncode:
                    print(p.stderr[-2000:])
                    raise SystemExit(p.returncode)
                r = res[kind] = json.loads(p.stdout)
                ph = " ".join(f"{k}={v:.2f}" for k, v in r["timings"].items() if k != "total")
                name = {"l3ae:0": "l3ae dense", "lapack": "potrf+potri"}.get(kind, kind)
                print(f"{n:>6} {name:<14} {r['secs']:>8.2f} {r['rss']:>9.2f}  "
                      f"(data {r['data_rss']:.2f}) {ph}")
            subprocess.run([sys.executable, __file__, "--seed", str(args.seed), "--worker",
                            "files", str(n), tmp], check=True)
            walls, cli = [], None
            for _ in range(args.repeat):
                wall, peak, phases = run_cli(tmp, args.topk)
                walls.append(wall)
                cli = cli if cli and cli[0] <= wall else (wall, peak, phases)
            ph = " ".join(f"{k}={v:.2f}" for k, v in cli[2].items())
            print(f"{n:>6} {'l3ae build CLI':<14} {np.median(walls):>8.2f} {cli[1]:>9.2f}  "
                  f"(median of {args.repeat}; phases of the fastest: {ph})")
            ref, ours = res["reference"], res[f"l3ae:{args.topk}"]
            floor = res["lapack"]["secs"]
            print(f"{n:>6} whole `l3ae build` process (CSV and embeddings in, model.h5 out): "
                  f"{np.median(walls):.2f} s = {np.median(walls) / floor:.2f}x potrf+potri "
                  f"(target <= 1.25x + 1 s = {1.25 * floor + 1:.2f} s); peak RSS {cli[1]:.2f} "
                  f"GiB, {ref['rss'] / cli[1]:.1f}x less than the reference pipeline")
            a = np.load(os.path.join(tmp, f"reference_{n}.npy"))
            overlap = {}
            for kind in (f"l3ae:{args.topk}", "l3ae:0"):
                b = np.load(os.path.join(tmp, f"{kind.replace(':', '_')}_{n}.npy"))
                overlap[kind] = np.mean([len(set(x) & set(y)) / TOPN for x, y in zip(a, b)])
            extra = ours["rss"] - ours["data_rss"], ref["rss"] - ref["data_rss"]
            print(f"{n:>6} ratios: speed-up {ref['secs'] / ours['secs']:.1f}x, peak RSS "
                  f"{ref['rss'] / ours['rss']:.1f}x less (above the data: "
                  f"{extra[1] / max(extra[0], 1e-9):.1f}x), factorize / bare potrf+potri "
                  f"{ours['timings']['factorize'] / res['lapack']['secs']:.2f}, whole build / "
                  f"potrf+potri {ours['secs'] / res['lapack']['secs']:.2f}; top-{TOPN} overlap "
                  f"with reference: topk={args.topk} {100 * overlap[f'l3ae:{args.topk}']:.2f}%, "
                  f"dense {100 * overlap['l3ae:0']:.2f}%")


if __name__ == "__main__":
    main()
