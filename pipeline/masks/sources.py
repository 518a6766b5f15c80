"""Mask sources: one registry, read by the config (allowed ``masks.sources`` keys), the flow and
the mask stage.

A mask source writes ``count`` synthetic instance masks (``masks.size`` square, labels 1..N) into
a MaskStore, from what the ``n_real`` real training pairs of a study point show:

* ``placement``  shapes from the shape bank, dropped onto empty canvases (masks/placement.py);
* ``segmodel``   a segmentation model's predictions on unlabeled images (segmentation/segmodel_masks.py);
* ``progan``     a ProgressiveGAN trained on the training masks (masks/progan.py);
* ``realmask``   the real training masks themselves, flipped, rotated, rescaled, warped, cropped
                 and tiled (masks/realmask.py): layouts with the real density and touching.

Adding a source = its module plus a ``write`` function here and one :data:`MASK_SOURCES` line;
the stage (pipeline/stages.py ``stage_masks``) caches it under a key derived from the config
sections it names and the code its ``write`` function imports. This module imports nothing heavy,
so the config can validate source names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MaskSource:
    name: str
    description: str
    # write(ctx, out_dir, bank_dir, count, n_real) -> the MaskStore folder (out_dir or below it)
    write: Callable[[Any, Path, Path, int, int], Path]
    # config sections besides ``masks`` whose values change the masks (part of the cache key)
    config_sections: tuple[str, ...] = ()
    # the store sits in this folder of the stage's output (a model may sit beside it)
    store_subdir: str = ""


def _placement(ctx, out_dir: Path, bank_dir: Path, count: int, n_real: int) -> Path:
    from .placement import write_placement_masks
    from .shape_bank import ShapeBank

    m = ctx.cfg.masks
    write_placement_masks(ShapeBank.load(bank_dir), out_dir, m, count=count, seed=m.seed, workers=m.workers,
                          progress=ctx.cfg.runtime.progress)
    return out_dir


def _segmodel(ctx, out_dir: Path, bank_dir: Path, count: int, n_real: int) -> Path:
    """A segmentation model trained (to its plateau) on the n_real real pairs predicts masks on the
    set's unlabeled images if it has them, else on those training images with their labels ignored."""
    from ..data.labeled_set import load_unlabeled
    from ..segmentation.segmodel_masks import write_segmodel_masks
    from ..segmentation.training import train_segmentation

    report = ctx.report()
    stems = ctx.real_train_stems(n_real)
    train = ctx.report_pairs(stems)
    seg = ctx.cfg.segmentation
    ckpt = train_segmentation(ctx.cfg, train, ctx.pairs("val"), out_dir / "model", steps=seg.max_steps, lr=seg.lr,
                              seed=ctx.cfg.masks.seed, progress=ctx.cfg.runtime.progress)
    images = [load_unlabeled(report, p) for p in report.unlabeled] or [i for i, _ in train]
    origins = [str(p) for p in report.unlabeled] or stems
    write_segmodel_masks(ckpt, images, out_dir / "masks", ctx.cfg, count=count, seed=ctx.cfg.masks.seed,
                         origins=[str(s) for s in origins])
    return out_dir / "masks"


def _progan(ctx, out_dir: Path, bank_dir: Path, count: int, n_real: int) -> Path:
    from .progan import write_progan_masks

    c = ctx.cfg.masks
    masks = [mk for _, mk in ctx.real_train_pairs(n_real)]
    write_progan_masks(masks, out_dir / "model", out_dir / "masks", c.size, count, c.progan_steps, c.seed,
                       ctx.cfg.shape_bank.min_area, progress=ctx.cfg.runtime.progress)
    return out_dir / "masks"


def _realmask(ctx, out_dir: Path, bank_dir: Path, count: int, n_real: int) -> Path:
    from .realmask import write_realmask_masks

    m = ctx.cfg.masks
    write_realmask_masks([mk for _, mk in ctx.real_train_pairs(n_real)], out_dir, m, count=count, seed=m.seed,
                         min_area=ctx.cfg.shape_bank.min_area, progress=ctx.cfg.runtime.progress)
    return out_dir


MASK_SOURCES: dict[str, MaskSource] = {
    s.name: s
    for s in [
        MaskSource("placement", "shape-bank shapes placed on empty canvases", _placement, ("shape_bank",)),
        MaskSource("segmodel", "a segmentation model's masks on unlabeled images", _segmodel,
                   ("segmentation", "evaluation"), store_subdir="masks"),
        MaskSource("progan", "masks drawn by a ProgressiveGAN", _progan, ("shape_bank",), store_subdir="masks"),
        MaskSource("realmask", "the real training masks, augmented", _realmask, ("shape_bank",)),
    ]
}
