"""Pictures of instance maps, shared by the report, ``predict`` overlays and mask/quality grids.

One palette and one outline rule everywhere, so an object looks the same in a report figure and in
a ``predict`` overlay, and a fix to how outlines are drawn reaches every picture at once.
Depends on numpy and scikit-image only (no matplotlib), so ``predict`` stays light.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def colorize(mask: np.ndarray, seed: int = 7) -> np.ndarray:
    """Instance map -> RGB uint8 with a fixed random bright colour per id (0 stays black); the same
    id gets the same colour in every picture."""
    mask = np.asarray(mask)
    rng = np.random.default_rng(seed)
    palette = rng.integers(60, 256, size=(int(mask.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[mask]


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Internal float image (HxWxC in [0, 1], C = 1 or 3) -> RGB uint8 for drawing on."""
    img = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def object_outlines(labels: np.ndarray, ids: Iterable[int] | None = None) -> np.ndarray:
    """Boolean map of each object's inner edge: object pixels with a 4-neighbour of another id.

    Inner edges of the label map (rather than one contour per object) keep touching objects apart
    in one vectorised pass; the map is zero-padded first so objects cut by the image border get a
    closed outline. ``ids``: only these objects' outlines (default: every object).
    """
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    edge = find_boundaries(np.pad(labels, 1), mode="inner")[1:-1, 1:-1] & (labels > 0)
    if ids is not None:
        edge &= np.isin(labels, np.fromiter(ids, dtype=np.int64))
    return edge


def draw_outlines(
    canvas: np.ndarray, labels: np.ndarray, colour: tuple[int, int, int] | None = None,
    ids: Iterable[int] | None = None,
) -> np.ndarray:
    """Draw object outlines onto an RGB uint8 ``canvas`` in place (and return it): one ``colour``
    for all, or each object in its :func:`colorize` colour when ``colour`` is None."""
    edge = object_outlines(labels, ids)
    canvas[edge] = colorize(labels)[edge] if colour is None else colour
    return canvas
