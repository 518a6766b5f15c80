"""Instance label maps (0 = background, 1..N = objects): the renumbering every mask writer ends with."""

from __future__ import annotations

import numpy as np


def renumber(labels: np.ndarray) -> np.ndarray:
    """The objects present numbered 1..N in the order of their old ids (int32)."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return lut[labels]


def drop_small_and_renumber(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Objects smaller than ``min_area`` pixels become background; the rest are numbered 1..N in
    the order of their old ids (int32). Cut or hidden leftovers below the shape bank's minimum area
    are not objects anywhere in the pipeline, so every writer drops them the same way."""
    n = int(labels.max(initial=0))
    if n == 0:
        return np.zeros(labels.shape, np.int32)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(areas[1:] >= min_area) + 1
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    return lut[labels]
