"""Benchmark: our SPADE generator's inference in NCHW against channels_last, fp32 and bf16 autocast.

The product generates in channels_last. On the Xeon with AMX, fp32 ran faster in NCHW
(bench/spade_reference.py), so this checks which layout wins in the precision the product actually
runs there (bf16 where the CPU has it). The four variants alternate; medians after one warm-up round.

    PYTHONPATH=$PWD python bench/spade_layout.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spade", nargs="*", default=["64x256", "16x128"], help="ngf x size pairs")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pipeline.generators.base import fold_spectral_norm, mask_to_input
    from pipeline.generators.spade.networks import SPADEGenerator

    print("| ngf, size | NCHW fp32 | NCHW bf16 | channels_last fp32 | channels_last bf16 | (img/s) |\n|---|---|---|---|---|---|")
    for spec in args.spade:
        ngf, size = (int(v) for v in spec.split("x"))
        torch.manual_seed(0)
        g = fold_spectral_norm(SPADEGenerator(2, 3, ngf).eval())
        coarse = torch.randint(0, 8, (args.batch, 1, size // 16, size // 16), generator=torch.Generator().manual_seed(0))
        m = mask_to_input(torch.nn.functional.interpolate(coarse.float(), size=(size, size), mode="nearest")[:, 0].long())
        variants = [(layout, bf16) for layout in (torch.contiguous_format, torch.channels_last) for bf16 in (False, True)]
        times = {v: [] for v in variants}
        for rep in range(args.repeats + 1):  # round 0 warms up
            for layout, bf16 in variants:
                g.to(memory_format=layout)
                x = m.contiguous(memory_format=layout)
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    t = time.perf_counter()
                    g(x)
                    dt = time.perf_counter() - t
                if rep:
                    times[(layout, bf16)].append(dt)
        cells = " | ".join(f"{args.batch / statistics.median(times[v]):.3f}" for v in variants)
        print(f"| {ngf}, {size} px | {cells} | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
