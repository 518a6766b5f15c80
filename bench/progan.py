"""ProgressiveGAN masks vs placement masks vs real masks: the statistics the industrial study used
to call ProgressiveGAN masks weak, measured here.

Trains the ProgressiveGAN mask source on the training split's masks (through the stage, so the
result is cached like in the flow), samples masks, and compares count / coverage / area /
equivalent diameter against random ``masks.size`` crops of the real training masks (KS statistic:
0 = same distribution, 1 = disjoint), next to the placement masks of the same config.

    PYTHONPATH=$PWD python bench/progan.py --set ../shared/datasets/emps_sem_particles \
        --out docs/results/progan_emps masks.progan_steps=1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import context, stages  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.data.store import MaskStore  # noqa: E402
from pipeline.io import write_text  # noqa: E402
from pipeline.masks.stats import compare_mask_stats, plot_mask_grid, real_crops  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--config", default="default")
    ap.add_argument("--count", type=int, default=500, help="masks per source to compare")
    ap.add_argument("--out", required=True, help="output path without suffix (.md table, _grid.png)")
    ap.add_argument("--grid", default=None, help="mask grid PNG path (default: <out>_grid.png)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cfg = load_config(args.config, [*args.overrides, f"data.set={args.set}", "runtime.progress=true"])
    ctx = context.prepare(cfg, run_id=f"progan-{cfg.name}")
    t0 = time.perf_counter()
    progan_dir, secs, cached = stages.stage_masks(ctx, "progan", None, args.count)
    print(f"progan masks: {'cached' if cached else f'{secs:.0f} s'} -> {progan_dir}", flush=True)
    bank, _, _ = stages.stage_shape_bank(ctx)
    placement_dir, _, _ = stages.stage_masks(ctx, "placement", bank, args.count)
    real = [m for _, m in ctx.pairs("train")]
    min_area = cfg.shape_bank.min_area
    stores = {"progan": MaskStore(progan_dir), "placement": MaskStore(placement_dir)}
    lines = [f"Set `{args.set}`, config `{args.config}` {' '.join(args.overrides)}; {args.count} masks per "
             f"source at {cfg.masks.size}²; ProgressiveGAN {cfg.masks.progan_steps} steps "
             f"({'cached' if cached else f'{secs:.0f} s'}); objects < {min_area} px ignored.", "",
             "| metric | real median | ProgressiveGAN median | KS ProgressiveGAN | placement median | KS placement |",
             "|---|---|---|---|---|---|"]
    tables = {k: compare_mask_stats(real, [s[i] for i in range(len(s))], cfg.masks.size, min_area=min_area)
              for k, s in stores.items()}
    for i, row in tables["progan"].iterrows():
        pl = tables["placement"].iloc[i]
        lines.append(f"| {row.metric} | {row.median_real:.3g} | {row.median_synthetic:.3g} | {row.ks_statistic:.3f} | "
                     f"{pl.median_synthetic:.3g} | {pl.ks_statistic:.3f} |")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    plot_mask_grid(real_crops(real, cfg.masks.size, 1, seed=1), [stores["progan"][i] for i in range(16)],
                   Path(args.grid or out.parent / f"{out.name}_grid.png"), label="ProgressiveGAN")
    print("\n".join(lines))
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
