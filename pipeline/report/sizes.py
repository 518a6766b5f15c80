"""Recall and precision by object size, computed at collect time from the arms' test predictions.

An overall F1 hides *which* objects a model misses; a plant engineer needs to know whether the fines
or the large lumps are the problem. The arms' own evaluation (pipeline/segmentation/arms.py) is not
touched: its code hash keys the cached arm results, and a change there would retrain every arm. So
the report layer re-matches each arm's ``predictions.npz`` against the ground-truth test masks at the
run's IoU threshold (the same one-to-one matching, pipeline/evaluation/matching.py) and bins:

* recall by **ground-truth** size: of the true objects of this size, how many were found;
* precision by **predicted** size: of the objects the model reported at this size, how many are real.

Size is the equivalent diameter in pixels (the diameter of a disc of the same area), the measure
``predict`` writes to objects.csv. The bin edges come from the ground-truth sizes of the test set
(quantiles, so each bin holds about as many true objects), shared by every arm so they compare.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..evaluation.matching import match_instances

SIZE_BIN_COLUMNS = ["arm", "seed", "n_real", "bin", "lo_px", "hi_px", "n_gt", "tp_gt", "n_pred", "tp_pred"]


def object_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters (px) of the objects of an instance map, in the order of their sorted ids:
    the order match_instances indexes objects in."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    areas = counts[values != 0].astype(np.float64)
    return np.sqrt(4.0 * areas / np.pi)


def size_edges(gt_diameters: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Bin edges in px: 0, the inner quantiles of the ground-truth diameters (rounded to whole pixels,
    duplicates dropped), inf. Open ends, so every predicted object, however small or large, has a bin."""
    d = np.asarray(gt_diameters, dtype=np.float64)
    if d.size == 0:
        return np.array([0.0, np.inf])
    inner = np.unique(np.round(np.quantile(d, np.linspace(0, 1, n_bins + 1)[1:-1])))
    inner = inner[inner > 0]
    return np.concatenate([[0.0], inner, [np.inf]])


def size_bin_counts(preds: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray], edges: np.ndarray,
                    iou_threshold: float) -> pd.DataFrame:
    """Per size bin: true objects, true objects found, predicted objects, predicted objects that match.
    ``preds`` and ``gts`` are keyed by test stem; a stem without a prediction counts as no objects."""
    n_bins = len(edges) - 1
    n_gt, tp_gt, n_pred, tp_pred = (np.zeros(n_bins, np.int64) for _ in range(4))
    for stem, gt in gts.items():
        gt = np.asarray(gt).astype(np.int64)
        pred = np.asarray(preds[stem]).astype(np.int64) if stem in preds else np.zeros_like(gt)
        m = match_instances(gt, pred, iou_threshold)
        gt_bin = np.clip(np.searchsorted(edges, object_diameters(gt), side="right") - 1, 0, n_bins - 1)
        pr_bin = np.clip(np.searchsorted(edges, object_diameters(pred), side="right") - 1, 0, n_bins - 1)
        n_gt += np.bincount(gt_bin, minlength=n_bins)
        n_pred += np.bincount(pr_bin, minlength=n_bins)
        if m.pairs:
            gi, pj = (np.array(x, np.int64) for x in zip(*m.pairs))
            tp_gt += np.bincount(gt_bin[gi], minlength=n_bins)
            tp_pred += np.bincount(pr_bin[pj], minlength=n_bins)
    return pd.DataFrame({"bin": np.arange(n_bins), "lo_px": edges[:-1], "hi_px": edges[1:],
                         "n_gt": n_gt, "tp_gt": tp_gt, "n_pred": n_pred, "tp_pred": tp_pred})


def pooled_by_size(table: pd.DataFrame) -> pd.DataFrame:
    """size_bins.csv rows of the largest n_real pooled over seeds: one row per (arm, bin) with
    recall = found / true and precision = matching / predicted (NaN where a bin is empty)."""
    if table.empty:
        return table
    top = table[table.n_real == table.n_real.max()]
    g = top.groupby(["arm", "bin"], sort=False).agg(
        lo_px=("lo_px", "first"), hi_px=("hi_px", "first"), n_gt=("n_gt", "sum"), tp_gt=("tp_gt", "sum"),
        n_pred=("n_pred", "sum"), tp_pred=("tp_pred", "sum"), seeds=("seed", "nunique")).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        g["recall"] = np.where(g.n_gt > 0, g.tp_gt / g.n_gt.where(g.n_gt > 0, 1), np.nan)
        g["precision"] = np.where(g.n_pred > 0, g.tp_pred / g.n_pred.where(g.n_pred > 0, 1), np.nan)
    return g


def bin_label(lo: float, hi: float, pixel_size: float | None = None, unit: str = "px") -> str:
    """'12–20 px', '< 12 px', '≥ 20 px'; with a pixel size also the same range in units."""
    def fmt(v: float, scale: float = 1.0) -> str:
        x = v * scale
        return f"{x:.0f}" if scale == 1.0 else f"{x:.3g}"

    def text(scale: float, u: str) -> str:
        if lo <= 0 and np.isinf(hi):
            return "all"
        if lo <= 0:
            return f"< {fmt(hi, scale)} {u}"
        if np.isinf(hi):
            return f"≥ {fmt(lo, scale)} {u}"
        return f"{fmt(lo, scale)}–{fmt(hi, scale)} {u}"

    label = text(1.0, "px")
    if pixel_size and unit and unit != "px":
        label += f" ({text(pixel_size, unit)})"
    return label
