"""Simple Copy-Paste (Ghiasi et al., CVPR 2021) as a synthesis method: pairs made of real pairs only.

Each pair: a window of real image B (native scale, its labels kept), onto which a random subset of
the objects of another real image A is pasted, each by its own mask, after a large scale jitter of
A (``generation.simple_cp_scale``: the paper's standard jitter 0.8-1.25 by default; its large 0.1-2.0
collapsed joint training on EMPS, docs/RESULTS.md section 19). Pasted objects occlude B's
objects in the label map as in the image. No synthetic masks and no training are involved: the
method asks whether recombining the real pairs already gives what a generator would.

The paper applies the augmentation per training step, on the fly. Here it is a precomputed pool
written to a PairStore like every other synthesis method, so the pretrained and joint arms sample
it exactly as they sample generator output (and its pairs are cached and resumable).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data.store import PairStore, shard_ranges
from ..hashing import arrays_hash
from .paste import blend_into, random_window, settle_labels, to_uint8

GENERATOR_NAME = "simple_copypaste"


def real_pairs_digest(real_pairs: list[tuple[np.ndarray, np.ndarray]], length: int = 12) -> str:
    """Fingerprint of the source pairs, recorded as the pairs' ``checkpoint`` (their only "model")."""
    return arrays_hash((a for image, mask in real_pairs for a in (to_uint8(image), np.asarray(mask, np.int64))),
                       length)


def _scaled_window(image: np.ndarray, labels: np.ndarray, scale: float, size: int, rng: np.random.Generator):
    """Image A scaled by ``scale`` and cut (or padded) to ``size x size`` at a random offset.

    Padding, needed when scaled A is smaller than the canvas (the paper pads as well), repeats A's
    edge pixels with no labels: only A's objects are ever pasted, and the repeated pixels exist
    only to feed the feathered rim of objects at A's edge.
    """
    h, w = labels.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (nw, nh), interpolation=interp).reshape(nh, nw, -1)
    # centre-aligned like the image resize (plain INTER_NEAREST is off by up to half a pixel)
    scaled_labels = cv2.resize(labels.astype(np.float32), (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT)
    scaled_labels = scaled_labels.astype(np.int32)
    ph, pw = max(0, size - nh), max(0, size - nw)
    if ph or pw:
        top, left = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
        pads = ((top, ph - top), (left, pw - left))
        scaled = np.pad(scaled, pads + ((0, 0),), mode="edge")
        scaled_labels = np.pad(scaled_labels, pads)
    y, x = _window_holding_object(scaled_labels, size, rng)
    if rng.random() < 0.5:
        scaled, scaled_labels = scaled[:, ::-1], scaled_labels[:, ::-1]
    return scaled[y : y + size, x : x + size].astype(np.float32), scaled_labels[y : y + size, x : x + size]


def pasteable_images(labels: list[np.ndarray], min_area: int) -> np.ndarray:
    """Indices of the images holding an object of at least ``min_area`` px: the only useful As.
    In sparse defect sets most images hold none, and drawing A from them would paste nothing."""
    return np.array([i for i, lab in enumerate(labels)
                     if lab.max() > 0 and np.bincount(lab.ravel())[1:].max() >= min_area], np.int64)


def _window_holding_object(labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a ``size`` window that holds a random object pixel (anywhere in it).

    The paper pastes A's objects where they are in A; a random window of a large or enlarged A
    would usually miss sparse objects and paste nothing, so the window is made to hold one."""
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    if len(ys) == 0:
        return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    j = int(rng.integers(len(ys)))
    y = int(np.clip(ys[j] - rng.integers(0, size), 0, h - size))
    x = int(np.clip(xs[j] - rng.integers(0, size), 0, w - size))
    return y, x


def render_simple_copypaste(images: list[np.ndarray], labels: list[np.ndarray], size: int,
                            rng: np.random.Generator, gen_cfg, min_area: int,
                            pasteable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One pair from uint8 HxWxC images and their instance labels: (image float32 in [0, 1],
    labels int32 1..N, provenance dict with the drawn ``background_index``, ``paste_index``
    (-1: no image holds an object), ``scale`` and ``objects_pasted``).

    B is any image; A is drawn from ``pasteable`` (default: :func:`pasteable_images`), another
    image than B whenever there is one.
    """
    if pasteable is None:
        pasteable = pasteable_images(labels, min_area)
    b = int(rng.integers(len(images)))
    others = pasteable[pasteable != b]
    candidates = others if len(others) else pasteable
    a = int(candidates[int(rng.integers(len(candidates)))]) if len(candidates) else -1
    canvas, out_labels = random_window(images[b], labels[b], size, size, rng)
    canvas = canvas.astype(np.float32)
    out_labels = out_labels.astype(np.int32)
    lo, hi = gen_cfg.simple_cp_scale
    scale = float(rng.uniform(lo, hi))
    chosen = np.array([], np.int32)
    ids = chosen
    if a >= 0:
        source, source_labels = _scaled_window(images[a], labels[a], scale, size, rng)
        ids, areas = np.unique(source_labels[source_labels > 0], return_counts=True)
        ids = ids[areas >= min_area]  # a pasted object too small to label would be unlabeled foreground
    if len(ids):
        chosen = rng.choice(ids, size=int(rng.integers(1, len(ids) + 1)), replace=False)
        hard = np.isin(source_labels, chosen)
        blend_into(canvas, 0, 0, source, hard, gen_cfg.copypaste_blend, int(gen_cfg.copypaste_feather_px))
        out_labels[hard] = source_labels[hard] + int(out_labels.max())
    image = (np.clip(canvas, 0, 255) / 255.0).astype(np.float32)
    info = {"background_index": b, "paste_index": a, "scale": scale, "objects_pasted": int(len(chosen))}
    return image, settle_labels(out_labels, min_area), info


def generate_simple_copypaste_pairs(real_pairs: list[tuple[np.ndarray, np.ndarray]], out_dir: Path, gen_cfg,
                                    size: int, count: int, seed: int, min_area: int = 12,
                                    progress: bool = True) -> PairStore:
    """``count`` Simple Copy-Paste pairs of ``size x size`` from the real training pairs, as a
    resumable PairStore (``generator = "simple_copypaste"``).

    ``real_pairs``: (float image in [0, 1], int instance labels) as the stages load them. Pair ``i``
    is drawn from ``np.random.default_rng([seed, i])`` alone, so the pool does not depend on
    ``gen_cfg.shard_size`` or on resuming. Blending follows ``gen_cfg.copypaste_blend`` /
    ``copypaste_feather_px``; ``min_area`` should be the shape bank's, so that fragments are
    dropped as everywhere else.
    """
    from tqdm.auto import tqdm

    if not real_pairs:
        raise ValueError("simple copy-paste: no real pairs")
    images = [to_uint8(image) for image, _ in real_pairs]
    labels = [np.asarray(mask).astype(np.int32) for _, mask in real_pairs]
    digest = real_pairs_digest(real_pairs)
    pasteable = pasteable_images(labels, min_area)
    store = PairStore(out_dir)
    done = store.completed_shards()
    with tqdm(total=count, desc="simple copy-paste pairs", disable=not progress, unit="pair") as bar:
        for k, start, stop in shard_ranges(count, gen_cfg.shard_size):
            if k in done:
                bar.update(stop - start)
                continue
            out_images, out_masks, rows = [], [], []
            for i in range(start, stop):
                rng = np.random.default_rng([seed, i])
                image, mask, info = render_simple_copypaste(images, labels, size, rng, gen_cfg, min_area,
                                                            pasteable)
                out_images.append(image)
                out_masks.append(mask)
                rows.append({"index": i, "mask_index": info["background_index"], "mask_source": "real",
                             "generator": GENERATOR_NAME, "checkpoint": f"real_pairs#{digest}",
                             "seed": seed, "style": 0, **info})
            store.write_shard(k, out_images, out_masks, rows)
            bar.update(stop - start)
    store.finalize()
    return store
