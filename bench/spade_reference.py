"""Benchmark: our SPADE generator against NVlabs/SPADE's ``SPADEGenerator``, side by side (issue 16).

The reference is imported from a checkout that you point the script at; nothing of it is copied
into this repository (its license, CC BY-NC-SA 4.0, is not ours):

    git clone https://github.com/NVlabs/SPADE /tmp/SPADE        # any checkout; no install needed
    PYTHONPATH=$PWD python bench/spade_reference.py --reference /tmp/SPADE

Same configuration on both sides: 2-channel label map (foreground + instance edges, the
reference's ``label_nc=1`` plus its instance-edge channel), ``spectralspadeinstance3x3`` norm,
``normal`` upsampling (5 levels), no VAE, 3 output channels, SPADE hidden width 128 (ours is
``2 x ngf``: equal at ngf 64, so other ngf compare different networks and are marked so).

1. **Same function.** Spectral norm is folded into plain weights on both sides, the reference's
   weights are copied into ours by name, and the outputs on random masks are compared (fp32).
2. **Inference**: images/s at ``--batch``, ``inference_mode``, spectral norm folded, both in NCHW
   and in channels_last (ours runs channels_last in the product). Medians of ``--repeats``
   alternating runs, after one warm-up each.
3. **Training step of the generator**: forward + backward of an L1 loss through the generator with
   spectral norm live (the discriminator is the same PatchGAN family on both sides and left out).
4. **GFLOP/s** from ``torch.utils.flop_counter`` and the machine's measured peak (the median of
   large fp32 matmuls in the same run), so "% of peak" is against this machine, not a datasheet.
5. **bf16** (``--bf16 auto``: where the CPU has AVX512_BF16 / AMX, as the product decides): both
   generators again under bf16 autocast, inference and training step, against the bf16 matmul
   peak; and how far our bf16 images are from our fp32 images.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn as nn


def load_reference(checkout: Path):
    """``models.networks.generator`` of a SPADE checkout without running its package ``__init__``
    files (they import the whole training code) and without its sync-batchnorm submodule (stubbed
    by plain BatchNorm; the instance-norm configuration benchmarked here never uses it)."""
    nets = checkout / "models" / "networks"
    if not (nets / "generator.py").is_file():
        sys.exit(f"--reference {checkout}: not a NVlabs/SPADE checkout (no models/networks/generator.py)")
    for name, path in (("models", checkout / "models"), ("models.networks", nets)):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(path)]
        sys.modules[name] = pkg
    sync = types.ModuleType("models.networks.sync_batchnorm")
    sync.SynchronizedBatchNorm2d = nn.BatchNorm2d
    sys.modules["models.networks.sync_batchnorm"] = sync
    return importlib.import_module("models.networks.generator").SPADEGenerator


def reference_options(ngf: int, size: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        ngf=ngf, semantic_nc=2, label_nc=1, contain_dontcare_label=False, no_instance=False,
        norm_G="spectralspadeinstance3x3", num_upsampling_layers="normal", crop_size=size,
        aspect_ratio=1.0, use_vae=False, z_dim=256,
    )


def fold_reference(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if hasattr(m, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(m)
    return model


OUR_NAME = (("G_middle_", "middle_"), ("mlp_shared", "shared"), ("mlp_gamma", "gamma"), ("mlp_beta", "beta"))


def copy_reference_weights(ref: nn.Module, ours: nn.Module) -> int:
    """Copy the (folded) reference's weights into our (folded) generator by name; returns the count."""
    ours_params = dict(ours.state_dict())
    copied = {}
    for name, value in ref.state_dict().items():
        mapped = name
        for a, b in OUR_NAME:
            mapped = mapped.replace(a, b)
        if mapped not in ours_params or ours_params[mapped].shape != value.shape:
            sys.exit(f"reference weight {name} ({tuple(value.shape)}) has no counterpart in ours")
        copied[mapped] = value
    missing = set(ours_params) - set(copied)
    if missing:
        sys.exit(f"our weights without a reference counterpart: {sorted(missing)[:5]}")
    ours.load_state_dict(copied)
    return len(copied)


def masks(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    from pipeline.generators.base import mask_to_input

    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 8, (batch, 1, size // 16, size // 16), generator=g).float()
    inst = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")[:, 0].long()
    return mask_to_input(inst)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def peak_gflops(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = statistics.median(timed(lambda: a @ b, repeats))
    return 2 * n**3 / t / 1e9


def gflop_per_image(model: nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / x.shape[0] / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, type=Path, help="a NVlabs/SPADE checkout")
    ap.add_argument("--ngf", type=int, nargs="+", default=[64, 16])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-repeats", type=int, default=3)
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="also time both under bf16 autocast (auto: where the CPU has AVX512_BF16 / AMX)")
    ap.add_argument("--out", default="bench/results/spade_reference.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pipeline.generators.base import fold_spectral_norm
    from pipeline.generators.spade.networks import SPADEGenerator as OurSPADE

    RefSPADE = load_reference(args.reference)
    from pipeline.device import cpu_has_native_bf16

    bf16 = {"auto": cpu_has_native_bf16(), "on": True, "off": False}[args.bf16]
    peak = peak_gflops()
    peak_bf16 = peak_gflops(dtype=torch.bfloat16) if bf16 else float("nan")
    print(f"torch {torch.__version__}, {args.threads} threads, measured matmul peak {peak:.1f} GFLOP/s fp32"
          + (f", {peak_bf16:.1f} bf16" if bf16 else ""))
    rows = []
    for ngf in args.ngf:
        torch.manual_seed(0)
        ref = RefSPADE(reference_options(ngf, args.size))
        ours = OurSPADE(2, 3, ngf)
        x = masks(args.batch, args.size)
        row = {"ngf": ngf, "size": args.size, "batch": args.batch, "threads": args.threads,
               "same_hidden_width": 2 * ngf == 128}

        # --- training step of the generator (spectral norm live on both sides) ---
        target = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1

        def step(model):
            def run():
                model.zero_grad(set_to_none=True)
                torch.nn.functional.l1_loss(model(x), target).backward()
            return run

        def step_bf16(model):
            def run():
                model.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(x)
                torch.nn.functional.l1_loss(out.float(), target).backward()
            return run

        fns = {"reference": step(ref), "ours": step(ours)}
        if bf16:
            fns |= {"reference_bf16": step_bf16(ref), "ours_bf16": step_bf16(ours)}
        for fn in fns.values():
            fn()
        t = {k: [] for k in fns}
        for _ in range(args.train_repeats):  # alternate, so drifting load hits all
            for k, fn in fns.items():
                t[k] += timed(fn, 1)
        row["train_step_s"] = {k: statistics.median(v) for k, v in t.items()}

        # --- same function, then inference ---
        ref, ours = fold_reference(ref.eval()), fold_spectral_norm(ours.eval())
        if row["same_hidden_width"]:
            row["weights_copied"] = copy_reference_weights(ref, ours)
            with torch.inference_mode():
                row["max_abs_diff_fp32"] = float((ref(x) - ours(x)).abs().max())
        else:  # different networks: nothing to compare output for output
            row["weights_copied"], row["max_abs_diff_fp32"] = 0, float("nan")
        row["gflop_per_image"] = gflop_per_image(ours, x)
        row["gflop_per_image_reference"] = gflop_per_image(ref, x)
        variants = {}
        for layout in ("nchw", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            xi = x.contiguous(memory_format=fmt)
            for side, model in (("reference", ref), ("ours", ours)):
                model.to(memory_format=fmt)
            with torch.inference_mode():
                ref(xi), ours(xi)  # warm-up
                a, b = [], []
                for _ in range(args.repeats):
                    a += timed(lambda: ref(xi), 1)
                    b += timed(lambda: ours(xi), 1)
            for side, times in (("reference", a), ("ours", b)):
                ips = args.batch / statistics.median(times)
                variants[f"{side}_{layout}"] = {
                    "images_per_s": ips, "gflop_per_s": ips * row["gflop_per_image"],
                    "percent_of_peak": 100 * ips * row["gflop_per_image"] / peak}
        if bf16:  # what the product runs where the CPU does bf16 natively (runtime.precision: auto)
            xi = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                low = ours(xi).float()
                ref(xi)  # warm-up
                a, b = [], []
                for _ in range(args.repeats):
                    a += timed(lambda: ref(xi), 1)
                    b += timed(lambda: ours(xi), 1)
            with torch.inference_mode():
                high = ours(xi).float()
            row["ours_bf16_vs_fp32"] = {"max_abs_diff": float((low - high).abs().max()),
                                        "mean_abs_diff": float((low - high).abs().mean())}
            for side, times in (("reference", a), ("ours", b)):
                ips = args.batch / statistics.median(times)
                variants[f"{side}_channels_last_bf16"] = {
                    "images_per_s": ips, "gflop_per_s": ips * row["gflop_per_image"],
                    "percent_of_peak": 100 * ips * row["gflop_per_image"] / peak_bf16}
        row["inference"] = variants
        row["peak_gflop_per_s"] = peak
        row["peak_gflop_per_s_bf16"] = peak_bf16
        rows.append(row)

        inf = variants
        print(f"\nngf {ngf}, {args.size} px, batch {args.batch}: {row['weights_copied']} weight tensors copied, "
              f"max |ours - reference| = {row['max_abs_diff_fp32']:.2e} (fp32), "
              f"{row['gflop_per_image']:.1f} GFLOP/image (reference {row['gflop_per_image_reference']:.1f})"
              + ("" if row["same_hidden_width"] else "  [hidden width differs: ours 2 x ngf, reference 128]"))
        print("| | reference | ours | ours / reference |")
        print("|---|---|---|---|")
        for layout in ("nchw", "channels_last"):
            r, o = inf[f"reference_{layout}"], inf[f"ours_{layout}"]
            print(f"| inference img/s, {layout} | {r['images_per_s']:.3f} ({r['percent_of_peak']:.0f} % of peak) | "
                  f"{o['images_per_s']:.3f} ({o['percent_of_peak']:.0f} % of peak) | "
                  f"x{o['images_per_s'] / r['images_per_s']:.2f} |")
        if bf16:
            r, o = inf["reference_channels_last_bf16"], inf["ours_channels_last_bf16"]
            r32 = inf["reference_channels_last"]
            print(f"| inference img/s, channels_last, bf16 | {r['images_per_s']:.3f} ({r['percent_of_peak']:.0f} % of bf16 peak) | "
                  f"{o['images_per_s']:.3f} ({o['percent_of_peak']:.0f} % of bf16 peak) | "
                  f"x{o['images_per_s'] / r['images_per_s']:.2f} (x{o['images_per_s'] / r32['images_per_s']:.2f} "
                  "against the reference in fp32) |")
        tr = row["train_step_s"]
        print(f"| G training step s (fwd + bwd) | {tr['reference']:.2f} | {tr['ours']:.2f} | "
              f"x{tr['reference'] / tr['ours']:.2f} |")
        if bf16:
            print(f"| G training step s, bf16 | {tr['reference_bf16']:.2f} | {tr['ours_bf16']:.2f} | "
                  f"x{tr['reference_bf16'] / tr['ours_bf16']:.2f} (x{tr['reference'] / tr['ours_bf16']:.2f} "
                  "against the reference in fp32) |")
            d = row["ours_bf16_vs_fp32"]
            print(f"ours, bf16 against fp32 output (images in [-1, 1]): max |diff| {d['max_abs_diff']:.3f}, "
                  f"mean {d['mean_abs_diff']:.4f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
