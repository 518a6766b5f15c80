"""Training throughput: the project's loop vs a bare smp loop on the same model and data.

The project loop is :func:`train_segmentation` as the study calls it (random crops, albumentations,
boundary targets, DataLoader, loss, AdamW + schedule, logging); its images/s comes from the log
(the interval excludes the final validation and checkpoint writes). The bare loop feeds batches
prepared beforehand (same crops, as tensors) to a plain forward/backward/step with the same loss
and optimizer. Runs alternate and the medians are compared; the ratio shows what the pipeline's
data path and bookkeeping cost. Both use the config's memory format (``segmentation.channels_last``).

    PYTHONPATH=$PWD python bench/segmentation.py --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config  # noqa: E402
from pipeline.segmentation.dataset import RealPairsDataset  # noqa: E402
from pipeline.segmentation.models import create_model  # noqa: E402
from pipeline.segmentation.targets import n_target_channels  # noqa: E402
from pipeline.segmentation.training import build_loss, normalize, train_segmentation  # noqa: E402


def disc_pairs(n: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grey images of touching discs with exact instance masks (bench data, no files needed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    pairs = []
    for _ in range(n):
        mask = np.zeros((size, size), np.int32)
        for k in range(1, 31):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(5, 14)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
        image = np.clip(0.25 + 0.5 * (mask > 0) + rng.normal(0, 0.05, mask.shape), 0, 1)
        pairs.append((image.astype(np.float32)[:, :, None], mask))
    return pairs


def project_loop(cfg, pairs, steps: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        train_segmentation(cfg, pairs, [], Path(tmp) / "run", steps=steps, lr=1e-3, seed=seed, progress=False)
        log = pd.read_csv(Path(tmp) / "run" / "log.csv")
    return float(log["train_images_per_s"].iloc[-1])


def bare_loop(cfg, batches, steps: int, seed: int) -> float:
    seg = cfg.segmentation
    torch.manual_seed(seed)
    model = create_model(seg.arch, seg.encoder, batches[0][0].shape[1], n_target_channels(seg.target))
    fmt = torch.channels_last if seg.channels_last else torch.contiguous_format  # same memory format as the project
    model = model.to(memory_format=fmt)
    batches = [(x.contiguous(memory_format=fmt), y) for x, y in batches]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = build_loss(seg.target, seg.loss)
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        loss = loss_fn(model(normalize(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--arch", default="Linknet")
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the project loop")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg = load_config(
        "default",
        [
            f"segmentation.arch={args.arch}",
            f"segmentation.encoder={args.encoder}",
            f"segmentation.image_size={args.image_size}",
            f"segmentation.batch_size={args.batch_size}",
            f"segmentation.eval_every={args.steps}",
            f"runtime.threads={args.threads}",
            f"runtime.num_workers={args.workers}",
            "runtime.device=cpu",
            "runtime.progress=false",
        ],
    )
    pairs = disc_pairs(40, 256)
    ds = RealPairsDataset(pairs, args.image_size, cfg.segmentation.target, seed=0)
    samples = [ds[k] for k in range(args.steps * args.batch_size)]
    batches = [
        (torch.stack([s[0] for s in samples[i : i + args.batch_size]]), torch.stack([s[1] for s in samples[i : i + args.batch_size]]))
        for i in range(0, len(samples), args.batch_size)
    ]
    project, bare = [], []
    for r in range(args.repeats):
        project.append(project_loop(cfg, pairs, args.steps, seed=r))
        bare.append(bare_loop(cfg, batches, args.steps, seed=r))
        print(f"repeat {r}: project {project[-1]:.2f} img/s, bare {bare[-1]:.2f} img/s", flush=True)
    result = {
        "model": f"{args.arch}/{args.encoder}",
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "workers": args.workers,
        "project_images_per_s_median": statistics.median(project),
        "bare_images_per_s_median": statistics.median(bare),
        "ratio": statistics.median(project) / statistics.median(bare),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
