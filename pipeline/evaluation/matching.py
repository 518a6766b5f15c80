"""One-to-one matching of predicted to ground-truth instances at an IoU threshold.

A pair may match only when its IoU is >= the threshold (inclusive, as in StarDist's
``matching(..., criterion='iou')``). Among all one-to-one assignments we take the one with the
most matches, and among those the largest total IoU (Hungarian algorithm on a weight matrix whose
integer part counts matches and whose fraction adds IoU). For thresholds > 0.5 the match is unique
anyway; the assignment matters at exactly 0.5 and below.

Undefined ratios (0/0) are 0, the StarDist convention: an image with neither objects nor
predictions has precision = recall = F1 = 0. Dataset summaries therefore pool counts over images
(micro averaging), where such an image simply adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


def _sequential(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel to 0..N keeping 0 as background; N = number of objects."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"label images must hold integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("label images must not hold negative values")
    values, inverse = np.unique(labels, return_inverse=True)
    if values.size and values[0] != 0:  # no background: keep ids 1..N
        inverse = inverse + 1
        return inverse.reshape(labels.shape), int(values.size)
    return inverse.reshape(labels.shape), int(values.size) - 1


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU between every GT object (rows) and predicted object (columns), float64."""
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: ground truth {gt.shape} vs prediction {pred.shape}")
    g, n_gt = _sequential(gt)
    p, n_pred = _sequential(pred)
    overlap = np.bincount(g.ravel().astype(np.int64) * (n_pred + 1) + p.ravel(), minlength=(n_gt + 1) * (n_pred + 1))
    overlap = overlap.reshape(n_gt + 1, n_pred + 1).astype(np.float64)
    area_gt = overlap.sum(axis=1, keepdims=True)
    area_pred = overlap.sum(axis=0, keepdims=True)
    union = area_gt + area_pred - overlap
    inter = overlap[1:, 1:]
    union = union[1:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class MatchResult:
    threshold: float
    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    matched_ious: list[float] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (gt index, pred index), 0-based

    @property
    def precision(self) -> float:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def mean_matched_iou(self) -> float:
        return float(np.mean(self.matched_ious)) if self.matched_ious else 0.0


def ratio(num: float, den: float) -> float:
    """num/den with 0/0 (and anything over 0) defined as 0, following StarDist."""
    return float(num) / float(den) if den > 0 and num > 0 else 0.0


def match_from_iou(iou: np.ndarray, threshold: float) -> MatchResult:
    n_true, n_pred = iou.shape
    pairs: list[tuple[int, int]] = []
    ious: list[float] = []
    if n_true and n_pred:
        allowed = iou >= threshold
        if allowed.any():
            # integer part: one per allowed match (maximised first); fraction < 1 in total: IoU
            weight = allowed * (1.0 + iou / (min(n_true, n_pred) + 1.0))
            rows, cols = linear_sum_assignment(weight, maximize=True)
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    pairs.append((int(r), int(c)))
                    ious.append(float(iou[r, c]))
    tp = len(pairs)
    return MatchResult(threshold, n_true, n_pred, tp, n_pred - tp, n_true - tp, ious, pairs)


def match_instances(gt: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> MatchResult:
    """Match the objects of two label images (0 = background) at ``IoU >= threshold``."""
    return match_from_iou(iou_matrix(gt, pred), threshold)
