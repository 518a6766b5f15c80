"""Benchmark: how much each mask source's layouts look like real crops of a set (issue 13).

For the training split of a set (the same split the flow uses, ``data.*`` overrides apply), draws
``--count`` masks per source at ``masks.size`` and compares them with random real crops of the
same size: mean coverage, objects per canvas, touching pairs per object, touching neighbours per
object, the fraction of objects that touch another, and the KS statistic against the real crops
for every metric of ``pipeline.masks.stats.REPORT_METRICS``.

    PYTHONPATH=$PWD python bench/mask_sources.py --set /work/shared/datasets/emps_sem_particles \
        data.test_list=splits/emps_sem_particles_test.txt

Sources: realmask (default settings), placement with ``masks.clustering`` 0 (independent places)
and ``auto`` (clusters matching the real touching rate). Prints two markdown tables and writes
them, with the command line, to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True, help="labeled-set folder")
    ap.add_argument("--config", default="default")
    ap.add_argument("--count", type=int, default=400, help="masks per source")
    ap.add_argument("--crops-per-image", type=int, default=4, help="real crops per training mask")
    ap.add_argument("--out", default="bench/results/mask_sources.json")
    ap.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    args = ap.parse_args()

    import numpy as np

    from pipeline.config import load_config
    from pipeline.masks.placement import PlacementSampler, touching_fraction
    from pipeline.masks.realmask import generate_realmask_masks
    from pipeline.masks.shape_bank import build_shape_bank, training_masks
    from pipeline.masks.stats import compare_mask_stats, mask_stats, real_crops

    cfg = load_config(args.config, args.overrides)
    stems, real = training_masks(args.set, cfg.data)
    bank = build_shape_bank(real, cfg.shape_bank, stems)
    size, min_area = cfg.masks.size, bank.min_area
    crops = real_crops(real, size, args.crops_per_image, seed=0)

    sources = {"real crops": lambda: crops,
               "realmask": lambda: generate_realmask_masks(real, cfg.masks, 0, range(args.count), min_area)}
    for clustering in (0.0, "auto"):
        def draw(clustering=clustering):
            sampler = PlacementSampler.from_bank(bank, cfg.masks.model_copy(update={"clustering": clustering}))
            draw.attach = None if sampler.attach is None else float(np.mean(sampler.attach))
            return sampler.draw_range(0, 0, args.count)
        sources[f"placement, clustering {clustering}"] = draw

    summary, ks = [], {}
    for name, make in sources.items():
        t0 = time.perf_counter()
        masks = make()
        seconds = time.perf_counter() - t0
        per_mask, per_object = mask_stats(masks, size, min_area)
        summary.append({
            "source": name, "masks": len(masks),
            "mean_coverage": float(per_mask["coverage"].mean()),
            "objects_per_canvas": float(per_mask["count_per_canvas"].mean()),
            "touching_pairs_per_object": float(per_mask["touching_pairs_per_object"].mean()),
            "touching_neighbours_per_object": float(per_object["touching_neighbours"].mean()),
            "objects_touching_another": touching_fraction(masks),
            "attach": getattr(make, "attach", None),
            "ms_per_mask": 1000 * seconds / len(masks) if name != "real crops" else None,
        })
        if name != "real crops":
            table = compare_mask_stats(real, masks, size, args.crops_per_image, seed=0, min_area=min_area)
            ks[name] = dict(zip(table["metric"], table["ks_statistic"].round(3)))

    print(f"{Path(args.set).name}: {len(stems)} training masks, {len(bank)} shapes, {size} px canvases\n")
    print("| source | mean coverage | objects / canvas | touching pairs / object | touching neighbours / object "
          "| objects touching another | attach (mean) |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        attach = "" if r["attach"] is None else f"{r['attach']:.2f}"
        print(f"| {r['source']} | {r['mean_coverage']:.3f} | {r['objects_per_canvas']:.2f} | "
              f"{r['touching_pairs_per_object']:.3f} | {r['touching_neighbours_per_object']:.3f} | "
              f"{100 * r['objects_touching_another']:.1f} % | {attach} |")
    metrics = list(next(iter(ks.values())))
    print("\nKS against the real crops (0 = same distribution)\n")
    print("| source | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for name, row in ks.items():
        print(f"| {name} | " + " | ".join(f"{row[m]:.3f}" for m in metrics) + " |")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[Path(args.set).name] = {"command": " ".join(["python", *sys.argv]), "summary": summary, "ks": ks}
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
