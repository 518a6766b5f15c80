"""How much synthetic masks look like real ones, in numbers: object count, coverage, object area
and equivalent diameter, compared with two-sample Kolmogorov-Smirnov statistics.

Real masks are compared as random crops of the synthetic canvas size, not as whole images: a crop
cuts objects at its border exactly as the placement canvas does (border truncation), and holds the
same area, so counts, areas and coverage mean the same thing on both sides. Real images smaller
than the canvas give smaller crops; their count is scaled to the canvas area (count per canvas).

``nn_distance`` (centroid to the nearest other object's centroid in the same mask) says whether
synthetic objects are packed like real ones: placement may get sizes right and spacing wrong.
Touching is measured apart from spacing: ``touching_neighbours`` (per object: how many other
objects have a pixel 8-adjacent to one of its pixels) and ``touching_pairs_per_object`` (per mask:
touching pairs / objects). On particle sets (EMPS) object F1 is decided at the boundaries between
touching objects, so a mask source whose layouts never touch teaches the one thing that matters
least. Both are in the per-object / per-mask tables, the KS table and the report's plot
(:data:`REPORT_METRICS`); :func:`plot_mask_stats` keeps the four :data:`METRICS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("count_per_canvas", "coverage", "area", "equivalent_diameter")
TOUCHING_METRICS = ("touching_neighbours", "touching_pairs_per_object")
REPORT_METRICS = (*METRICS, "nn_distance", *TOUCHING_METRICS)
OBJECT_METRICS = ("area", "equivalent_diameter", "nn_distance", "touching_neighbours")
INTEGER_METRICS = ("touching_neighbours",)  # histogrammed with one bin per value


def nearest_neighbour_distances(cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest other point (NaN when there is no other point)."""
    if len(cy) < 2:
        return np.full(len(cy), np.nan)
    from scipy.spatial import cKDTree

    pts = np.stack([cy, cx], axis=1)
    dist, _ = cKDTree(pts).query(pts, k=2)
    return dist[:, 1]


def touching_pairs(mask: np.ndarray) -> np.ndarray:
    """Unique pairs ``(a, b)``, ``0 < a < b``, of labels with 8-adjacent pixels: an ``n x 2`` array.

    Comparing the map with itself shifted right, down and along both diagonals visits every
    8-neighbour pair of pixels once; that is a handful of vectorised passes, no per-object loop,
    so it stays cheap on thousands of masks."""
    mask = np.asarray(mask)
    views = (
        (mask[:, :-1], mask[:, 1:]),  # right
        (mask[:-1, :], mask[1:, :]),  # down
        (mask[:-1, :-1], mask[1:, 1:]),  # down-right
        (mask[:-1, 1:], mask[1:, :-1]),  # down-left
    )
    found = []
    for a, b in views:
        edge = (a != b) & (a > 0) & (b > 0)
        if edge.any():
            x, y = a[edge].astype(np.int64), b[edge].astype(np.int64)
            found.append(np.stack([np.minimum(x, y), np.maximum(x, y)], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def touching_neighbour_counts(mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each of ``labels``: how many other labels of ``mask`` touch it (8-adjacency). Pixels
    whose label is not in ``labels`` count as background (objects ignored for their size)."""
    mask = np.asarray(mask)
    labels = np.asarray(labels, np.int64)
    if labels.size == 0:
        return np.zeros(0, np.int64)
    kept = np.zeros(int(max(mask.max(initial=0), labels.max())) + 1, bool)
    kept[labels] = True
    pairs = touching_pairs(np.where(kept[mask], mask, 0))
    per_label = np.bincount(pairs.ravel(), minlength=len(kept))
    return per_label[labels]


def mask_stats(masks, canvas: int | None = None, min_area: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-mask table, per-object table) for int instance maps (any iterable, e.g. a MaskStore's
    masks). Objects under ``min_area`` px are ignored. ``count_per_canvas`` scales the count to a
    ``canvas`` x ``canvas`` area (default: the mask's own area)."""
    per_mask, per_object = [], []
    for i, mask in enumerate(masks):
        mask = np.asarray(mask)
        h, w = mask.shape
        flat = mask.ravel().astype(np.int64)
        counts = np.bincount(flat)
        keep = np.flatnonzero(counts >= max(min_area, 1))
        keep = keep[keep > 0]
        areas = counts[keep]
        ys, xs = np.divmod(np.arange(flat.size), w)
        cy = np.bincount(flat, weights=ys, minlength=len(counts))[keep] / np.maximum(areas, 1)
        cx = np.bincount(flat, weights=xs, minlength=len(counts))[keep] / np.maximum(areas, 1)
        scale = (canvas * canvas) / (h * w) if canvas else 1.0
        neighbours = touching_neighbour_counts(mask, keep)
        per_mask.append(
            {"mask": i, "height": h, "width": w, "count": len(areas), "count_per_canvas": len(areas) * scale,
             "coverage": areas.sum() / (h * w),
             # each pair is counted at both of its objects; NaN, not 0, for a mask without objects
             "touching_pairs_per_object": neighbours.sum() / 2 / len(areas) if len(areas) else np.nan}
        )
        per_object.append(
            pd.DataFrame({"mask": i, "area": areas, "equivalent_diameter": np.sqrt(4.0 * areas / np.pi),
                          "nn_distance": nearest_neighbour_distances(cy, cx),
                          "touching_neighbours": neighbours})
        )
    objects = (pd.concat(per_object, ignore_index=True) if per_object
               else pd.DataFrame(columns=["mask", "area", "equivalent_diameter", "nn_distance",
                                          "touching_neighbours"]))
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
    frame = per_object if metric in OBJECT_METRICS else per_mask
    values = frame[metric].to_numpy(np.float64)
    return values[~np.isnan(values)]


def compare_mask_stats(
    real_masks: list[np.ndarray],
    synthetic_masks,
    canvas: int,
    crops_per_image: int = 4,
    seed: int = 0,
    min_area: int = 1,
    metrics: tuple[str, ...] = REPORT_METRICS,
) -> pd.DataFrame:
    """One row per metric: sample sizes, medians, means and the KS statistic/p-value between real
    crops of ``canvas`` size and the synthetic masks. KS 0 = same distribution, 1 = disjoint.
    Masks without objects have no touching-pairs ratio and objects alone in their mask no
    nearest-neighbour distance: those are left out of their metric's sample."""
    from scipy.stats import ks_2samp

    real = mask_stats(real_crops(real_masks, canvas, crops_per_image, seed), canvas, min_area)
    synth = mask_stats(synthetic_masks, canvas, min_area)
    rows = []
    for metric in metrics:
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
    return plot_mask_sources(real_masks, {"synthetic": synthetic_masks}, canvas, path, METRICS, crops_per_image,
                             seed, min_area, title)


LABELS = {"count_per_canvas": "objects per canvas", "coverage": "coverage (fraction of pixels)",
          "area": "object area (px)", "equivalent_diameter": "equivalent diameter (px)",
          "nn_distance": "nearest-neighbour distance (px)",
          "touching_neighbours": "touching neighbours per object",
          "touching_pairs_per_object": "touching pairs / objects (per mask)"}


def plot_mask_sources(
    real_masks: list[np.ndarray],
    sources: dict[str, list[np.ndarray]],
    canvas: int,
    path: str | Path,
    metrics: tuple[str, ...] = REPORT_METRICS,
    crops_per_image: int = 4,
    seed: int = 0,
    min_area: int = 1,
    title: str | None = None,
) -> Path:
    """Histograms of ``metrics``, real crops (filled) against each synthetic mask source (outlines),
    one panel per metric, at most four panels a row; one PNG written atomically. Density, so
    sources of any count compare."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from ..io import atomic_path

    real = mask_stats(real_crops(real_masks, canvas, crops_per_image, seed), canvas, min_area)
    synth = {name: mask_stats(masks, canvas, min_area) for name, masks in sources.items()}
    columns = min(len(metrics), 4)
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns + 0.6, 2.9 * rows), dpi=90, squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.ravel(), metrics):
        a = _metric_values(*real, metric)
        others = {name: _metric_values(*t, metric) for name, t in synth.items()}
        both = np.concatenate([a, *others.values()])
        if metric in ("area", "equivalent_diameter") and both.size and both.min() > 0 and both.max() > both.min():
            bins = np.geomspace(both.min(), both.max(), 30)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())  # 20, not 2x10^1
            few = both.max() / both.min() < 30  # under ~1.5 decades: label 2x and 5x too, or one tick shows
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: f"{v:g}" if few and round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
        elif metric in INTEGER_METRICS and both.size:
            bins = np.arange(-0.5, both.max() + 1.5)  # one bar per count: 0, 1, 2 ... neighbours
        else:
            bins = np.linspace(both.min(), both.max(), 30) if both.size and both.max() > both.min() else 10
        ax.hist(a, bins=bins, density=True, alpha=0.45, label=f"real crops (n={len(a)})", color="tab:blue")
        for i, (name, b) in enumerate(others.items()):
            color = "tab:orange" if len(others) == 1 else f"C{i + 1}"
            if len(others) == 1:
                ax.hist(b, bins=bins, density=True, alpha=0.55, label=f"{name} (n={len(b)})", color=color)
            else:
                ax.hist(b, bins=bins, density=True, histtype="step", lw=1.6, label=f"{name} (n={len(b)})", color=color)
        ax.set_title(LABELS.get(metric, metric.replace("_", " ")), fontsize=10)
        ax.tick_params(which="both", labelsize=8)
        ax.legend(fontsize=7, framealpha=0.6)
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
