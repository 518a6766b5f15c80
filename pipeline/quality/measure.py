"""Synthetic-data quality for one generator and its pairs, as the report shows it.

Three numbers, none needing downloaded weights (the metric code is in
:mod:`pipeline.generators.quality`):

* **mask fidelity**: a segmentation model trained on *real* pairs only is run on the synthetic images;
  object F1@0.5 against the masks they were generated from. Shown next to the same model's F1 on
  real validation images, because the number only means something relative to that ceiling.
* **realism**: held-out accuracy of a small CNN taught to tell real crops from synthetic ones
  (0.5 = indistinguishable, 1.0 = trivially separable).
* **diversity**: mean pairwise distance between images generated from one mask with different style
  codes (0 for a deterministic generator: SPADE without VAE, U-GAT-IT).

Also a style grid (mask | real image | generated with several style codes) on real validation masks,
the picture an engineer looks at first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..config import Config
from ..data.store import PairStore
from ..io import write_png

MEANINGS = {
    "mask_fidelity_f1": "object F1@0.5 of a real-trained segmenter on synthetic images vs their source masks",
    "mask_fidelity_real_f1": "the same segmenter on real validation images (the ceiling for the line above)",
    "realism_c2st_accuracy": "held-out accuracy of a real-vs-synthetic crop classifier (0.5 = indistinguishable)",
    "diversity_pixel_l1": "mean pixel L1 between images of one mask with different style codes (0 = deterministic)",
    "diversity_feature": "the same as a CNN-feature distance",
}


def _sample(store: PairStore, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    idx = np.sort(np.random.default_rng(seed).choice(len(store), size=min(n, len(store)), replace=False))
    return [store[int(i)] for i in idx]


def style_grid(
    generator_ckpt: Path, pairs: list[tuple[np.ndarray, np.ndarray]], out: Path, n_styles: int = 3,
    crop: int = 128, seed: int = 0, tile: int = 128,
) -> None:
    """Rows of mask | real image | generated images (one per style code), from centre crops of real pairs."""
    from ..drawing import colorize, to_rgb8
    from ..generators.base import mask_to_input
    from ..generators.generate import load_generator, style_vector

    gen, _ = load_generator(generator_ckpt, "cpu")
    z_dim = int(getattr(gen, "z_dim", 0))
    rows = []
    with torch.inference_mode():
        for k, (image, mask) in enumerate(pairs):
            h, w = mask.shape
            c = min(crop, h, w) // 32 * 32
            y, x = (h - c) // 2, (w - c) // 2
            m, im = mask[y : y + c, x : x + c], image[y : y + c, x : x + c]
            inp = mask_to_input(torch.from_numpy(m.astype(np.int64))[None]).expand(n_styles, -1, -1, -1)
            z = torch.stack([style_vector(z_dim, seed, k, s) for s in range(n_styles)]) if z_dim else None
            fake = ((gen(inp, z).float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
            cells = [colorize(m), to_rgb8(im)] + [to_rgb8(f) for f in fake]
            cells = [cv2.resize(cell, (tile, tile), interpolation=cv2.INTER_AREA) for cell in cells]
            gap = np.full((tile, 4, 3), 255, np.uint8)
            rows.append(np.concatenate(sum(([cell, gap] for cell in cells), [])[:-1], axis=1))
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    write_png(out, np.concatenate(sum(([r, gap] for r in rows), [])[:-1], axis=0))


def measure_quality(
    cfg: Config,
    synthetic_dir: Path,
    segmenter_ckpt: Path,
    real_train: list[tuple[np.ndarray, np.ndarray]],
    real_val: list[tuple[np.ndarray, np.ndarray]],
    generator_ckpt: Path | None,
    seed: int = 0,
) -> dict:
    """``{metric: {"value", "meaning"}}`` plus details. ``generator_ckpt=None`` (copy-paste) skips diversity."""
    from ..device import configure, pick_device
    from ..generators.quality import diversity, mask_fidelity, realism_c2st
    from ..segmentation.training import load_segmentation_model, predict_instances

    store = PairStore(synthetic_dir)
    q = cfg.quality
    synth = _sample(store, q.images, seed)
    threshold = cfg.evaluation.iou_threshold
    configure(cfg.runtime)
    device = pick_device(cfg.runtime.device)
    model, meta = load_segmentation_model(segmenter_ckpt, device)  # once, not per batch
    seg_cfg = cfg.model_copy(update={"segmentation": cfg.segmentation.model_copy(update={"target": meta["target"]})})

    def segment(images):
        return predict_instances(model, images, seg_cfg, device)

    fid = mask_fidelity(synth, segment, threshold)
    ref = mask_fidelity(real_val, segment, threshold) if real_val else {"f1": float("nan")}
    c2st = realism_c2st([i for i, _ in real_train], [i for i, _ in synth], seed=seed, steps=q.c2st_steps)
    values = {
        "mask_fidelity_f1": fid["f1"],
        "mask_fidelity_real_f1": ref["f1"],
        "realism_c2st_accuracy": c2st["accuracy"],
    }
    details = {"mask_fidelity": fid, "mask_fidelity_real": ref, "realism_c2st": c2st, "segmenter": str(segmenter_ckpt)}
    if generator_ckpt is not None:
        masks = [m for _, m in synth[: min(32, len(synth))]]
        div = diversity(generator_ckpt, masks, n_styles=q.styles, seed=seed)
        values["diversity_pixel_l1"] = div["pixel_l1"]
        values["diversity_feature"] = div["feature_distance"]
        details["diversity"] = div
    out = {k: {"value": round(float(v), 4), "meaning": MEANINGS[k]} for k, v in values.items()}
    return {**out, "details": details}
