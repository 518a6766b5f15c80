"""pix2pix (Isola et al., CVPR 2017): U-Net generator with skips, conditional PatchGAN, GAN + L1."""

from .model import Pix2PixModel

__all__ = ["Pix2PixModel"]
