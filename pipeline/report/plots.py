"""Pictures for the report: synthetic sample grids and prediction overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..io import write_png


def colorize(mask: np.ndarray, seed: int = 7) -> np.ndarray:
    """Instance map -> RGB uint8 with a fixed random colour per id (0 stays black)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(60, 256, size=(int(mask.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[mask]


def to_rgb8(image: np.ndarray) -> np.ndarray:
    img = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


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


def _contours(canvas: np.ndarray, labels: np.ndarray, ids, colour) -> None:
    for k in ids:
        contours, _ = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, 1)


def draw_overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, matched_pred: set[int], matched_gt: set[int]) -> np.ndarray:
    """Contours: green = matched prediction, red = false positive, blue = missed ground truth."""
    canvas = to_rgb8(image).copy()
    pred_ids = [int(k) for k in np.unique(pred) if k]
    _contours(canvas, pred, [k for k in pred_ids if k in matched_pred], (0, 200, 0))
    _contours(canvas, pred, [k for k in pred_ids if k not in matched_pred], (230, 30, 30))
    _contours(canvas, gt, [int(k) for k in np.unique(gt) if k and int(k) not in matched_gt], (40, 90, 255))
    return canvas
