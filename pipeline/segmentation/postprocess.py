"""Network probabilities -> int32 instance masks.

``boundary`` target: seeds are connected components of confident interior (foreground high,
boundary low); a watershed on the negative foreground probability grows each seed over every
pixel that belongs to some object (interior or boundary), so touching objects stay apart and keep
their full extent. Object pixels no seed reaches (boundary-only fragments) stay background.

``binary`` target: connected components of the thresholded foreground.

Both drop objects smaller than ``min_object_area`` and number the rest 1..N.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

_FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


def object_probability(probs: np.ndarray, kind: str) -> np.ndarray:
    """Per-pixel probability of belonging to any object (interiors and boundaries together)."""
    if kind == "binary":
        return probs[0]
    return np.clip(probs[0] + probs[1], 0.0, 1.0)


def remove_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Drop objects below ``min_area`` pixels and relabel 1..N (int32)."""
    labels = labels.astype(np.int32, copy=False)
    if min_area > 1 and labels.max() > 0:
        areas = np.bincount(labels.ravel())
        small = areas < min_area
        small[0] = False
        if small.any():
            labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels)[0].astype(np.int32)


def instances_from_probs(
    probs: np.ndarray,
    kind: str,
    fg_threshold: float = 0.5,
    boundary_threshold: float = 0.5,
    min_object_area: int = 0,
) -> np.ndarray:
    """``probs``: float ``C x H x W`` sigmoid outputs (C = 2 for boundary, 1 for binary)."""
    fg = probs[0]
    if kind == "binary":
        labels, _ = ndi.label(fg > fg_threshold, structure=_FOUR_CONNECTED)
        return remove_small(labels, min_object_area)
    if kind != "boundary":
        raise ValueError(f"unknown segmentation target '{kind}'")
    edge = probs[1]
    seeds, n = ndi.label((fg > fg_threshold) & (edge < boundary_threshold), structure=_FOUR_CONNECTED)
    if n == 0:
        return np.zeros(fg.shape, np.int32)
    objects = (fg > fg_threshold) | (edge > boundary_threshold)
    labels = watershed(-fg, markers=seeds, mask=objects | (seeds > 0), connectivity=1)
    return remove_small(labels, min_object_area)


FALLBACK_MIN_AREA = 8  # "auto" with no training masks at hand (e.g. a bare checkpoint)


def auto_min_area(masks) -> int:
    """A quarter of the 5th percentile of the training objects' areas, at least 8 px."""
    areas = np.concatenate([np.bincount(np.asarray(m).ravel())[1:] for m in masks]) if len(masks) else np.zeros(0)
    areas = areas[areas > 0]
    return max(FALLBACK_MIN_AREA, int(0.25 * np.percentile(areas, 5))) if areas.size else FALLBACK_MIN_AREA


def resolve_min_area(cfg, masks):
    """Config with evaluation.min_object_area fixed from the training masks when it is "auto"."""
    if cfg.evaluation.min_object_area != "auto":
        return cfg
    out = cfg.model_copy(deep=True)
    out.evaluation.min_object_area = auto_min_area(masks)
    return out


def instances_for_config(probs: np.ndarray, kind: str, eval_cfg) -> np.ndarray:
    area = eval_cfg.min_object_area
    return instances_from_probs(
        probs, kind, eval_cfg.fg_threshold, eval_cfg.boundary_threshold,
        FALLBACK_MIN_AREA if area == "auto" else int(area),
    )
