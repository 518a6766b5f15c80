"""Pictures for the report: synthetic sample grids and prediction overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..drawing import colorize, draw_outlines, to_rgb8
from ..io import write_png

__all__ = ["colorize", "to_rgb8", "pair_grid", "draw_overlay", "overlay_pairs"]  # colorize, to_rgb8: old home


def pair_grid(items: list[tuple[np.ndarray, np.ndarray, str]], out: Path, tile: int = 128) -> None:
    """Rows of (instance mask | generated image) for a few synthetic pairs."""
    cells = []
    for image, mask, _source in items:
        m = cv2.resize(colorize(mask), (tile, tile), interpolation=cv2.INTER_NEAREST)
        i = cv2.resize(to_rgb8(image), (tile, tile), interpolation=cv2.INTER_AREA)
        cells.append(np.concatenate([m, np.full((tile, 4, 3), 255, np.uint8), i], axis=1))
    cols = 2
    while len(cells) % cols:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.concatenate(sum(([c, np.full((tile, 12, 3), 255, np.uint8)] for c in cells[r : r + cols]), [])[:-1], axis=1)
            for r in range(0, len(cells), cols)]
    grid = np.concatenate(sum(([r, np.full((8, r.shape[1], 3), 255, np.uint8)] for r in rows), [])[:-1], axis=0)
    write_png(out, grid)


def draw_overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, matched_pred: set[int], matched_gt: set[int]) -> np.ndarray:
    """Contours: green = matched prediction, red = false positive, blue = missed ground truth."""
    canvas = to_rgb8(image).copy()
    pred_ids = [int(k) for k in np.unique(pred) if k]
    draw_outlines(canvas, pred, (0, 200, 0), [k for k in pred_ids if k in matched_pred])
    draw_outlines(canvas, pred, (230, 30, 30), [k for k in pred_ids if k not in matched_pred])
    draw_outlines(canvas, gt, (40, 90, 255), [int(k) for k in np.unique(gt) if k and int(k) not in matched_gt])
    return canvas


def overlay_pairs(ctx, arm_dir: Path, arm: str, baseline_dir: Path | None, out_dir: Path, n: int = 2) -> None:
    """Overlays of the best and worst test images of one arm (by per-image F1, images with objects),
    next to real_only's prediction on the same image when there is one."""
    import pandas as pd

    from ..evaluation.matching import match_instances

    per_image = pd.read_csv(arm_dir / "per_image.csv")
    per_image = per_image[per_image.n_true > 0].sort_values("f1")
    if per_image.empty:
        return
    picks = {"worst": per_image.head(n).image.tolist(), "best": per_image.tail(n).image.tolist()[::-1]}
    stems = ctx.splits["test"]
    test = dict(zip(stems, ctx.pairs("test")))
    preds = np.load(arm_dir / "predictions.npz")
    base = np.load(baseline_dir / "predictions.npz") if baseline_dir is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.png"):
        old.unlink()
    for kind, names in picks.items():
        for rank, stem in enumerate(names):
            stem = str(stem)
            image, gt = test[stem]
            panels = []
            shown = [(arm, preds[stem].astype(np.int32))]
            if base is not None and arm != "real_only":  # beside it, the reference on the same image
                shown.append(("real_only", base[stem].astype(np.int32)))
            for name, p in shown:
                m = match_instances(gt, p, ctx.cfg.evaluation.iou_threshold)
                gt_ids = [int(v) for v in np.unique(gt) if v]
                pr_ids = [int(v) for v in np.unique(p) if v]
                panel = draw_overlay(image, gt, p, {pr_ids[j] for _, j in m.pairs}, {gt_ids[i] for i, _ in m.pairs})
                cv2.putText(panel, f"{name} F1={m.f1:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
                panels.append(panel)
            sep = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
            row = np.concatenate(sum(([p, sep] for p in panels), [])[:-1], axis=1)
            write_png(out_dir / f"{kind}_{rank + 1}_{stem}.png", row)


def _caption(text: str, width: int, height: int = 18) -> np.ndarray:
    bar = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def _real_crop(image: np.ndarray, mask: np.ndarray, h: int, w: int, rng: np.random.Generator, tries: int = 12) -> np.ndarray:
    """An ``h`` x ``w`` crop of a real image at its own scale (grey outside a smaller image), preferring
    one that shows objects: a crop of empty belt says nothing about realism."""
    ih, iw = mask.shape
    ch, cw = min(h, ih), min(w, iw)
    best = None
    for _ in range(tries):
        y, x = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
        best = (y, x)
        if mask[y : y + ch, x : x + cw].any():
            break
    y, x = best
    tile = np.full((h, w, 3), 128, np.uint8)
    tile[:ch, :cw] = to_rgb8(image[y : y + ch, x : x + cw])
    return tile


def realism_strip(real: list[tuple[np.ndarray, np.ndarray]], groups: dict[str, list[np.ndarray]], out: Path,
                  seed: int = 0) -> Path:
    """One row per synthetic group (method, mask source): a real crop, then the group's synthetic
    images. Every tile keeps its native pixel size, so objects appear at the scale the model sees."""
    rng = np.random.default_rng(seed)
    first = next(iter(groups.values()))[0]
    h, w = first.shape[:2]
    zoom = max(1, 160 // max(h, w))  # small tiles are enlarged, all by the same whole factor
    gap = np.full((h * zoom, 6, 3), 255, np.uint8)
    rows = []
    for k, (name, images) in enumerate(groups.items()):
        image, mask = real[k % len(real)]
        tiles = [_real_crop(image, mask, h, w, rng)]
        for img in images:
            t = np.full((h, w, 3), 128, np.uint8)
            rgb = to_rgb8(img)[:h, :w]
            t[: rgb.shape[0], : rgb.shape[1]] = rgb
            tiles.append(t)
        tiles = [np.repeat(np.repeat(t, zoom, axis=0), zoom, axis=1) for t in tiles]
        row = np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], axis=1)
        scale = "same scale" if zoom == 1 else f"same scale, shown x{zoom}"
        rows.append(_caption(f"real crop | synthetic: {name} ({w}x{h} px each, {scale})", max(row.shape[1], 460)))
        rows.append(row)
        rows.append(np.full((8, row.shape[1], 3), 255, np.uint8))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out = Path(out)
    write_png(out, np.concatenate(rows[:-1], axis=0))
    return out
