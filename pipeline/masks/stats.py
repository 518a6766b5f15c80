"""How much synthetic masks look like real ones, in numbers: object count, coverage, object area
and equivalent diameter, compared with two-sample Kolmogorov-Smirnov statistics.

Real masks are compared as random crops of the synthetic canvas size, not as whole images: a crop
cuts objects at its border exactly as the placement canvas does (border truncation), and holds the
same area, so counts, areas and coverage mean the same thing on both sides. Real images smaller
than the canvas give smaller crops; their count is scaled to the canvas area (count per canvas).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("count_per_canvas", "coverage", "area", "equivalent_diameter")


def mask_stats(masks, canvas: int | None = None, min_area: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-mask table, per-object table) for int instance maps (any iterable, e.g. a MaskStore's
    masks). Objects under ``min_area`` px are ignored. ``count_per_canvas`` scales the count to a
    ``canvas`` x ``canvas`` area (default: the mask's own area)."""
    per_mask, per_object = [], []
    for i, mask in enumerate(masks):
        mask = np.asarray(mask)
        h, w = mask.shape
        areas = np.bincount(mask.ravel().astype(np.int64))[1:]
        areas = areas[areas >= min_area]
        scale = (canvas * canvas) / (h * w) if canvas else 1.0
        per_mask.append(
            {"mask": i, "height": h, "width": w, "count": len(areas), "count_per_canvas": len(areas) * scale,
             "coverage": areas.sum() / (h * w)}
        )
        per_object.append(
            pd.DataFrame({"mask": i, "area": areas, "equivalent_diameter": np.sqrt(4.0 * areas / np.pi)})
        )
    objects = pd.concat(per_object, ignore_index=True) if per_object else pd.DataFrame(columns=["mask", "area", "equivalent_diameter"])
    return pd.DataFrame(per_mask), objects


def real_crops(masks: list[np.ndarray], canvas: int, crops_per_image: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Random ``canvas``-sized crops of real masks (the whole side where an image is smaller)."""
    rng = np.random.default_rng(seed)
    out = []
    for mask in masks:
        h, w = mask.shape
        ch, cw = min(canvas, h), min(canvas, w)
        for _ in range(crops_per_image):
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            out.append(mask[y : y + ch, x : x + cw])
    return out


def _metric_values(per_mask: pd.DataFrame, per_object: pd.DataFrame, metric: str) -> np.ndarray:
    frame = per_object if metric in ("area", "equivalent_diameter") else per_mask
    return frame[metric].to_numpy(np.float64)


def compare_mask_stats(
    real_masks: list[np.ndarray],
    synthetic_masks,
    canvas: int,
    crops_per_image: int = 4,
    seed: int = 0,
    min_area: int = 1,
) -> pd.DataFrame:
    """One row per metric: sample sizes, medians, means and the KS statistic/p-value between real
    crops of ``canvas`` size and the synthetic masks. KS 0 = same distribution, 1 = disjoint."""
    from scipy.stats import ks_2samp

    real = mask_stats(real_crops(real_masks, canvas, crops_per_image, seed), canvas, min_area)
    synth = mask_stats(synthetic_masks, canvas, min_area)
    rows = []
    for metric in METRICS:
        a, b = _metric_values(*real, metric), _metric_values(*synth, metric)
        ks = ks_2samp(a, b) if len(a) and len(b) else None
        rows.append(
            {
                "metric": metric,
                "n_real": len(a),
                "n_synthetic": len(b),
                "median_real": float(np.median(a)) if len(a) else np.nan,
                "median_synthetic": float(np.median(b)) if len(b) else np.nan,
                "mean_real": float(np.mean(a)) if len(a) else np.nan,
                "mean_synthetic": float(np.mean(b)) if len(b) else np.nan,
                "ks_statistic": float(ks.statistic) if ks else np.nan,
                "ks_pvalue": float(ks.pvalue) if ks else np.nan,
            }
        )
    return pd.DataFrame(rows)


def plot_mask_stats(
    real_masks: list[np.ndarray],
    synthetic_masks,
    canvas: int,
    path: str | Path,
    crops_per_image: int = 4,
    seed: int = 0,
    min_area: int = 1,
    title: str | None = None,
) -> Path:
    """Histograms, real crops vs synthetic, of the four metrics; one PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    real = mask_stats(real_crops(real_masks, canvas, crops_per_image, seed), canvas, min_area)
    synth = mask_stats(synthetic_masks, canvas, min_area)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0), dpi=80)
    for ax, metric in zip(axes, METRICS):
        a, b = _metric_values(*real, metric), _metric_values(*synth, metric)
        both = np.concatenate([a, b])
        if metric in ("area", "equivalent_diameter") and both.size and both.min() > 0:
            bins = np.geomspace(both.min(), both.max(), 30)
            ax.set_xscale("log")
        else:
            bins = np.linspace(both.min(), both.max(), 30) if both.size and both.max() > both.min() else 10
        ax.hist(a, bins=bins, density=True, alpha=0.55, label=f"real crops (n={len(a)})", color="tab:blue")
        ax.hist(b, bins=bins, density=True, alpha=0.55, label=f"synthetic (n={len(b)})", color="tab:orange")
        ax.set_title(metric.replace("_", " "), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_mask_grid(
    real_masks: list[np.ndarray], synthetic_masks: list[np.ndarray], path: str | Path, columns: int = 8, tile: int = 128,
    label: str = "placement",
) -> Path:
    """Top row real crops, bottom row synthetic masks, coloured by instance, as one small PNG."""
    import cv2

    from ..drawing import colorize
    from ..io import write_png

    def row(masks: list[np.ndarray]) -> np.ndarray:
        tiles = []
        for m in list(masks)[:columns]:
            c = colorize(m)
            side = max(c.shape[:2])  # crops of small images are not square: grey fill outside
            c = np.pad(c, ((0, side - c.shape[0]), (0, side - c.shape[1]), (0, 0)), constant_values=90)
            t = cv2.resize(c, (tile, tile), interpolation=cv2.INTER_NEAREST)
            tiles.append(np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        while len(tiles) < columns:
            tiles.append(np.full((tile + 4, tile + 4, 3), 255, np.uint8))
        return np.hstack(tiles)

    def caption(text: str, width: int) -> np.ndarray:
        bar = np.full((18, width, 3), 255, np.uint8)
        cv2.putText(bar, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        return bar

    top, bottom = row(real_masks), row(synthetic_masks)
    grid = np.vstack([caption("real crops", top.shape[1]), top, caption(f"synthetic ({label})", top.shape[1]), bottom])
    path = Path(path)
    write_png(path, grid)
    return path
