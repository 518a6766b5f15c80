"""Seconds per segmentation training step for candidate encoders (bare smp model, random data).

Used to size the CPU default config: under the plateau protocol the CPU time goes to training
every arm until it stops improving, so a step's cost matters as much as how fast a model learns
(which this script does not measure: see docs/RESULTS.md section 12 for steps to the plateau).

    PYTHONPATH=$PWD python bench/encoders.py --threads 2 --encoders resnet18 mobilenet_v2 tu-mobilenetv3_small_100
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def step_seconds(arch: str, encoder: str, batch: int, size: int, channels: int, warmup: int, iters: int) -> float:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=channels, classes=2)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 2, size, size)
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["resnet18", "mobilenet_v2", "tu-mobilenetv3_small_100"])
    ap.add_argument("--arch", default="Linknet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=6)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| encoder | s / step (median) | parameters (M) |\n|---|---|---|")
    for enc in args.encoders:
        import segmentation_models_pytorch as smp

        n = sum(p.numel() for p in smp.create_model(args.arch, encoder_name=enc, encoder_weights=None,
                                                    in_channels=args.channels, classes=2).parameters()) / 1e6
        s = step_seconds(args.arch, enc, args.batch, args.size, args.channels, args.warmup, args.iters)
        print(f"| {args.arch} / {enc} | {s:.3f} | {n:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
