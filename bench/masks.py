"""Benchmark: random-placement masks per second at 256 x 256, generation only and including the
MaskStore write, for a list of worker counts (median of repeats). Optionally also writes the
real-vs-synthetic mask statistics (KS table + plots) for the same bank.

    PYTHONPATH=$PWD python bench/masks.py --set /work/shared/datasets/emps_sem_particles \
        --count 10000 --workers 1 2 --repeats 3 --results bench/results/masks.json

Results are merged into the JSON file (one entry per set/workers/mode), so worker counts can be
run in separate invocations; the table printed covers everything in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True, help="labeled set whose training split feeds the shape bank")
    ap.add_argument("--config", default="default")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["generate", "write"], choices=["generate", "write"])
    ap.add_argument("--results", default="bench/results/masks.json")
    ap.add_argument("--stats-dir", default=None, help="also write KS table + plots here (e.g. docs/img)")
    ap.add_argument("--stats-count", type=int, default=2000)
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from pipeline.config import load_config
    from pipeline.data.store import shard_ranges
    from pipeline.masks.placement import (
        PlacementSampler,
        _draw_count_in_worker,
        worker_pool,
        write_placement_masks,
    )
    from pipeline.masks.shape_bank import build_shape_bank, training_masks

    cfg = load_config(args.config)
    mcfg = cfg.masks.model_copy(update={"size": args.size})
    stems, real = training_masks(args.set, cfg.data)
    t0 = time.perf_counter()
    bank = build_shape_bank(real, cfg.shape_bank, stems)
    print(f"shape bank: {len(bank)} shapes from {len(stems)} training masks in {time.perf_counter() - t0:.1f} s")
    sampler = PlacementSampler.from_bank(bank, mcfg)

    def generate(workers: int) -> float:
        t = time.perf_counter()
        if workers == 1:
            for i in range(args.count):
                sampler.draw(0, i)
        else:
            with worker_pool(sampler, workers) as pool:
                futs = [pool.submit(_draw_count_in_worker, 0, a, b) for _, a, b in shard_ranges(args.count, 500)]
                for f in futs:
                    f.result()
        return time.perf_counter() - t

    def write(workers: int) -> float:
        out = Path(tempfile.mkdtemp(prefix="bench_masks_"))
        try:
            t = time.perf_counter()
            write_placement_masks(bank, out, mcfg, args.count, 0, shard_size=500, workers=workers, progress=False)
            return time.perf_counter() - t
        finally:
            shutil.rmtree(out, ignore_errors=True)

    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    set_name = Path(args.set).name
    for workers in args.workers:
        for mode in args.modes:
            times = [(generate if mode == "generate" else write)(workers) for _ in range(args.repeats)]
            med = statistics.median(times)
            key = f"{set_name}|{args.size}|{workers}|{mode}"
            results[key] = {
                "set": set_name, "size": args.size, "workers": workers, "mode": mode, "count": args.count,
                "seconds": [round(t, 2) for t in times], "median_s": round(med, 2),
                "masks_per_s": round(args.count / med, 1), "cpus": os.cpu_count(),
            }
            print(f"{set_name} workers={workers} {mode}: {times} -> {args.count / med:.0f} masks/s")
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(results, indent=2) + "\n")

    print("\n| set | size | workers | mode | masks | median s | masks/s |\n|---|---|---|---|---|---|---|")
    for r in results.values():
        print(f"| {r['set']} | {r['size']} | {r['workers']} | {r['mode']} | {r['count']} | {r['median_s']} | {r['masks_per_s']:.0f} |")

    if args.stats_dir:
        from pipeline.masks.stats import compare_mask_stats, plot_mask_grid, plot_mask_stats, real_crops

        synthetic = [sampler.draw(mcfg.seed, i) for i in range(args.stats_count)]
        table = compare_mask_stats(real, synthetic, args.size, min_area=bank.min_area)
        out = Path(args.stats_dir)
        tag = set_name.split("_")[0]
        plot_mask_stats(real, synthetic, args.size, out / f"mask_stats_{tag}.png", min_area=bank.min_area,
                        title=f"{set_name}: real {args.size}px crops of {len(real)} training masks vs placement")
        plot_mask_grid(real_crops(real, args.size, 1, seed=1), synthetic, out / f"mask_grid_{tag}.png")
        print()
        print(table.to_markdown(index=False, floatfmt=".3g") if _has_tabulate() else table.to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
