"""Benchmark: training seconds/iteration and inference images/second per generator.

    PYTHONPATH=. python bench/generators.py                      # CPU, 2 threads
    PYTHONPATH=. python bench/generators.py --device cuda        # GPU (bf16 autocast, channels_last)

One training iteration = one D update + one G update on a batch of random instance masks and
images (what the training loop does, without data loading). Inference = the exported EMA-style
generator (spectral norm folded, channels_last, inference_mode). Every number is the MEDIAN of
``--iters`` timed iterations after ``--warmup`` untimed ones, because the CPU may be shared.
A combination whose first timed iteration exceeds ``--max-seconds`` is reported from that one
iteration (marked ``n=1``) so the whole table stays within a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pipeline.config import GeneratorConfig
from pipeline.device import autocast
from pipeline.generators.base import MASK_CHANNELS, mask_to_input
from pipeline.generators.registry import create_generator

CONFIGS = {
    "spade16": ("spade", {"channels": 16}),
    "spade32": ("spade", {"channels": 32}),
    "spade64": ("spade", {"channels": 64}),
    "ugatit32-light": ("ugatit", {"channels": 32, "light": True}),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, warmup: int, iters: int, max_seconds: float) -> tuple[float, int]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
        if times[0] > max_seconds:
            break
    return statistics.median(times), len(times)


def bench_one(name: str, size: int, batch: int, device: torch.device, args) -> dict:
    model_name, extra = CONFIGS[name]
    cfg = GeneratorConfig(model=model_name, image_size=size, batch_size=batch, **extra)
    torch.manual_seed(0)
    model = create_generator(model_name, MASK_CHANNELS, args.channels, cfg).to(device).to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(model.g_params(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(model.d_params(), lr=4e-4, betas=(0.0, 0.999))
    inst = torch.randint(0, 6, (batch, size, size))
    data = {
        "mask": mask_to_input(inst).to(device).contiguous(memory_format=torch.channels_last),
        "image": (torch.rand(batch, args.channels, size, size) * 2 - 1).to(device).contiguous(memory_format=torch.channels_last),
    }

    def train_step():
        with autocast(device, True):
            ld = sum(model.losses_d(data).values())
        opt_d.zero_grad(set_to_none=True)
        ld.backward()
        opt_d.step()
        with autocast(device, True):
            lg = sum(model.losses_g(data).values())
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        model.after_step()

    train_s, train_n = _timed(train_step, device, args.warmup, args.iters, args.max_seconds)
    gen = model.export_generator().to(device)
    if args.compile:
        gen = torch.compile(gen)
    inf_batch = args.infer_batch
    masks = mask_to_input(torch.randint(0, 6, (inf_batch, size, size))).to(device).contiguous(memory_format=torch.channels_last)
    z = torch.randn(inf_batch, gen.z_dim, device=device) if gen.z_dim else None

    @torch.inference_mode()
    def infer():
        with autocast(device, True):
            gen(masks, z)

    inf_s, inf_n = _timed(infer, device, args.warmup, args.iters, args.max_seconds)
    return {
        "config": name,
        "size": size,
        "train_batch": batch,
        "train_s_per_iter": round(train_s, 4),
        "train_n": train_n,
        "infer_batch": inf_batch,
        "infer_images_per_s": round(inf_batch / inf_s, 2),
        "infer_n": inf_n,
        "g_params_M": round(sum(p.numel() for p in model.g_params()) / 1e6, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--batch", type=int, default=4, help="training batch size")
    ap.add_argument("--infer-batch", type=int, default=4)
    ap.add_argument("--channels", type=int, default=1, help="image channels (1 = gray)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--compile", action="store_true", help="torch.compile the inference generator")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    print(f"device={device} threads={args.threads} torch={torch.__version__}")
    print("| config | size | train s/iter (batch) | inference img/s (batch) | G params (M) |")
    print("|---|---|---|---|---|")
    for name in args.configs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            r = bench_one(name, size, args.batch, device, args)
            rows.append(r)
            print(
                f"| {name} | {size} | {r['train_s_per_iter']:.3f} ({r['train_batch']}, n={r['train_n']}) "
                f"| {r['infer_images_per_s']:.1f} ({r['infer_batch']}, n={r['infer_n']}) | {r['g_params_M']} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
