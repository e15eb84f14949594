"""The exact solve on Dask distributed against one process, and a cost model (issue 12, part 7).

For each n (default 8k, 16k, 32k): a seeded synthetic catalog (bench/synth.py ``catalog``, 5n
users), EASE (λ = 500, top-500, float32), built in three ways, each in its own process:
  - single: one process, this repo's default path (in memory up to LAPACK_MAX_N, else tiles),
  - 2x1:    --cluster local:2x1 (LocalCluster: 2 worker processes × 1 thread),
  - 1x2:    --cluster local:1x2 (1 worker process × 2 threads).
Reported per run: wall time of the build (solve_weights), its factorize / weights parts, the
solve's GFLOP/s (n³ / factorize), the overhead against single, tasks, tile, bytes moved
between workers (the workers' transfer logs), and the top-20 agreement with single.

The cost model (``simulate``) replays the very task graph of l3ae.engine.cluster.graph on
K workers × c slots, event by event: a task starts when its inputs are done and a slot is free
(highest priority = submission order first, as Dask), lasts flops / (the measured rate of its
kind) + the measured per-task cost, waits for each input held by another worker (tile bytes /
the measured bandwidth), and the scheduler hands out at most one task per measured per-task
scheduler cost. Its inputs, measured in the cluster runs of this very session: one-thread tile
rates per kind (task stream compute times), transfer bandwidth (transfer logs), the scheduler's
cost per task (a burst of no-op tasks), the client's submission cost per task, the Gram's cost
per tile element and the weights' cost per B element. It is checked against every measured
cluster point, then predicts 100k and 495k items on 4, 16 and 64 workers of 32 cores (network
bandwidth: the measured loopback one, and 10 Gbit/s).

    python bench/distributed.py                    # 8k, 16k, 32k: ~30 min, run it alone
    python bench/distributed.py --sizes 4000       # a minute
"""

import argparse
import heapq
import json
from collections import deque
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
# this file's name is the package's: keep its folder off the path so `import distributed` finds
# Dask's (worker processes inherit the path); bench/synth.py is loaded by its file name
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]


def _synth():
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth", os.path.join(HERE, "synth.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
REG, TOPK, USERS_EVAL = 500.0, 500, 2000
MODES = ("single", "2x1", "1x2")
KINDS = ("gram", "update", "potrf", "trsm", "y", "z", "add", "p_off", "p_diag")


# -- one build per process ----------------------------------------------------------------------
def calibrate(client, k=2000):
    """The scheduler's cost per task (k independent no-op tasks, submitted and gathered), the
    client's submission cost per task, and the bandwidth between two workers (64 MiB held by
    one, summed on the other; best of 3; None with one worker)."""
    from distributed import wait

    t = time.perf_counter()
    futs = [client.submit(int, i, pure=False) for i in range(k)]
    submit = (time.perf_counter() - t) / k
    wait(futs)
    task = (time.perf_counter() - t) / k
    workers = list(client.scheduler_info()["workers"])
    bw = None
    if len(workers) > 1:
        best = float("inf")
        for _ in range(3):
            x = client.scatter(np.ones(16 << 20, np.float32), workers=[workers[0]], hash=False)
            t = time.perf_counter()
            client.submit(np.sum, x, workers=[workers[1]], pure=False).result()
            best = min(best, time.perf_counter() - t)
        bw = (64 << 20) / best
    return task, submit, bw


def worker(n, mode, folder):
    from l3ae.engine import solve_weights, topn

    X = sp.load_npz(os.path.join(folder, "X.npz")).tocsr()
    res = {"n": n, "mode": mode}
    t = time.perf_counter()
    if mode == "single":
        w = solve_weights(X, reg_x=REG, topk=TOPK, dtype=np.float32)
    else:
        from distributed import get_task_stream

        from l3ae.engine.cluster import Cluster

        with Cluster(f"local:{mode}") as c:
            res["noop_task_s"], res["noop_submit_s"], res["bandwidth"] = calibrate(c.client)
            c.client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
            t = time.perf_counter()
            with get_task_stream(c.client) as ts:
                w = solve_weights(X, reg_x=REG, topk=TOPK, dtype=np.float32, cluster=c,
                                  tile=int(os.environ.get("L3AE_BENCH_TILE", 0)) or None)
            res["wall"] = time.perf_counter() - t
            logs = c.client.run(lambda dask_worker: [
                (d["total"], d["duration"]) for d in dask_worker.transfer_incoming_log])
            moved = [x for v in logs.values() for x in v]
            res["bytes_moved"] = float(sum(b for b, _ in moved))
            res["transfer_s"] = float(sum(s for _, s in moved))
            from l3ae.engine.cluster import graph

            T = int(w.timings["tile"])
            ops = {"l3ae-" + "_".join(map(str, k)): op for k, op, *_ in graph(-(-n // T), T)}
            comp = {}
            for rec in ts.data:
                kd = ops.get(str(rec["key"]).rsplit("-", 1)[0])
                for ss in rec["startstops"] if kd else ():
                    if ss["action"] == "compute":
                        s, c_ = comp.get(kd, (0.0, 0))
                        comp[kd] = (s + ss["stop"] - ss["start"], c_ + 1)
            res["compute"] = comp
    res.setdefault("wall", time.perf_counter() - t)
    res["timings"] = w.timings
    res["rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    top, _ = topn(X[:USERS_EVAL], w.B, 20)
    np.save(os.path.join(folder, f"top_{mode}.npy"), top)
    json.dump(res, sys.stdout)


def run_worker(n, mode, folder):
    p = subprocess.run([sys.executable, __file__, "--worker", str(n), mode, folder],
                       capture_output=True, text=True)
    if p.returncode:
        return {"n": n, "mode": mode, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- the cost model -----------------------------------------------------------------------------
def rates_from(runs):
    """The cost model's inputs from measured cluster runs (pooled): one-slot rates per kind
    (flops/s, from the task streams' compute times; the Gram in seconds per tile element),
    the bandwidth between workers, the scheduler's and the client's cost per task, and the
    weights' cost per B element and slot."""
    from l3ae.engine.cluster import graph

    secs, flops, elems = {}, {}, 0.0
    for r in runs:
        T, n = int(r["timings"]["tile"]), r["n"]
        nt = -(-n // T)
        f_kind = {}
        for _, op, _, f, _ in graph(nt, T):
            f_kind[op] = f_kind.get(op, 0.0) + f
        for kd, (s, _) in r["compute"].items():
            secs[kd] = secs.get(kd, 0.0) + s
            flops[kd] = flops.get(kd, 0.0) + f_kind.get(kd, 0.0)
        elems += (nt * (nt + 1) / 2) * T * T
    rate = {k: flops[k] / secs[k] for k in secs if k != "gram" and secs[k] > 0 and flops[k]}
    rate["gram_s_per_elem"] = secs.get("gram", 0.0) / max(elems, 1)
    bws = [r["bandwidth"] for r in runs if r.get("bandwidth")]
    rate["bandwidth"] = float(np.median(bws)) if bws else float("inf")
    rate["task_s"] = float(np.median([r["noop_task_s"] for r in runs]))
    rate["submit_s"] = float(np.median([r["timings"].get("submit", 0.0) / r["timings"]["tasks"]
                                        for r in runs]))
    rate["weights_s_per_elem_slot"] = float(np.median(
        [r["timings"]["weights"] * slots(r["mode"]) / r["n"] ** 2 for r in runs]))
    return rate


def slots(mode):
    k, c = map(int, mode.split("x"))
    return k * c


def simulate(n, T, K, c, rate, bandwidth=None, itemsize=4):
    """Predicted wall time (s) of the cluster build of n items, tile T, on K workers × c slots."""
    from l3ae.engine.cluster import graph

    nt = -(-n // T)
    bw = bandwidth or rate["bandwidth"]
    move = T * T * itemsize / bw  # one tile from another worker
    tasks = list(graph(nt, T))
    index = {t[0]: i for i, t in enumerate(tasks)}
    inputs = [[index[k] for k in t[2] if k is not None] for t in tasks]
    waiting = [len(x) for x in inputs]
    readers = [[] for _ in tasks]
    for i, x in enumerate(inputs):
        for k in x:
            readers[k].append(i)
    gram = rate["gram_s_per_elem"] * T * T
    cost = [gram if op == "gram" else f / rate.get(op, rate["update"])
            for _, op, _, f, _ in tasks]
    where = [0] * len(tasks)
    ready = [i for i in range(len(tasks)) if waiting[i] == 0]  # by priority: submission order
    heapq.heapify(ready)
    free = [c] * K  # free slots per worker
    idle = deque(w for w in range(K) for _ in range(c))  # one entry per free slot (lazily)
    events, now, sched, finished, nfree = [], 0.0, 0.0, 0, K * c
    while finished < len(tasks):
        while ready and nfree:
            i = heapq.heappop(ready)
            home = [where[k] for k in inputs[i] if free[where[k]]]
            if home:
                w = max(set(home), key=home.count)  # most inputs local
            else:
                w = idle.popleft()
                while not free[w]:  # an entry of a slot taken since
                    w = idle.popleft()
            free[w] -= 1
            nfree -= 1
            sched = max(sched, now, i * rate["submit_s"]) + rate["task_s"]  # one at a time
            remote = sum(1 for k in inputs[i] if where[k] != w)
            where[i] = w
            heapq.heappush(events, (sched + remote * move + cost[i], i))
        now, i = heapq.heappop(events)
        free[where[i]] += 1
        nfree += 1
        idle.append(where[i])
        finished += 1
        for r in readers[i]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    return now + rate["weights_s_per_elem_slot"] * n * n / (K * c)


# -- report -------------------------------------------------------------------------------------
def agree(folder, mode):
    a = np.load(os.path.join(folder, "top_single.npy"))
    b = np.load(os.path.join(folder, f"top_{mode}.npy"))
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8000, 16000, 32000])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--tile", type=int, help="tile of the cluster runs (default: choose_tile)")
    ap.add_argument("--json", help="also write every run's measurements here")
    ap.add_argument("--model-only", metavar="JSON", help="no builds: the cost model on the "
                    "runs of an earlier --json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(int(args.worker[0]), args.worker[1], args.worker[2])
    if args.tile:
        os.environ["L3AE_BENCH_TILE"] = str(args.tile)
    runs = measure(args) if not args.model_only else json.load(open(args.model_only))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(runs, fh, indent=1)
    cluster_runs = [r for r in runs if r["mode"] != "single" and "error" not in r]
    if cluster_runs:
        model(cluster_runs)
    return 0


def measure(args):
    catalog = _synth().catalog
    print("EASE λ=500, top-500, float32; synthetic catalogs (5n users); each run its own "
          "process; 2 cores, 24 GiB")
    print(f"{'n':>6} {'run':<7} {'tile':>5} {'tasks':>6} {'wall s':>7} {'factor':>7} "
          f"{'weights':>7} {'GFLOP/s':>7} {'× single':>8} {'moved GiB':>9} {'top-20 =':>8}")
    runs = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            X, _ = catalog(n, d=2, seed=args.seed)
            sp.save_npz(os.path.join(folder, "X.npz"), X, compressed=False)
            base = None
            for mode in args.modes:
                r = run_worker(n, mode, folder)
                runs.append(r)
                if "error" in r:
                    print(f"{n:>6} {mode:<7} error: {r['error']}", flush=True)
                    continue
                t = r["timings"]
                base = r["wall"] if mode == "single" else base
                ratio = r["wall"] / base if base else float("nan")
                gf = n ** 3 / t["factorize"] / 1e9
                moved = r.get("bytes_moved", 0.0) / 2 ** 30
                r["top20_vs_single"] = (agree(folder, mode) if mode != "single" and base
                                        else float("nan"))
                print(f"{n:>6} {mode:<7} {int(t.get('tile', 0)):>5} {int(t.get('tasks', 0)):>6} "
                      f"{r['wall']:>7.1f} {t['factorize']:>7.1f} {t['weights']:>7.1f} "
                      f"{gf:>7.0f} {ratio:>8.2f} {moved:>9.2f} {r['top20_vs_single']:>8.3f}",
                      flush=True)
    return runs


def model(runs):
    """The cost model checked against each measured cluster run (inputs: the runs of the same
    worker shape, c threads a process), then its predictions from the one-thread-a-process
    runs (workers started as `dask worker --nworkers C --nthreads 1`)."""
    by_c = {}
    for r in runs:
        by_c.setdefault(int(r["mode"].split("x")[1]), []).append(r)
    print(f"\ncost model: {'n':>6} {'run':<7} {'measured s':>10} {'model s':>8} {'error':>6}")
    for c, rs in sorted(by_c.items()):
        rate = rates_from(rs)
        print(f"inputs ({c} thread(s) a worker): one-slot GFLOP/s "
              + ", ".join(f"{k} {rate[k] / 1e9:.0f}" for k in KINDS if k in rate)
              + f"; gram {rate['gram_s_per_elem'] * 1e9:.1f} ns/element; bandwidth "
              f"{rate['bandwidth'] / 1e9:.2f} GB/s; scheduler {rate['task_s'] * 1e3:.2f} "
              f"ms/task; submit {rate['submit_s'] * 1e3:.2f} ms/task; weights "
              f"{rate['weights_s_per_elem_slot'] * 1e9:.1f} ns/element·slot")
        for r in rs:  # each run's own task times (its tile size), the shared overheads
            K, cc = map(int, r["mode"].split("x"))
            own = dict(rate, **{k: v for k, v in rates_from([r]).items()
                                if k in KINDS or k == "gram_s_per_elem"})
            pred = simulate(r["n"], int(r["timings"]["tile"]), K, cc, own)
            print(f"            {r['n']:>6} {r['mode']:<7} {r['wall']:>10.1f} {pred:>8.1f} "
                  f"{pred / r['wall'] - 1:>+6.0%}", flush=True)
    rate = rates_from(by_c.get(1) or runs)
    print("\npredicted, machines of 32 cores each running 32 one-thread workers (10 Gbit/s "
          "between any two; the best tile of 1024/2048/4096 whose graph has ≤ 1.5M tasks):")
    for n in (100_000, 495_000):
        for K in (4, 16, 64):
            cands = [T for T in (1024, 2048, 4096) if (-(-n // T)) ** 3 / 3 <= 1.5e6]
            net = {T: simulate(n, T, 32 * K, 1, rate, bandwidth=1.25e9) for T in cands}
            T = min(net, key=net.get)
            work = n ** 3 / (32 * K * rate["update"])
            print(f"  n={n:>7} on {K:>2} machines: tile {T} ({-(-n // T)}² tiles), "
                  f"≈ {net[T] / 3600:.2f} h (the flops alone at the one-slot GEMM rate: "
                  f"{work / 3600:.2f} h)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
