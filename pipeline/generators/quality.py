"""Synthetic-data quality without downloaded weights (no Inception / FID).

* :func:`realism_c2st` -- classifier two-sample test: a small CNN learns to tell real from
  synthetic crops; its accuracy on crops of *held-out images* is ~0.5 when the sets are
  indistinguishable and ~1.0 when they are trivially separable.
* :func:`diversity` -- how different the images generated from the same mask are (pixel L1 and a
  CNN feature distance); 0 for deterministic generators.
* :func:`mask_fidelity` -- does a segmenter find the objects the masks say are there? Object F1 at
  IoU 0.5 between ``segment_fn(images)`` and the source masks, matched exactly as the study's
  evaluation matches (:func:`pipeline.evaluation.matching.match_instances`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .dataset import _pad_to


class C2STNet(nn.Module):
    """Tiny CNN: 4 convs -> global average pool (the 'features') -> one logit."""

    def __init__(self, channels: int, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _common_channels(images: Sequence[np.ndarray], channels: int) -> list[np.ndarray]:
    out = []
    for im in images:
        im = np.asarray(im, np.float32)
        im = im[:, :, None] if im.ndim == 2 else im
        if im.shape[2] != channels:
            im = im.mean(axis=2, keepdims=True) if channels == 1 else np.repeat(im[:, :, :1], 3, axis=2)
        out.append(im)
    return out


def _random_crops(images: list[np.ndarray], n: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for _ in range(n):
        im = images[int(rng.integers(len(images)))]
        y = int(rng.integers(0, im.shape[0] - crop + 1))
        x = int(rng.integers(0, im.shape[1] - crop + 1))
        out.append(im[y : y + crop, x : x + crop])
    return np.stack(out)


def realism_c2st(
    real_images: Sequence[np.ndarray],
    synth_images: Sequence[np.ndarray],
    seed: int = 0,
    crop: int = 32,
    steps: int = 300,
    batch_size: int = 32,
    test_crops: int = 256,
    return_model: bool = False,
) -> dict:
    """Held-out accuracy of a real-vs-synthetic crop classifier (images float HxW[xC] in [0, 1]).

    Images (not crops) are split in half so test crops come from images the classifier never saw."""
    if len(real_images) < 2 or len(synth_images) < 2:
        raise ValueError("realism_c2st needs at least 2 real and 2 synthetic images")
    channels = 1 if min(np.asarray(i).shape[2] if np.asarray(i).ndim == 3 else 1 for i in list(real_images) + list(synth_images)) == 1 else 3
    real = [_pad_to(i, crop) for i in _common_channels(real_images, channels)]
    synth = [_pad_to(i, crop) for i in _common_channels(synth_images, channels)]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def split(items):
        perm = rng.permutation(len(items))
        half = len(items) // 2
        return [items[i] for i in perm[half:]], [items[i] for i in perm[:half]]

    real_tr, real_te = split(real)
    synth_tr, synth_te = split(synth)
    net = C2STNet(channels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    half = batch_size // 2
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    net.train()
    for _ in range(steps):
        x = np.concatenate([_random_crops(real_tr, half, crop, rng), _random_crops(synth_tr, half, crop, rng)])
        logits = net(torch.from_numpy(x).permute(0, 3, 1, 2))
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    n = test_crops // 2
    x = np.concatenate([_random_crops(real_te, n, crop, rng), _random_crops(synth_te, n, crop, rng)])
    with torch.no_grad():
        pred = net(torch.from_numpy(x).permute(0, 3, 1, 2)) > 0
    truth = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    result = {
        "accuracy": float((pred == truth).float().mean()),
        "n_real": len(real_images),
        "n_synth": len(synth_images),
        "crop": crop,
        "steps": steps,
    }
    if return_model:
        result["model"] = net
    return result


def diversity(
    checkpoint: str | Path,
    masks: Sequence[np.ndarray],
    n_styles: int = 4,
    seed: int = 0,
    feature_net: C2STNet | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Mean pairwise pixel L1 (images in [0, 1]) and feature L2 distance between the ``n_styles``
    images generated from each mask. ``feature_net``: e.g. the C2ST classifier from
    ``realism_c2st(..., return_model=True)``; default a fixed random-init C2STNet (seeded)."""
    from .generate import load_generator, style_vector

    if n_styles < 2:
        raise ValueError("diversity needs n_styles >= 2")
    gen, meta = load_generator(checkpoint, device)
    z_dim = int(getattr(gen, "z_dim", 0))
    if feature_net is None:
        torch.manual_seed(seed)
        feature_net = C2STNet(int(meta["out_channels"]))
    feature_net = feature_net.eval().to(device)
    pix, feat = [], []
    from .base import mask_to_input

    with torch.inference_mode():
        for mi, m in enumerate(masks):
            x = mask_to_input(torch.from_numpy(np.asarray(m)).long()[None]).to(device).expand(n_styles, -1, -1, -1)
            z = torch.stack([style_vector(z_dim, seed, mi, s) for s in range(n_styles)]).to(device) if z_dim else None
            imgs = ((gen(x, z).float() + 1) / 2).clamp(0, 1)
            f = feature_net.features(imgs)
            for a in range(n_styles):
                for b in range(a + 1, n_styles):
                    pix.append(float((imgs[a] - imgs[b]).abs().mean()))
                    feat.append(float((f[a] - f[b]).norm()))
    return {
        "pixel_l1": float(np.mean(pix)),
        "feature_distance": float(np.mean(feat)),
        "n_masks": len(masks),
        "n_styles": n_styles,
        "stochastic": bool(z_dim),
    }


def mask_fidelity(
    synth_pairs,
    segment_fn: Callable[[list[np.ndarray]], list[np.ndarray]],
    iou_threshold: float = 0.5,
    batch_size: int = 16,
) -> dict:
    """Object precision / recall / F1 of ``segment_fn`` on synthetic images vs their source masks.

    ``synth_pairs``: a PairStore or any sequence of (image, instance mask)."""
    from ..evaluation.matching import match_instances

    tp = n_true = n_pred = 0
    n = len(synth_pairs)
    for start in range(0, n, batch_size):
        chunk = [synth_pairs[i] for i in range(start, min(start + batch_size, n))]
        preds = segment_fn([img for img, _ in chunk])
        for (_, true), pred in zip(chunk, preds, strict=True):
            m = match_instances(true, pred, iou_threshold)
            tp, n_true, n_pred = tp + m.tp, n_true + m.n_true, n_pred + m.n_pred
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "n_true": n_true, "n_pred": n_pred, "n_images": n}
