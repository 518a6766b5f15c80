"""Synthesis methods: one registry, read by the config (allowed ``generator.model`` values), the
study command (``-s``), the flow and the generator / generation stages.

A method turns the ``n_real`` real training pairs into synthetic (mask, image) pairs in two steps,
each a cached stage:

* ``prepare``  learns what it needs from the real pairs: trains a generator (``final.pt``) or
  builds a bank of real pixels;
* ``generate`` writes a PairStore, one image for each synthetic mask of a mask store.

The methods:

* ``spade``, ``ugatit``  trained mask-to-image generators (the architectures are in
  :data:`pipeline.generators.registry.GENERATORS`, one folder each);
* ``copypaste``          no training: real objects' pixels pasted onto the synthetic masks over
  real backgrounds (generators/copypaste.py), the cheap alternative a GAN has to beat.

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
    prepare: Callable[[Any, Path, int], None]  # (ctx, out_dir, n_real)
    generate: Callable[[Any, Path, Path, Path], None]  # (ctx, prepared_dir, mask_dir, out_dir)
    trained: bool  # a neural generator: style grid, generator losses, realism over training


def _train(ctx, out_dir: Path, n_real: int) -> None:
    from .training_loop import train_generator

    train_generator(ctx.cfg, ctx.real_train_pairs(n_real), out_dir, progress=ctx.cfg.runtime.progress)


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


SYNTHESIS_METHODS: dict[str, SynthesisMethod] = {
    m.name: m
    for m in [
        SynthesisMethod("spade", "SPADE generator (Park et al. 2019)", _train, _generate, trained=True),
        SynthesisMethod("ugatit", "U-GAT-IT generator (Kim et al. 2020)", _train, _generate, trained=True),
        SynthesisMethod("copypaste", "real objects pasted onto the synthetic masks", _copypaste_bank, _copypaste,
                        trained=False),
    ]
}
