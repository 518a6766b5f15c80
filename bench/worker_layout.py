"""How to spend the CPU's cores on segmentation training: one arm with every thread, or one arm per
core side by side (the default's Dask workers), and in which precision and memory format.

Times the CPU default's training step (Linknet/MobileNetV2 unless told otherwise, batch 8, 128 px
crops, dice + BCE on the two-channel interior/boundary target, AdamW) in every layout:

* ``1x1``  one process, one thread, alone on the machine;
* ``1xN``  one process, N threads (N = the cores);
* ``Nx1``  N processes of one thread each, started together (what the flow's workers do);

and reports each layout's steps per second *for the whole machine* (the figure that sets how long
the study's arms take), with the step time each process saw. Medians over ``--repeats`` timed
windows of ``--steps`` steps each, after a warm-up window.

    PYTHONPATH=$PWD python bench/worker_layout.py --out bench/results/worker_layout.json
    PYTHONPATH=$PWD python bench/worker_layout.py --encoder resnet18 --precision bf16 --memory-format channels_last
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_step(args: dict, threads: int):
    """The CPU default's training step for ``args`` (model, optimiser, loss, one fixed batch) as a
    closure; ``threads`` torch threads. bench/dask_overhead.py times the same step in Dask workers."""
    import torch

    from pipeline.segmentation.models import create_model
    from pipeline.segmentation.training import build_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    channels_last = args["memory_format"] == "channels_last"
    model = create_model(args["arch"], args["encoder"], args["channels"], 2)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    loss_fn = build_loss("boundary", "dice_bce")
    x = torch.rand(args["batch"], args["channels"], args["crop"], args["crop"])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(args["batch"], 2, args["crop"], args["crop"]) > 0.5).float()
    bf16 = args["precision"] == "bf16"

    def step():
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    return step


def timed_windows(step, args: dict) -> list[float]:
    """Seconds per step in each of ``repeats`` windows of ``steps`` steps, after one warm-up window."""
    times = []
    for window in range(args["repeats"] + 1):
        t = time.perf_counter()
        for _ in range(args["steps"]):
            step()
        if window:  # the first window is a warm-up
            times.append((time.perf_counter() - t) / args["steps"])
    return times


def _step_times(args: dict, threads: int, start, results) -> None:
    """One process: build the step, wait for the start signal, time windows of training steps."""
    step = build_step(args, threads)
    start.wait()
    results.put(timed_windows(step, args))


def run_layout(args: dict, processes: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_step_times, args=(args, threads, start, results)) for _ in range(processes)]
    for p in procs:
        p.start()
    per_process = [results.get() for _ in procs]
    for p in procs:
        p.join()
    step_s = statistics.median(t for times in per_process for t in times)
    return {"processes": processes, "threads": threads, "step_s": round(step_s, 4),
            "machine_steps_per_s": round(processes / step_s, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="Linknet")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--channels", type=int, default=3, help="image channels (3: the demo set, 1: EMPS)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--precision", choices=["fp32", "bf16"], nargs="+", default=["bf16", "fp32"])
    ap.add_argument("--memory-format", choices=["channels_last", "contiguous"], nargs="+",
                    default=["channels_last", "contiguous"])
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=10, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per process (after one warm-up)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    base = {k: getattr(a, k) for k in ("arch", "encoder", "channels", "batch", "crop", "steps", "repeats")}
    rows = []
    print("| precision | memory format | layout | s / step (each process) | steps / s (machine) |")
    print("|---|---|---|---|---|")
    for precision in a.precision:
        for fmt in a.memory_format:
            args = {**base, "precision": precision, "memory_format": fmt}
            for processes, threads in ((1, 1), (1, a.cores), (a.cores, 1)):
                r = {"precision": precision, "memory_format": fmt, **run_layout(args, processes, threads)}
                rows.append(r)
                print(f"| {precision} | {fmt} | {processes}x{threads} | {r['step_s']:.3f} | {r['machine_steps_per_s']:.2f} |",
                      flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"config": base, "cores": a.cores, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
