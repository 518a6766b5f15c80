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


# the tuned post-processing of an arm, as its metrics.json names it (frozen for predict, export,
# the filter judge and the generator judge)
POSTPROCESS_KEYS = ("fg_threshold", "boundary_threshold", "min_object_area")

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


THRESHOLD_STEP, THRESHOLD_RANGE = 0.1, (0.05, 0.95)  # how far an edge of a threshold grid is extended


def _best_values(rows: list[dict], name: str) -> set:
    """The values of one setting among the rows with the best F1 (ties included: a flat F1 that
    reaches a grid's edge may go on rising past it)."""
    top = max(round(r["f1"], 9) for r in rows)
    return {r[name] for r in rows if round(r["f1"], 9) == top}


def tune_postprocess(probs: list[np.ndarray], gts: list[np.ndarray], kind: str, eval_cfg, base_min_area: int) -> tuple[dict, list[dict]]:
    """The post-processing settings with the best object F1 on the given (validation) images.

    Every combination of ``eval_cfg.fg_grid`` x ``boundary_grid`` x ``min_area_grid`` (a multiple of
    ``base_min_area``) is scored; ties go to the setting closest to the defaults, so a flat grid
    changes nothing. The watershed runs once per threshold pair; the area filter is re-applied.
    Returns (best settings, one row per combination) - re-scoring stored probabilities is cheap,
    so every arm gets the post-processing that suits it instead of one fixed threshold for all.

    A best setting on the edge of a grid is not a tuned one: F1 may still be rising beyond it (on
    EMPS it rose with every doubling of the minimum area up to the grid's largest, for every arm).
    So, up to ``eval_cfg.grid_extensions`` times, a grid whose edge holds the best setting grows one
    step past it - the minimum area doubles (or halves), a threshold moves by 0.1 within 0.05-0.95 -
    and the new combinations are scored too. The same rule for every arm: one protocol, not a grid
    fitted to one set.
    """
    from ..evaluation.matching import iou_matrix, match_from_iou, ratio

    t = float(eval_cfg.iou_threshold)
    extensions = int(eval_cfg.grid_extensions)
    fgs = sorted({float(x) for x in eval_cfg.fg_grid})
    boundaries = sorted({float(x) for x in eval_cfg.boundary_grid}) if kind == "boundary" else [float(eval_cfg.boundary_threshold)]
    areas = sorted({max(1, int(round(base_min_area * f))) for f in eval_cfg.min_area_grid})

    def distance_to_default(r: dict) -> float:
        return (abs(r["fg_threshold"] - eval_cfg.fg_threshold) + abs(r["boundary_threshold"] - eval_cfg.boundary_threshold)
                + abs(np.log(r["min_object_area"] / max(1, base_min_area))))

    def rank(r: dict) -> tuple:
        return round(r["f1"], 9), -distance_to_default(r)

    def score_pair(fg: float, b: float) -> list[dict]:
        """Every area of the grid for one threshold pair (one watershed per image), the area grid
        extended past its edge while the best area of this pair sits there."""
        labels = [instances_from_probs(p, kind, fg, b, 0) for p in probs]

        def row(area: int) -> dict:
            tp = fp = fn = 0
            for lab, gt in zip(labels, gts):
                m = match_from_iou(iou_matrix(gt, remove_small(lab, area)), t)
                tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
            return {"fg_threshold": fg, "boundary_threshold": b, "min_object_area": int(area),
                    "f1": ratio(2 * tp, 2 * tp + fp + fn), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}

        out = [row(a) for a in areas]
        lo, hi = areas[0], areas[-1]
        for _ in range(extensions):
            best_areas = _best_values(out, "min_object_area")
            grew = False
            if hi in best_areas:
                hi *= 2
                out.append(row(hi))
                grew = True
            if lo in best_areas and lo > 1:
                lo = max(1, lo // 2)
                out.append(row(lo))
                grew = True
            if not grew:
                break
        return out

    rows: list[dict] = []
    scored: set[tuple[float, float]] = set()
    for round_ in range(extensions + 1):
        for fg in fgs:
            for b in boundaries:
                if (fg, b) not in scored:
                    scored.add((fg, b))
                    rows += score_pair(fg, b)
        best = max(rows, key=rank)
        if round_ == extensions:
            break
        grew = False
        for grid, name in ((fgs, "fg_threshold"), (boundaries, "boundary_threshold")):
            if name == "boundary_threshold" and kind != "boundary":
                continue
            best_values = _best_values(rows, name)
            if grid[-1] in best_values and grid[-1] + THRESHOLD_STEP <= THRESHOLD_RANGE[1] + 1e-9:
                grid.append(round(grid[-1] + THRESHOLD_STEP, 2))
                grew = True
            if grid[0] in best_values and grid[0] - THRESHOLD_STEP >= THRESHOLD_RANGE[0] - 1e-9:
                grid.insert(0, round(grid[0] - THRESHOLD_STEP, 2))
                grew = True
        if not grew:
            break
    return {k: best[k] for k in ("fg_threshold", "boundary_threshold", "min_object_area")} | {"val_f1": best["f1"]}, rows
