"""Why Dask workers trained 2-3x slower than one process: the nanny's MALLOC_TRIM_THRESHOLD_.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
``distributed.nanny.pre-spawn-environ``). glibc then returns freed memory to the system at once, so
each training step maps and faults in its tensors' pages again (half the worker's CPU time was
system time). This script times the same Linknet/MobileNetV2 training step (batch 8, 128 px, one
thread) in fresh processes with and without that variable, alternating, and prints medians and
their ratio. The flow now removes the variable for its local Dask cluster
(flows/synth_pretrain.py ``_keep_malloc_default_in_dask_workers``).

    python bench/dask_malloc.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEP = """
import statistics, sys, time
import torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from pipeline.segmentation.models import create_model
from pipeline.segmentation.training import build_loss
torch.manual_seed(0)
m = create_model("Linknet", "mobilenet_v2", 1, 2, None).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(m.parameters(), 1e-3)
loss_fn = build_loss("boundary", "dice_bce")
x = torch.randn(8, 1, 128, 128).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 2, 128, 128) > 0.5).float()
times = []
for i in range({steps}):
    t = time.perf_counter()
    loss = loss_fn(m(x), y); opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(statistics.median(times[5:]))
"""


def one(trim: str | None, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    if trim is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = trim
    out = subprocess.run([sys.executable, "-c", STEP.format(root=str(ROOT), steps=steps)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="processes per setting (alternating)")
    ap.add_argument("--steps", type=int, default=25, help="training steps per process (the first 5 are warm-up)")
    a = ap.parse_args()
    default, dask = [], []
    for _ in range(a.repeats):
        default.append(one(None, a.steps))
        dask.append(one("65536", a.steps))
    d, k = statistics.median(default), statistics.median(dask)
    print(f"glibc default:                 {d:.3f} s/step (median of {a.repeats} processes: {[round(t, 3) for t in default]})")
    print(f"MALLOC_TRIM_THRESHOLD_=65536:  {k:.3f} s/step (median of {a.repeats} processes: {[round(t, 3) for t in dask]})")
    print(f"ratio: {k / d:.2f}x slower with Dask's setting")


if __name__ == "__main__":
    main()
