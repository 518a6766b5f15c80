"""Benchmark: bf16 autocast against fp32 on this CPU, for the work the CPU default spends its time on
(issue 16): a segmentation training step, a validation-size forward pass, and SPADE-16 generation.

The product turns bf16 on by itself where the CPU has AVX512_BF16 or AMX (``runtime.precision:
auto``, ``pipeline/device.py``); elsewhere bf16 is emulated and slower, so this script refuses to
time it unless ``--force``. Both precisions run in the same process, alternating repeat by repeat
so that drifting load hits both; each figure is a median of ``--repeats`` after ``--warmup``.

    PYTHONPATH=$PWD python bench/precision.py                  # 2 threads (one process on the 2-core CPU)
    PYTHONPATH=$PWD python bench/precision.py --threads 1      # what one of the default's two Dask workers has
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def _alternate(fns: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn (fp32, bf16, fp32, ...) after warm-ups."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def seg_cases(args):
    """Training step (fwd + bwd + AdamW) at the default's batch and crop; a forward pass over one
    validation-size image (what each evaluation does for every validation image)."""
    from pipeline.segmentation.models import create_model

    torch.manual_seed(0)
    model = create_model(args.arch, args.encoder, 1, 2).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(args.batch, 1, args.crop, args.crop).contiguous(memory_format=torch.channels_last)
    y = torch.rand(args.batch, 2, args.crop, args.crop)
    image = torch.randn(1, 1, args.image, args.image).contiguous(memory_format=torch.channels_last)

    def train(bf16: bool):
        def run():
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return run

    def infer(bf16: bool):
        def run():
            model.eval()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(image)
        return run

    with torch.inference_mode():
        model.eval()
        ref = model(image).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(image).float()
    agree = float(((ref > 0) == (low > 0)).float().mean())
    return [
        (f"{args.arch}/{args.encoder} training step, batch {args.batch}, {args.crop} px", train, None),
        (f"{args.arch}/{args.encoder} forward, one {args.image} px image (validation, predict)", infer,
         {"logit_sign_agreement": agree, "max_abs_logit_diff": float((ref - low).abs().max())}),
    ]


def spade_cases(args):
    """SPADE generation at the CPU default's size (ngf 16, 128 px) and the paper's (ngf 64, 256 px)."""
    from pipeline.generators.base import fold_spectral_norm, mask_to_input
    from pipeline.generators.spade.networks import SPADEGenerator

    cases = []
    for ngf, size in args.spade:
        torch.manual_seed(0)
        g = fold_spectral_norm(SPADEGenerator(2, 1, ngf).eval()).to(memory_format=torch.channels_last)
        coarse = torch.randint(0, 8, (args.spade_batch, 1, size // 16, size // 16), generator=torch.Generator().manual_seed(0))
        inst = torch.nn.functional.interpolate(coarse.float(), size=(size, size), mode="nearest")[:, 0].long()
        m = mask_to_input(inst).contiguous(memory_format=torch.channels_last)

        def gen(bf16: bool, g=g, m=m):
            def run():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    g(m)
            return run

        with torch.inference_mode():
            ref = g(m).float()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = g(m).float()
        cases.append((f"SPADE ngf {ngf} generation, {size} px, batch {args.spade_batch}", gen,
                      {"max_abs_pixel_diff": float((ref - low).abs().max()),
                       "mean_abs_pixel_diff": float((ref - low).abs().mean())}))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="Linknet")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--image", type=int, default=512)
    ap.add_argument("--spade", type=lambda s: tuple(int(v) for v in s.split("x")), nargs="*",
                    default=[(16, 128), (64, 256)], help="ngf x size pairs, e.g. 16x128 64x256")
    ap.add_argument("--spade-batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="time bf16 even where the CPU emulates it")
    ap.add_argument("--out", default="bench/results/precision.json")
    args = ap.parse_args(argv)

    from pipeline.device import cpu_has_native_bf16

    native = cpu_has_native_bf16()
    if not native and not args.force:
        print("this CPU has no AVX512_BF16 / AMX: bf16 is emulated here and the product keeps fp32 "
              "(runtime.precision: auto); --force times it anyway", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, native bf16: {native}")
    print("| work | fp32 s | bf16 s | bf16 speed-up | bf16 vs fp32 output |\n|---|---|---|---|---|")
    rows = []
    for name, make, agreement in [*seg_cases(args), *spade_cases(args)]:
        t = _alternate({"fp32": make(False), "bf16": make(True)}, args.repeats, args.warmup)
        rows.append({"work": name, "fp32_s": t["fp32"], "bf16_s": t["bf16"], "speedup": t["fp32"] / t["bf16"],
                     **(agreement or {})})
        shown = ", ".join(f"{k} {v:.3g}" for k, v in (agreement or {}).items())
        print(f"| {name} | {t['fp32']:.3f} | {t['bf16']:.3f} | x{t['fp32'] / t['bf16']:.2f} | {shown} |", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
                               "threads": args.threads, "native_bf16": native, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
