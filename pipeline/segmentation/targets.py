"""Training targets from an instance mask.

``binary``: one channel, foreground. Touching objects merge, so post-processing (connected
components) cannot split them; it is the simple reference.

``boundary``: two channels, object interiors and instance boundaries. Boundary pixels are the
pixels of an instance that touch another instance or the background (``find_boundaries`` in
``inner`` mode), so two touching objects are separated by a 2-px band (one pixel on each side) and
the interiors become separate seeds for the watershed in :mod:`.postprocess`.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

TARGETS = ("boundary", "binary")


def n_target_channels(kind: str) -> int:
    if kind == "boundary":
        return 2
    if kind == "binary":
        return 1
    raise ValueError(f"unknown segmentation target '{kind}' (known: {', '.join(TARGETS)})")


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixels of each instance adjacent (4-connectivity) to a different label, background included."""
    return find_boundaries(mask, connectivity=1, mode="inner") & (mask > 0)


def make_target(mask: np.ndarray, kind: str) -> np.ndarray:
    """float32 ``C x H x W`` target in {0, 1} for an int instance mask ``H x W``."""
    fg = mask > 0
    if kind == "binary":
        return fg[None].astype(np.float32)
    if kind == "boundary":
        edge = boundary_pixels(mask)
        return np.stack([fg & ~edge, edge]).astype(np.float32)
    n_target_channels(kind)  # raises for an unknown kind
    raise AssertionError("unreachable")


def pixel_bce(probs: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> float:
    """Mean binary cross-entropy over pixels and target channels of probabilities against a
    target (the BCE half of the training loss; the Dice half is a whole-batch quantity with no
    per-pixel meaning). Probabilities are clipped to [eps, 1 - eps], so one saturated wrong pixel
    adds at most -log(eps) instead of infinity (bf16/fp32 sigmoids do reach exactly 0 and 1)."""
    p = np.clip(np.asarray(probs, np.float64), eps, 1.0 - eps)
    t = np.asarray(target, np.float64)
    return float(np.mean(-(t * np.log(p) + (1.0 - t) * np.log1p(-p))))
