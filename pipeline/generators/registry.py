"""Name -> generator class. Adding an architecture = one folder + one line here."""

from __future__ import annotations

from ..config import GeneratorConfig
from ..errors import InputError
from .base import GeneratorModel
from .pix2pix import Pix2PixModel
from .spade import SPADEModel
from .ugatit import UGATITModel

GENERATORS: dict[str, type[GeneratorModel]] = {
    "spade": SPADEModel,
    "ugatit": UGATITModel,
    "pix2pix": Pix2PixModel,
}


def create_generator(name: str, in_mask_channels: int, out_channels: int, cfg: GeneratorConfig) -> GeneratorModel:
    if name not in GENERATORS:
        raise InputError(f"generator.model={name}: not a trainable generator here; known: {sorted(GENERATORS)}")
    return GENERATORS[name](in_mask_channels, out_channels, cfg)
