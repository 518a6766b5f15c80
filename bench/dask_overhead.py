"""What Dask's own bookkeeping costs the flow's training workers, and what the flow's quieter
settings buy back.

The flow trains two arms side by side in a local Dask cluster of two one-thread worker processes
(``runtime.task_runner: dask``). On the 2-core CPU every cycle that Dask spends on itself is taken
from a training thread: each worker samples its threads for Dask's statistical profiler every
10 ms, every server reads psutil's CPU / memory / disk / network counters every 500 ms, and each
nanny checks its worker's memory every 100 ms. During an EMPS study the flow's own process (the
scheduler, the nannies, the client and Prefect's threads) used ~18 % of a core.

This script times the CPU default's training step (bench/worker_layout.py's, one thread) in two
processes at once in three layouts, alternating their order over ``--repeats`` rounds:

* ``processes``    two plain processes (no Dask): the ceiling;
* ``dask``         a LocalCluster as the flow made it before, with Dask's default settings;
* ``dask-quiet``   the same cluster with the flow's settings (flows/synth_pretrain.py ``QUIET_DASK``).

For each it prints the median seconds per step the workers saw, the CPU the driving process used
and the CPU each worker's other threads (Dask's, not the training thread) used, as shares of one
core, while they trained. Both Dask layouts start their workers as the flow does (glibc's malloc
default, Dask's logging at warnings: flows/synth_pretrain.py ``_keep_malloc_default_in_dask_workers``).

    PYTHONPATH=$PWD python bench/dask_overhead.py --repeats 4 --out bench/results/dask_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import worker_layout  # noqa: E402


def _worker_windows(args: dict, paths: list[str]) -> dict:
    """Runs inside a Dask worker: the step's timed windows, and the share of a core that the
    worker's other threads (Dask's event loop, profiler, monitors) used meanwhile."""
    sys.path[:0] = paths
    import resource

    import worker_layout as wl

    step = wl.build_step(args, threads=1)
    wall, own = time.perf_counter(), time.thread_time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    times = wl.timed_windows(step, args)
    ru2 = resource.getrusage(resource.RUSAGE_SELF)
    wall, own = time.perf_counter() - wall, time.thread_time() - own
    process = ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime
    return {"times": times, "other_threads_share": max(process - own, 0.0) / wall}


def run_dask(args: dict, workers: int, settings: dict) -> dict:
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(settings):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            client.wait_for_workers(workers)
            cpu, wall = time.process_time(), time.perf_counter()
            futures = [client.submit(_worker_windows, args, [str(ROOT), str(ROOT / "bench")], pure=False, key=f"w{i}")
                       for i in range(workers)]
            per_worker = client.gather(futures)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    step_s = statistics.median(t for w in per_worker for t in w["times"])
    return {"step_s": step_s, "driver_core_share": cpu / wall,
            "worker_other_threads_share": statistics.mean(w["other_threads_share"] for w in per_worker)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=1, help="image channels (1: EMPS, 3: the demo set)")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=2, help="timed windows per worker (after one warm-up)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each round runs every layout once")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from flows.synth_pretrain import QUIET_DASK, _keep_malloc_default_in_dask_workers

    _keep_malloc_default_in_dask_workers()  # both Dask layouts: the workers' environment as the flow sets it

    args = {"arch": "Linknet", "encoder": "mobilenet_v2", "channels": a.channels, "batch": a.batch, "crop": a.crop,
            "steps": a.steps, "repeats": a.windows, "precision": a.precision, "memory_format": "channels_last"}
    layouts = {
        "processes": lambda: {"step_s": worker_layout.run_layout(args, a.workers, 1)["step_s"], "driver_core_share": 0.0,
                      "worker_other_threads_share": 0.0},
        "dask": lambda: run_dask(args, a.workers, {}),
        "dask-quiet": lambda: run_dask(args, a.workers, QUIET_DASK),
    }
    names = list(layouts)
    seen: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(a.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order every round
            seen[name].append(layouts[name]())
            x = seen[name][-1]
            print(f"round {r + 1}: {name:11s} {x['step_s']:.3f} s/step, driver {100 * x['driver_core_share']:.0f} %"
                  f" of a core, each worker's other threads {100 * x['worker_other_threads_share']:.1f} %", flush=True)
    base = statistics.median(x["step_s"] for x in seen["processes"])
    rows = []
    print(f"\n| layout | s / step (median of {a.repeats}) | vs plain processes | driving process, % of a core "
          "| each worker's other threads, % of a core |")
    print("|---|---|---|---|---|")
    for name in names:
        step = statistics.median(x["step_s"] for x in seen[name])
        share = statistics.median(x["driver_core_share"] for x in seen[name])
        other = statistics.median(x["worker_other_threads_share"] for x in seen[name])
        rows.append({"layout": name, "step_s": round(step, 4), "ratio": round(step / base, 3),
                     "driver_core_share": round(share, 3), "worker_other_threads_share": round(other, 4),
                     "rounds": seen[name]})
        print(f"| {name} | {step:.3f} | x{step / base:.3f} | {100 * share:.0f} | {100 * other:.1f} |")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"config": {**args, "workers": a.workers}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
