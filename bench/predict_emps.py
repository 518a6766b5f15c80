"""How well do `synth-pretrain predict` outputs measure what a user cares about: counts and sizes?

Compares the ``objects.csv`` written by ``synth-pretrain predict`` with ground-truth instance masks
of the same images, per image and pooled, and prints a markdown table:

    PYTHONPATH=. python bench/predict_emps.py /tmp/predict_emps ../shared/datasets/emps_sem_particles/masks

* count error: n_pred - n_true per image; MAE, mean |relative error| (images with objects), and the
  pooled relative error (sum n_pred - sum n_true) / sum n_true;
* median equivalent-diameter error: per image (median of the predicted objects' diameters minus that
  of the true ones; reported as the median and the mean of |error| over images with both), and pooled
  (median over every predicted object minus median over every true object).

Ground truth is not filtered by area (as in the study's evaluation); the predictions already had the
run's min_object_area applied by ``predict``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.data.images import read_mask
from pipeline.evaluation.metrics import equivalent_diameters
from pipeline.io import read_json


def _label(settings: dict) -> str:
    model = settings.get("model") or {}
    if model.get("arm"):
        return f"{model['arm']} (seed {model.get('seed')})"
    return Path(settings["checkpoint"]).parent.parent.name


def compare(pred_dir: Path, gt_masks: Path) -> dict:
    objects = pd.read_csv(pred_dir / "objects.csv")
    summary = pd.read_csv(pred_dir / "summary.csv")
    rows, gt_all, pred_all = [], [], []
    for image in summary["image"]:
        stem = Path(image).stem
        gt_file = next((p for p in gt_masks.glob(f"{stem}.*")), None)
        if gt_file is None:
            raise SystemExit(f"{gt_masks}: no ground-truth mask for {image}")
        d_gt = equivalent_diameters(read_mask(gt_file))
        d_pred = objects.loc[objects["image"] == image, "equivalent_diameter_px"].to_numpy(float)
        gt_all.append(d_gt)
        pred_all.append(d_pred)
        rows.append({
            "image": image,
            "n_true": len(d_gt),
            "n_pred": len(d_pred),
            "median_d_true": np.median(d_gt) if len(d_gt) else np.nan,
            "median_d_pred": np.median(d_pred) if len(d_pred) else np.nan,
        })
    f = pd.DataFrame(rows)
    f["count_error"] = f["n_pred"] - f["n_true"]
    with_gt = f[f["n_true"] > 0]
    rel = (with_gt["count_error"] / with_gt["n_true"]).abs()
    f["median_d_error"] = f["median_d_pred"] - f["median_d_true"]
    both = f.dropna(subset=["median_d_error"])
    gt_pool, pred_pool = np.concatenate(gt_all), np.concatenate(pred_all)
    settings = read_json(pred_dir / "predict.json")
    return {
        "model": _label(settings),
        "images": len(f),
        "n_true": int(f["n_true"].sum()),
        "n_pred": int(f["n_pred"].sum()),
        "count_mae": float(f["count_error"].abs().mean()),
        "count_median_abs": float(f["count_error"].abs().median()),
        "count_mean_abs_rel": float(rel.mean()),
        "count_median_abs_rel": float(rel.median()),
        "count_pooled_rel": float((f["n_pred"].sum() - f["n_true"].sum()) / f["n_true"].sum()),
        "median_d_err_per_image_median": float(both["median_d_error"].median()),
        "median_d_abs_err_per_image_mean": float(both["median_d_error"].abs().mean()),
        "median_d_abs_rel_err_per_image_median": float((both["median_d_error"] / both["median_d_true"]).abs().median()),
        "images_with_both": len(both),
        "median_d_true_pooled": float(np.median(gt_pool)),
        "median_d_pred_pooled": float(np.median(pred_pool)) if len(pred_pool) else float("nan"),
        "min_object_area": settings["min_object_area"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pred_dirs", nargs="+", type=Path, help="output folders of synth-pretrain predict")
    ap.add_argument("gt_masks", type=Path, help="folder of ground-truth instance masks (<stem>.png)")
    args = ap.parse_args(argv)
    results = [compare(d, args.gt_masks) for d in args.pred_dirs]
    print("| model | images | objects true / pred | count MAE | median abs count error | mean abs rel. count error "
          "| median abs rel. count error | pooled rel. count error | per-image median-diameter error, median (px) "
          "| per-image median-diameter abs error, mean (px) | per-image median-diameter abs rel. error, median "
          "| pooled median diameter true / pred (px) | min area |")
    print("|---" * 13 + "|")
    for r in results:
        print(f"| {r['model']} | {r['images']} | {r['n_true']} / {r['n_pred']} | {r['count_mae']:.1f} "
              f"| {r['count_median_abs']:.0f} | {r['count_mean_abs_rel']:.2f} | {r['count_median_abs_rel']:.2f} "
              f"| {r['count_pooled_rel']:+.3f} | {r['median_d_err_per_image_median']:+.1f} "
              f"| {r['median_d_abs_err_per_image_mean']:.1f} | {r['median_d_abs_rel_err_per_image_median']:.2f} "
              f"| {r['median_d_true_pooled']:.1f} / {r['median_d_pred_pooled']:.1f} | {r['min_object_area']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
