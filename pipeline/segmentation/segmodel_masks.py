"""Segmentation-model masks: a mask source built from a trained model's predictions.

A model trained on the ~100 real pairs segments images whose labels we do not use (the set's
unlabeled images, or held-out real images with their labels ignored). Its confident objects, cut
into random ``masks.size`` windows, give instance masks with realistic layouts and shapes.
Objects whose mean object probability is below ``masks.segmodel_min_score`` are removed (set to
background) before cropping, so doubtful detections do not become training targets.

Crop ``i`` depends only on ``(seed, i)``, and the store is written shard by shard, so an
interrupted run resumes and any count reproduces the same first masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.segmentation import relabel_sequential
from tqdm.auto import tqdm

from ..config import Config
from ..data.images import InputError
from ..data.store import MaskStore, shard_ranges
from .postprocess import object_probability
from .training import load_segmentation_model, predict_with_probabilities

SOURCE = "segmodel"
MAX_DRAWS = 20  # windows tried per mask before accepting one without objects


def confident_objects(instances: np.ndarray, probs: np.ndarray, kind: str, min_score: float) -> tuple[np.ndarray, int]:
    """Keep objects whose mean object probability is >= ``min_score``; (relabelled mask, kept)."""
    n = int(instances.max())
    if n == 0:
        return instances.astype(np.int32), 0
    obj_prob = object_probability(probs, kind)
    flat = instances.ravel()
    sums = np.bincount(flat, weights=obj_prob.ravel(), minlength=n + 1)
    areas = np.bincount(flat, minlength=n + 1)
    score = sums / np.maximum(areas, 1)
    keep = score >= min_score
    keep[0] = False
    kept = np.where(keep[instances], instances, 0)
    return relabel_sequential(kept)[0].astype(np.int32), int(keep.sum())


def crop_mask(mask: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """A ``size x size`` window (zero-padded when the mask is smaller), relabelled 1..N."""
    h, w = mask.shape
    y = int(rng.integers(0, max(h - size, 0) + 1))
    x = int(rng.integers(0, max(w - size, 0) + 1))
    window = np.zeros((size, size), np.int32)
    part = mask[y : y + size, x : x + size]
    window[: part.shape[0], : part.shape[1]] = part
    return relabel_sequential(window)[0].astype(np.int32), y, x


def write_segmodel_masks(
    checkpoint: str | Path,
    images: list[np.ndarray],
    out_dir: str | Path,
    cfg: Config,
    seed: int,
    count: int | None = None,
    origins: list[str] | None = None,
    shard_size: int | None = None,
    device=None,
) -> MaskStore:
    """Predict ``images`` with ``checkpoint`` and write ``count`` (default ``cfg.masks.count``)
    mask crops of ``cfg.masks.size`` into a :class:`MaskStore` at ``out_dir``.

    Manifest columns: index, source ("segmodel"), origin (image name), checkpoint, y, x,
    n_objects.
    """
    if not images:
        raise InputError("segmentation-model masks need at least one image to predict")
    count = int(cfg.masks.count if count is None else count)
    size = int(cfg.masks.size)
    shard_size = int(shard_size or cfg.generation.shard_size)
    origins = list(origins) if origins is not None else [f"image_{j:05d}" for j in range(len(images))]
    if len(origins) != len(images):
        raise ValueError("one origin name per image")
    store = MaskStore(out_dir)
    todo = [r for r in shard_ranges(count, shard_size) if r[0] not in store.completed_shards()]
    if todo:
        from ..device import pick_device

        device = pick_device(cfg.runtime.device) if device is None else device
        model, meta = load_segmentation_model(checkpoint, device)
        kept_masks = []
        for image in tqdm(images, desc="segmodel predict", disable=not cfg.runtime.progress):
            inst, probs = predict_with_probabilities(model, [image], cfg, device)[0]
            kept_masks.append(confident_objects(inst, probs, meta["target"], cfg.masks.segmodel_min_score)[0])
        usable = [j for j, m in enumerate(kept_masks) if m.max() > 0]
        if not usable:
            raise InputError(
                f"{checkpoint}: no confident objects in {len(images)} image(s) "
                f"(masks.segmodel_min_score={cfg.masks.segmodel_min_score}); lower it or train longer"
            )
        for k, start, stop in tqdm(todo, desc="segmodel masks", disable=not cfg.runtime.progress):
            masks, rows = [], []
            for i in range(start, stop):
                rng = np.random.default_rng([seed, i])
                for _ in range(MAX_DRAWS):
                    j = usable[int(rng.integers(len(usable)))]
                    crop, y, x = crop_mask(kept_masks[j], size, rng)
                    if crop.max() > 0:
                        break
                masks.append(crop)
                rows.append(
                    {
                        "index": i,
                        "source": SOURCE,
                        "origin": origins[j],
                        "checkpoint": str(checkpoint),
                        "y": y,
                        "x": x,
                        "n_objects": int(crop.max()),
                    }
                )
            store.write_shard(k, masks, rows)
    store.finalize()
    return store
