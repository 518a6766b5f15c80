"""Pasting real objects onto a canvas so that the image and the instance map agree pixel for pixel.

Shared by object-true copy-paste (:mod:`.copypaste`) and Simple Copy-Paste
(:mod:`.simple_copypaste`). The rules both rely on:

* An object is carried by its OWN mask: the label map receives exactly the hard mask that was
  pasted, and the image receives that object's pixels there (plus a thin blended rim).
* Later pastes occlude earlier ones, in the label map as in the image.
* :func:`settle_labels` ends every composition: each output instance is one 8-connected piece,
  pieces smaller than ``min_area`` are dropped (an occluded object's sliver is not an object a
  segmenter could or should find), and ids are renumbered 1..N.

Images are handled as float32 ``H x W x C`` arrays in 0..255 while composing (blending needs the
headroom) and as uint8 in banks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.measure import label as connected_pieces

from ..data.labelmaps import drop_small_and_renumber

BLENDS = ("none", "feather", "poisson")
# cv2.seamlessClone erodes its mask (measured with OpenCV 5.0: an object 1-2 px inside the mask's
# edge vanished, 3 px inside lost half its contrast, 5 px inside was kept exactly): the mask is
# grown by this much on top of the feather width before cloning.
POISSON_ERODE_PX = 4


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A pipeline image (float in [0, 1], HxW or HxWxC) as uint8 HxWxC."""
    img8 = np.clip(np.rint(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)
    return img8.reshape(img8.shape[0], img8.shape[1], -1)


def settle_labels(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Split every instance into its 8-connected pieces, drop pieces below ``min_area``, number 1..N.

    Occlusion can cut an object in two; a segmenter predicts two objects there, so the target does
    too. Pieces are numbered in raster order, which makes the output independent of paste ids.
    """
    return drop_small_and_renumber(connected_pieces(labels, background=0, connectivity=2).astype(np.int32), min_area)


def random_window(image: np.ndarray, labels: np.ndarray, h: int, w: int, rng: np.random.Generator):
    """An ``h x w`` window of a real image and its labels at native scale, randomly flipped.

    Images smaller than the window are reflect-padded; a mirrored object keeps its id there, and
    :func:`settle_labels` later splits the copies into separate instances.
    """
    ih, iw = labels.shape
    ph, pw = max(0, h - ih), max(0, w - iw)
    if ph or pw:
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        mode = "reflect" if min(ih, iw) > 1 else "edge"
        image = np.pad(image, pads + ((0, 0),), mode=mode)
        labels = np.pad(labels, pads, mode=mode)
        ih, iw = labels.shape
    y = int(rng.integers(0, ih - h + 1))
    x = int(rng.integers(0, iw - w + 1))
    image, labels = image[y : y + h, x : x + w], labels[y : y + h, x : x + w]
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    if rng.random() < 0.5:
        image, labels = image[::-1], labels[::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def place_object(crop: np.ndarray, crop_mask: np.ndarray, centre: tuple[float, float], scale: float,
                 angle: float, flip: bool, canvas_hw: tuple[int, int], rim: int):
    """Scale / rotate / flip one object about its centroid and move the centroid to ``centre``.

    ``crop``: the object's pixels with some real context around its mask (the context feeds the
    blended rim outside the mask); ``crop_mask``: its own mask in the crop. ``angle`` in degrees,
    ``centre`` as (y, x) on the canvas. Returns ``(y0, x0, patch, hard)`` -- the warped pixels
    (float32) and hard mask of the canvas box ``[y0:y0+h, x0:x0+w]`` that holds the object plus
    ``rim`` px -- or None when the object lands outside the canvas.

    The translation is rounded to whole pixels, so an unscaled object rotated by a multiple of 90
    degrees is copied exactly, without resampling.
    """
    ys, xs = np.nonzero(crop_mask)
    if len(ys) == 0:
        return None
    cy, cx = ys.mean(), xs.mean()
    theta = math.radians(angle)
    c, s = math.cos(theta) * scale, math.sin(theta) * scale
    linear = np.array([[c, -s], [s, c]], np.float64)  # (x, y) -> (x, y), y pointing down
    if flip:
        linear = linear @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    linear[np.abs(linear) < 1e-12] = 0.0
    shift = np.array([centre[1], centre[0]]) - linear @ np.array([cx, cy])
    shift = np.rint(shift)
    # the canvas box: the mask's box, transformed, plus the rim
    y_lo, y_hi, x_lo, x_hi = ys.min(), ys.max(), xs.min(), xs.max()
    corners = np.array([[x_lo, y_lo], [x_hi, y_lo], [x_lo, y_hi], [x_hi, y_hi]], np.float64)
    moved = corners @ linear.T + shift
    h, w = canvas_hw
    x0 = max(int(math.floor(moved[:, 0].min())) - rim - 1, 0)
    y0 = max(int(math.floor(moved[:, 1].min())) - rim - 1, 0)
    x1 = min(int(math.ceil(moved[:, 0].max())) + rim + 2, w)
    y1 = min(int(math.ceil(moved[:, 1].max())) + rim + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    matrix = np.hstack([linear, (shift - [x0, y0])[:, None]]).astype(np.float64)
    size = (x1 - x0, y1 - y0)
    patch = cv2.warpAffine(crop.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    patch = patch.reshape(size[1], size[0], -1)
    soft = cv2.warpAffine(crop_mask.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    hard = soft > 0.5
    if not hard.any():
        return None
    return y0, x0, patch, hard


def feather_alpha(hard: np.ndarray, feather_px: int) -> np.ndarray:
    """Alpha of a pasted mask: a Gaussian (sigma feather_px / 2) truncated at feather_px.

    The truncation is the guarantee that blending touches only pixels within feather_px of the
    mask's edge (Chebyshev distance); away from edges alpha is exactly 0 or 1. Beyond the box the
    mask is continued (replicated): an object cut by the canvas edge stays opaque up to that edge.
    """
    alpha = hard.astype(np.float32)
    if feather_px <= 0:
        return alpha
    k = 2 * int(feather_px) + 1
    return cv2.GaussianBlur(alpha, (k, k), feather_px / 2.0, borderType=cv2.BORDER_REPLICATE)


def blend_into(canvas: np.ndarray, y0: int, x0: int, patch: np.ndarray, hard: np.ndarray, blend: str,
               feather_px: int) -> str:
    """Composite ``patch`` into ``canvas[y0:, x0:]`` (float32, 0..255) in place; returns the blend
    actually used (Poisson falls back to feathering near the canvas border or when OpenCV refuses)."""
    h, w = hard.shape
    region = canvas[y0 : y0 + h, x0 : x0 + w]
    if blend == "poisson" and _poisson_into(canvas, y0, x0, patch, hard, feather_px):
        return "poisson"
    if blend == "none":
        region[hard] = patch[hard]
        return "none"
    alpha = feather_alpha(hard, feather_px)[:, :, None]
    region[...] = alpha * patch + (1.0 - alpha) * region
    return "feather"


def _poisson_into(canvas: np.ndarray, y0: int, x0: int, patch: np.ndarray, hard: np.ndarray,
                  feather_px: int) -> bool:
    """cv2.seamlessClone of the mask grown by feather_px + POISSON_ERODE_PX, so that the seam runs
    through the source's own background. Gradient-domain pasting needs a frame of destination
    pixels around the mask: refused (False) when the grown mask comes within 2 px of the canvas
    border, or when OpenCV raises."""
    ch, cw = canvas.shape[:2]
    grow = feather_px + POISSON_ERODE_PX
    grown = cv2.dilate(hard.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8))
    bx, by, bw, bh = cv2.boundingRect(grown)
    if bw == 0 or by + y0 < 2 or bx + x0 < 2 or y0 + by + bh > ch - 2 or x0 + bx + bw > cw - 2:
        return False
    # seamlessClone zeroes the outer 1-px frame of the mask: pad so the mask never reaches it
    pad = 2
    src = np.pad(patch, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    mask = np.pad(grown * 255, pad)
    channels = canvas.shape[2]
    as3 = (lambda a: np.repeat(a, 3, axis=2)) if channels == 1 else (lambda a: a)
    src8 = np.clip(np.rint(as3(src)), 0, 255).astype(np.uint8)
    dst8 = np.clip(np.rint(as3(canvas)), 0, 255).astype(np.uint8)
    centre = (x0 + bx + bw // 2, y0 + by + bh // 2)  # OpenCV puts the mask's box at centre - size // 2
    try:
        out = cv2.seamlessClone(src8, dst8, mask, centre, cv2.NORMAL_CLONE)
    except cv2.error:
        return False
    changed = np.zeros((ch, cw), bool)
    changed[y0 : y0 + hard.shape[0], x0 : x0 + hard.shape[1]] = grown > 0
    result = out.astype(np.float32)
    if channels == 1:
        result = result.mean(axis=2, keepdims=True)
    canvas[changed] = result[changed]
    return True
