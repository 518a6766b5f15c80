"""Object-level evaluation of predicted instance masks against ground truth.

Reported per image and pooled over the dataset:

* object precision / recall / F1 at ``iou_threshold`` (counts pooled over images: micro);
* the same F1 swept over IoU 0.50:0.05:0.95 and its mean (a COCO-style summary), plus the
  DSB-style "accuracy" tp / (tp + fp + fn) at each threshold;
* mean IoU of the matched pairs;
* pixel foreground IoU and Dice (ignores instance identity);
* object-count error, absolute and relative;
* object-size distribution error: Wasserstein distance between the equivalent-diameter
  distributions of GT and predicted objects, and the error of the median diameter.

Ratios with a zero denominator follow :func:`.matching.ratio` (0) for object scores; pixel and
size scores with nothing to compare are NaN (written as null in JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from .matching import iou_matrix, match_from_iou, ratio

SWEEP = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def object_areas(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
    areas = counts[1:]
    return areas[areas > 0]


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Diameter of the circle with each object's area, pixels."""
    return np.sqrt(4.0 * object_areas(labels) / np.pi)


def _nan_ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def size_distribution_error(gt_diameters: np.ndarray, pred_diameters: np.ndarray) -> dict[str, float]:
    if len(gt_diameters) == 0 or len(pred_diameters) == 0:
        nan = float("nan")
        return {"diameter_wasserstein": nan, "median_diameter_error": nan, "median_diameter_rel_error": nan}
    med_gt, med_pred = float(np.median(gt_diameters)), float(np.median(pred_diameters))
    return {
        "diameter_wasserstein": float(wasserstein_distance(gt_diameters, pred_diameters)),
        "median_diameter_error": med_pred - med_gt,
        "median_diameter_rel_error": (med_pred - med_gt) / med_gt,
    }


def evaluate_instances(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    eval_cfg,
    names: Sequence[str] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """(summary dict, per-image DataFrame) for aligned lists of predicted and GT label images."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth masks")
    names = list(names) if names is not None else [str(i) for i in range(len(gts))]
    threshold = float(eval_cfg.iou_threshold)
    thresholds = sorted(set(SWEEP) | {threshold})
    totals = {t: np.zeros(3, np.int64) for t in thresholds}  # tp, fp, fn
    matched_ious: list[float] = []
    inter_total = union_total = fg_total = 0
    gt_diam, pred_diam = [], []
    rows = []
    for name, pred, gt in zip(names, preds, gts):
        pred, gt = np.asarray(pred), np.asarray(gt)
        iou = iou_matrix(gt, pred)
        per_t = {}
        for t in thresholds:
            m = match_from_iou(iou, t)
            per_t[t] = m
            totals[t] += (m.tp, m.fp, m.fn)
        main = per_t[threshold]
        matched_ious.extend(main.matched_ious)
        fg_gt, fg_pred = gt > 0, pred > 0
        inter, union = int(np.count_nonzero(fg_gt & fg_pred)), int(np.count_nonzero(fg_gt | fg_pred))
        fg_sum = int(fg_gt.sum() + fg_pred.sum())
        inter_total, union_total, fg_total = inter_total + inter, union_total + union, fg_total + fg_sum
        d_gt, d_pred = equivalent_diameters(gt), equivalent_diameters(pred)
        gt_diam.append(d_gt)
        pred_diam.append(d_pred)
        rows.append(
            {
                "image": name,
                "n_true": main.n_true,
                "n_pred": main.n_pred,
                "tp": main.tp,
                "fp": main.fp,
                "fn": main.fn,
                "precision": main.precision,
                "recall": main.recall,
                "f1": main.f1,
                "f1_50_95": float(np.mean([per_t[t].f1 for t in SWEEP])),
                "mean_matched_iou": main.mean_matched_iou if main.tp else float("nan"),
                "pixel_iou": _nan_ratio(inter, union),
                "pixel_dice": _nan_ratio(2 * inter, fg_sum),
                "count_error": main.n_pred - main.n_true,
                "count_rel_error": _nan_ratio(main.n_pred - main.n_true, main.n_true),
                "median_diameter_true": float(np.median(d_gt)) if len(d_gt) else float("nan"),
                "median_diameter_pred": float(np.median(d_pred)) if len(d_pred) else float("nan"),
            }
        )
    frame = pd.DataFrame(rows)

    def scores(t: float) -> dict[str, float]:
        tp, fp, fn = (int(v) for v in totals[t])
        return {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": ratio(tp, tp + fp + fn),
        }

    main = scores(threshold)
    n_true, n_pred = int(frame["n_true"].sum()) if len(frame) else 0, int(frame["n_pred"].sum()) if len(frame) else 0
    with_gt = frame[frame["n_true"] > 0] if len(frame) else frame
    summary = {
        "n_images": len(rows),
        "iou_threshold": threshold,
        **main,
        "f1_50_95": float(np.mean([scores(t)["f1"] for t in SWEEP])),
        "accuracy_50_95": float(np.mean([scores(t)["accuracy"] for t in SWEEP])),
        "sweep": {f"{t:.2f}": scores(t) for t in SWEEP},
        "mean_matched_iou": float(np.mean(matched_ious)) if matched_ious else float("nan"),
        "pixel_iou": _nan_ratio(inter_total, union_total),
        "pixel_dice": _nan_ratio(2 * inter_total, fg_total),
        "n_true": n_true,
        "n_pred": n_pred,
        "count_mae": float(frame["count_error"].abs().mean()) if len(frame) else float("nan"),
        "count_rel_error": _nan_ratio(n_pred - n_true, n_true),
        "count_mean_abs_rel_error": float(with_gt["count_rel_error"].abs().mean()) if len(with_gt) else float("nan"),
        **size_distribution_error(
            np.concatenate(gt_diam) if gt_diam else np.zeros(0),
            np.concatenate(pred_diam) if pred_diam else np.zeros(0),
        ),
    }
    return summary, frame


def json_safe(obj):
    """NaN -> None recursively, so summaries are valid JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj
