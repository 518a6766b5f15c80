"""Object matching and metrics: equality with StarDist's matching (fixtures computed with real
stardist 0.9.2 by tests/fixtures/make_matching_fixtures.py) plus hand-checked edge cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EvaluationConfig
from pipeline.evaluation.matching import iou_matrix, match_instances
from pipeline.evaluation.metrics import evaluate_instances, json_safe

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "matching_stardist.json").read_text())
CASES = sorted(FIXTURES["cases"])


@pytest.mark.parametrize("name", CASES)
def test_matching_equals_stardist(name):
    case = FIXTURES["cases"][name]
    gt, pred = np.array(case["gt"], np.int32), np.array(case["pred"], np.int32)
    for t, ref in case["results"].items():
        m = match_instances(gt, pred, float(t))
        assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (ref["tp"], ref["fp"], ref["fn"], ref["n_true"], ref["n_pred"])
        assert m.precision == pytest.approx(ref["precision"])
        assert m.recall == pytest.approx(ref["recall"])
        assert m.f1 == pytest.approx(ref["f1"])
        assert m.mean_matched_iou == pytest.approx(ref["mean_matched_score"])


def _square(shape, top, left, h, w, value=1, into=None):
    img = np.zeros(shape, np.int32) if into is None else into
    img[top : top + h, left : left + w] = value
    return img


def test_hand_cases_from_first_principles():
    s = (24, 32)
    shifted = match_instances(_square(s, 5, 5, 10, 10), _square(s, 5, 10, 10, 10), 0.5)
    assert iou_matrix(_square(s, 5, 5, 10, 10), _square(s, 5, 10, 10, 10))[0, 0] == pytest.approx(50 / 150)
    assert (shifted.tp, shifted.fp, shifted.fn) == (0, 1, 1)

    half = match_instances(_square(s, 2, 2, 10, 10), _square(s, 2, 2, 10, 5), 0.5)  # IoU exactly 0.5
    assert (half.tp, half.fp, half.fn) == (1, 0, 0) and half.matched_ious == [0.5]

    two = _square(s, 2, 2, 10, 6, 1)
    _square(s, 2, 8, 10, 4, 2, into=two)
    m = match_instances(_square(s, 2, 2, 10, 10), two, 0.5)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0) and m.pairs == [(0, 0)]

    empty = match_instances(np.zeros(s, np.int32), np.zeros(s, np.int32))
    assert (empty.tp, empty.fp, empty.fn, empty.precision, empty.recall, empty.f1) == (0, 0, 0, 0.0, 0.0, 0.0)


def test_evaluate_pools_counts_and_handles_empty_and_missing_predictions():
    s = (24, 32)
    gt_a = _square(s, 2, 2, 8, 8, 1)
    _square(s, 12, 15, 9, 9, 2, into=gt_a)
    gts = [gt_a, np.zeros(s, np.int32), _square(s, 3, 3, 6, 6)]
    preds = [gt_a.copy(), np.zeros(s, np.int32), np.zeros(s, np.int32)]  # perfect, empty/empty, no prediction
    summary, frame = evaluate_instances(preds, gts, EvaluationConfig(), names=["a", "empty", "missed"])
    assert (summary["tp"], summary["fp"], summary["fn"]) == (2, 0, 1)
    assert summary["precision"] == 1.0 and summary["recall"] == pytest.approx(2 / 3)
    assert summary["f1"] == pytest.approx(0.8) and summary["f1_50_95"] == pytest.approx(0.8)
    assert summary["count_mae"] == pytest.approx(1 / 3) and summary["count_rel_error"] == pytest.approx(-1 / 3)
    assert list(frame["image"]) == ["a", "empty", "missed"]
    assert frame.loc[1, ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]  # StarDist: 0/0 -> 0
    assert math.isnan(frame.loc[1, "pixel_iou"]) and frame.loc[2, "pixel_iou"] == 0.0
    assert summary["pixel_iou"] == pytest.approx((64 + 81) / (64 + 81 + 36))
    # sizes: diameters of {8x8, 9x9} predicted vs {8x8, 9x9, 6x6} true
    d = np.sqrt(4 * np.array([64.0, 81.0, 36.0]) / np.pi)
    assert summary["median_diameter_error"] == pytest.approx(np.median(d[:2]) - np.median(d))
    assert summary["diameter_wasserstein"] > 0

    nothing, _ = evaluate_instances([np.zeros(s, np.int32)], [np.zeros(s, np.int32)], EvaluationConfig())
    assert nothing["f1"] == 0.0 and nothing["tp"] == 0
    safe = json_safe(nothing)
    json.dumps(safe, allow_nan=False)  # NaNs became nulls
    assert safe["pixel_iou"] is None and safe["diameter_wasserstein"] is None
