"""The judge of generator training: does the generator draw what its masks say?

A generator is only useful to this project if a segmenter can learn the masks from its images, so
its training is scored by that, not by a step budget or by its losses (GAN losses say how the
generator and its discriminator stand against each other, not how good the images are). The
judge is a segmentation model trained on the *real* pairs only (the study's real-only arm at the
lowest seed for the same ``n_real``) with the post-processing that arm was tuned with. Every
evaluation, the EMA generator draws images for a fixed set of held-out layouts (crops of the real
*validation* masks: the generator never saw them, so reproducing a memorised training image does
not score) and the judge segments them; the score is the object F1 of the judge's instances
against those layouts (:func:`pipeline.generators.quality.mask_fidelity`, the study's matching).

What the judge cannot see: anything the real-only model does not need to find objects. Texture
and noise statistics, the background's look, artefacts away from objects, how varied the images
of one mask are. A few cheap realism numbers (:func:`realism_numbers`) are logged beside the F1 so
such drift is visible, but they do not decide anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..errors import InputError
from .base import MIN_SIDE

LAYOUT_TRIES = 12  # positions tried per layout before settling for a crop without objects
_QUANTILES = np.linspace(0.01, 0.99, 99)


def judge_layouts(
    val_pairs: Sequence[tuple[np.ndarray, np.ndarray]], size: int, count: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (real image crop, instance mask crop) pairs from the validation pairs: layout ``k``
    is a crop of validation pair ``k % n``, ``min(size, side)`` pixels on each side, at the first of
    up to :data:`LAYOUT_TRIES` positions drawn from ``default_rng([seed, k])`` whose mask holds an
    object (in sparse-defect sets most random crops are background, and an empty layout says
    nothing about fidelity). Pairs with a side below the generators' minimum are skipped."""
    usable = [(np.asarray(img, np.float32), np.asarray(m)) for img, m in val_pairs if min(m.shape[:2]) >= MIN_SIDE]
    if not usable:
        raise InputError(f"no validation pair of at least {MIN_SIDE} x {MIN_SIDE} px to draw judge layouts from")
    out = []
    for k in range(count):
        image, mask = usable[k % len(usable)]
        h, w = mask.shape[:2]
        ch, cw = min(size, h), min(size, w)
        rng = np.random.default_rng([seed, k])
        for _ in range(LAYOUT_TRIES):
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            if mask[y : y + ch, x : x + cw].any():
                break
        img = image[y : y + ch, x : x + cw]
        out.append((np.ascontiguousarray(img if img.ndim == 3 else img[:, :, None]),
                    np.ascontiguousarray(mask[y : y + ch, x : x + cw], dtype=np.int32)))
    return out


def _gray_pixels(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(im, np.float32).mean(axis=2) if np.asarray(im).ndim == 3 else np.asarray(im, np.float32)
            for im in images]


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance between two samples, from 99 quantiles (cheap on a million values)."""
    return float(np.mean(np.abs(np.quantile(a, _QUANTILES) - np.quantile(b, _QUANTILES))))


def realism_numbers(synthetic: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> dict[str, float]:
    """Cheap distances between generated images and the real crops of the same layouts (images in
    [0, 1], channels averaged). They cost milliseconds and need no weights:

    * ``mean_diff``: synthetic minus real mean intensity (a brightness drift);
    * ``std_ratio``: synthetic over real intensity standard deviation (contrast; 1 = the same);
    * ``intensity_w1``: Wasserstein distance between the pixel intensity distributions;
    * ``gradient_w1``: the same between gradient-magnitude distributions: a blurry generator has
      too few strong gradients, a noisy one too many;
    * ``l1_to_real``: mean absolute difference to the real image of the same layout: a mask fixes
      where objects are, not their texture, so this falls while the generator learns the layout's
      light and dark and then levels off; a trend, not a target.
    """
    syn, ref = _gray_pixels(synthetic), _gray_pixels(real)
    s_all, r_all = np.concatenate([s.ravel() for s in syn]), np.concatenate([r.ravel() for r in ref])
    grad = lambda g: np.hypot(*np.gradient(g)).ravel() if min(g.shape) > 1 else np.zeros(1, np.float32)  # noqa: E731
    r_std = float(r_all.std())
    return {
        "mean_diff": float(s_all.mean() - r_all.mean()),
        "std_ratio": float(s_all.std() / r_std) if r_std > 0 else float("nan"),
        "intensity_w1": _w1(s_all, r_all),
        "gradient_w1": _w1(np.concatenate([grad(s) for s in syn]), np.concatenate([grad(r) for r in ref])),
        "l1_to_real": float(np.mean([np.abs(s - r).mean() for s, r in zip(syn, ref, strict=True)])),
    }


class GeneratorJudge:
    """A real-only segmentation model with its tuned post-processing, and the held-out layouts it
    judges generated images on. :meth:`score` is all the training loop calls (tests pass any object
    with ``layouts``, ``identity`` and ``score``)."""

    def __init__(self, model: torch.nn.Module, target: str, evaluation, layouts: list[tuple[np.ndarray, np.ndarray]],
                 device: torch.device, amp: bool, identity: dict):
        self.model, self.target, self.evaluation = model, target, evaluation
        self.layouts, self.device, self.amp, self.identity = layouts, device, amp, identity

    def segment(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from ..quality.filtering import batch_probabilities
        from ..segmentation.postprocess import instances_for_config

        probs = batch_probabilities(self.model, images, self.device, self.amp)
        return [instances_for_config(p, self.target, self.evaluation) for p in probs]

    def score(self, images: list[np.ndarray]) -> dict[str, float]:
        """Object fidelity (``fidelity_f1``, ``precision``, ``recall``, ``n_true``, ``n_pred``) of
        the images generated for :attr:`layouts`, in order, plus :func:`realism_numbers`."""
        from .quality import mask_fidelity

        if len(images) != len(self.layouts):
            raise ValueError(f"{len(images)} images for {len(self.layouts)} judge layouts")
        fid = mask_fidelity([(img, m) for img, (_, m) in zip(images, self.layouts)], self.segment,
                            self.evaluation.iou_threshold)
        return {"fidelity_f1": fid["f1"], "precision": fid["precision"], "recall": fid["recall"],
                "n_true": fid["n_true"], "n_pred": fid["n_pred"],
                **realism_numbers(images, [real for real, _ in self.layouts])}


def judge_checkpoint(arm_dir: Path) -> tuple[Path, dict]:
    """(best checkpoint, metrics.json) of a finished segmentation arm folder. The checkpoint path
    recorded there is absolute; a moved run folder is found again under the arm folder."""
    from ..io import read_json

    arm_dir = Path(arm_dir)
    if not (arm_dir / "metrics.json").is_file():
        raise InputError(f"{arm_dir}: not a finished segmentation arm (no metrics.json); "
                         "the judge is a real-only arm folder")
    metrics = read_json(arm_dir / "metrics.json")
    recorded = Path(str(metrics.get("checkpoint", "")))
    for ckpt in (recorded, arm_dir / recorded.parent.name / recorded.name):
        if ckpt.is_file():
            return ckpt, metrics
    raise InputError(f"{arm_dir}/metrics.json: its checkpoint {recorded} is missing")


def load_judge(arm_dir: Path, cfg: Config, val_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
               device: torch.device) -> GeneratorJudge:
    """The judge of ``arm_dir`` (a finished real-only arm: its best checkpoint, thresholds and
    minimum object area from ``metrics.json``) on ``generator.eval_layouts`` layouts of
    ``generator.image_size`` from ``val_pairs`` (:func:`judge_layouts`, seeded by
    ``generator.seed``). Matching uses ``evaluation.iou_threshold``."""
    from ..hashing import file_hash
    from ..segmentation.postprocess import POSTPROCESS_KEYS
    from ..segmentation.training import load_segmentation_model

    ckpt, metrics = judge_checkpoint(arm_dir)
    model, meta = load_segmentation_model(ckpt, device)
    postprocess = {k: metrics[k] for k in POSTPROCESS_KEYS if metrics.get(k) is not None}
    evaluation = cfg.evaluation.model_copy(update=postprocess)
    g = cfg.generator
    layouts = judge_layouts(val_pairs, g.image_size, g.eval_layouts, g.seed)
    channels = {img.shape[2] for img, _ in layouts}
    if channels != {int(meta["in_channels"])}:
        raise InputError(f"{ckpt}: the judge takes {meta['in_channels']}-channel images, the validation images have "
                         f"{sorted(channels)}")
    identity = {
        "arm": Path(arm_dir).name,
        "checkpoint": str(ckpt),
        "checkpoint_sha256": file_hash(ckpt, 12),
        **postprocess,
        "iou_threshold": evaluation.iou_threshold,
        "layouts": len(layouts),
        "layout_objects": int(sum(len(np.unique(m)) - int((m == 0).any()) for _, m in layouts)),
    }
    return GeneratorJudge(model, meta["target"], evaluation, layouts, device, cfg.segmentation.amp, identity)
