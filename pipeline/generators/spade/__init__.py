"""SPADE / GauGAN (Park et al. 2019)."""

from .model import SPADEModel

__all__ = ["SPADEModel"]
