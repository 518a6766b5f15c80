"""Outlines drawn the same way in report overlays and `predict` overlays."""

from __future__ import annotations

import numpy as np

from pipeline.drawing import colorize, draw_outlines, object_outlines
from pipeline.report.plots import draw_overlay


def _two_touching_squares() -> np.ndarray:
    labels = np.zeros((12, 12), np.int32)
    labels[2:6, 2:6] = 1
    labels[2:6, 6:10] = 2  # touches object 1
    labels[8:12, 0:4] = 3  # cut by the image border
    return labels


def test_outlines_keep_touching_objects_apart_and_close_at_the_border():
    labels = _two_touching_squares()
    edge = object_outlines(labels)
    assert edge[2:6, 5].all() and edge[2:6, 6].all()  # both sides of the shared edge
    assert not edge[3:5, 3:5].any()  # interiors stay clear
    assert edge[11, 0:4].all() and edge[8:12, 0].all()  # closed where the image border cuts object 3
    assert not edge[labels == 0].any()


def test_outline_ids_and_colours():
    labels = _two_touching_squares()
    only_two = object_outlines(labels, [2])
    assert only_two.any() and not only_two[labels != 2].any()
    canvas = draw_outlines(np.zeros((12, 12, 3), np.uint8), labels)
    assert (canvas[2, 2] == colorize(labels)[2, 2]).all()  # each object in its own colour
    canvas = draw_outlines(np.zeros((12, 12, 3), np.uint8), labels, (1, 2, 3), ids=[3])
    assert (canvas[11, 0] == (1, 2, 3)).all() and not canvas[2, 2].any()


def test_report_overlay_colours_matched_missed_and_false():
    gt = _two_touching_squares()
    pred = gt.copy()
    pred[pred == 3] = 0  # object 3 missed
    pred[8:11, 7:10] = 4  # a false positive
    image = np.zeros((12, 12, 1), np.float32)
    out = draw_overlay(image, gt, pred, matched_pred={1, 2}, matched_gt={1, 2})
    assert tuple(out[2, 2]) == (0, 200, 0) and tuple(out[2, 9]) == (0, 200, 0)  # matched predictions
    assert tuple(out[8, 8]) == (230, 30, 30)  # false positive
    assert tuple(out[11, 0]) == (40, 90, 255)  # ground truth 3 missed
