"""Synthesis methods: one registry, read by the config (allowed ``generator.model`` values), the
study command (``-s``), the flow and the generator / generation stages.

A method turns the ``n_real`` real training pairs into synthetic (mask, image) pairs in two steps,
each a cached stage:

* ``prepare``  learns what it needs from the real pairs: trains a generator (``final.pt``) or
  builds a bank of real pixels. A trained method also takes the folder of a real-only arm, the
  judge its training stops by (``prepare(ctx, out_dir, n_real, judge_arm_dir)``; training_loop.py);
* ``generate`` writes a PairStore, one image for each synthetic mask of a mask store.

The methods:

* ``spade``, ``ugatit``, ``pix2pix``  trained mask-to-image generators (the architectures are in
  :data:`pipeline.generators.registry.GENERATORS`, one folder each);
* ``copypaste``          no training: real objects, cut by their own masks, pasted where the
  synthetic masks put objects, over real backgrounds (generators/copypaste.py);
* ``simple_copypaste``   no training and no synthetic masks: the objects of one real pair pasted
  into another at a large scale jitter (Ghiasi et al. 2021; generators/simple_copypaste.py), the
  cheap alternative a user would try first.

Adding a method = its module plus ``prepare`` / ``generate`` functions here and one
:data:`SYNTHESIS_METHODS` line. This module imports nothing heavy, so the config can validate names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SynthesisMethod:
    name: str
    description: str
    prepare: Callable[..., None]  # (ctx, out_dir, n_real), + judge_arm_dir when trained
    generate: Callable[[Any, Path, Path, Path], None]  # (ctx, prepared_dir, mask_dir, out_dir)
    trained: bool  # a neural generator: style grid, generator losses, realism over training
    uses_masks: bool = True  # fills synthetic masks; False: makes its own layouts from the real pairs


def _train(ctx, out_dir: Path, n_real: int, judge_arm_dir: Path | None = None) -> None:
    """Train on the n_real pairs; with a judge (a real-only arm folder) to its fidelity plateau on
    layouts cut from the validation masks, which the generator never sees."""
    from .training_loop import train_generator

    val = ctx.pairs("val") if judge_arm_dir is not None else None
    train_generator(ctx.cfg, ctx.real_train_pairs(n_real), out_dir, progress=ctx.cfg.runtime.progress,
                    judge=judge_arm_dir, val_pairs=val)


def _generate(ctx, prepared: Path, mask_dir: Path, out_dir: Path) -> None:
    from ..data.store import MaskStore
    from .generate import generate_pairs

    generate_pairs(prepared / "final.pt", MaskStore(mask_dir), out_dir, ctx.cfg.generation,
                   progress=ctx.cfg.runtime.progress)


def _copypaste_bank(ctx, out_dir: Path, n_real: int) -> None:
    from .copypaste import build_copypaste_bank

    build_copypaste_bank(ctx.real_train_pairs(n_real), out_dir, ctx.cfg.shape_bank.min_area)


def _copypaste(ctx, prepared: Path, mask_dir: Path, out_dir: Path) -> None:
    from ..data.store import MaskStore
    from .copypaste import BANK_FILE, generate_copypaste_pairs

    generate_copypaste_pairs(prepared / BANK_FILE, MaskStore(mask_dir), out_dir, ctx.cfg.generation,
                             progress=ctx.cfg.runtime.progress)


def _simple_copypaste(ctx, prepared: Path, mask_dir: Path | None, out_dir: Path) -> None:
    from .simple_copypaste import generate_simple_copypaste_pairs

    n_real = int(prepared.joinpath("n_real.txt").read_text()) if prepared.joinpath("n_real.txt").is_file() else None
    g = ctx.cfg.generation
    generate_simple_copypaste_pairs(ctx.real_train_pairs(n_real), out_dir, g, size=ctx.cfg.masks.size, count=g.count,
                                    seed=g.seed, min_area=ctx.cfg.shape_bank.min_area,
                                    progress=ctx.cfg.runtime.progress)


def _remember_n_real(ctx, out_dir: Path, n_real: int) -> None:
    """Simple Copy-Paste learns nothing: the folder records which real pairs generation may use."""
    from ..io import write_text

    write_text(out_dir / "n_real.txt", str(n_real))


SYNTHESIS_METHODS: dict[str, SynthesisMethod] = {
    m.name: m
    for m in [
        SynthesisMethod("spade", "SPADE generator (Park et al. 2019)", _train, _generate, trained=True),
        SynthesisMethod("ugatit", "U-GAT-IT generator (Kim et al. 2020)", _train, _generate, trained=True),
        SynthesisMethod("pix2pix", "pix2pix generator (Isola et al. 2017)", _train, _generate, trained=True),
        SynthesisMethod("copypaste", "real objects pasted onto the synthetic masks", _copypaste_bank, _copypaste,
                        trained=False),
        SynthesisMethod("simple_copypaste", "objects of one real pair pasted into another (Ghiasi et al. 2021)",
                        _remember_n_real, _simple_copypaste, trained=False, uses_masks=False),
    ]
}
