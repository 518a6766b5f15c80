"""The interface every mask-to-image generator implements, plus shared building blocks.

A :class:`GeneratorModel` owns its generator(s) *and* discriminator(s) so the training loop and the
tests can treat SPADE and U-GAT-IT alike: the loop only calls ``losses_d``/``losses_g`` (dicts of
already-weighted loss terms that are summed), ``g_params``/``d_params`` and ``after_step``.

Batches are dicts of tensors: ``mask`` = ``mask_to_input`` output (B x 2 x H x W, 0/1), ``image`` =
B x C x H x W in [-1, 1]. For paired models ``mask[i]`` belongs to ``image[i]``; unpaired models
(U-GAT-IT) must not rely on that.

Sizes: every network here is size-agnostic (upsampling goes to the recorded encoder sizes rather
than a fixed x2), so odd sizes such as 40 x 56 work without padding; the only requirement is a
minimum side of :data:`MIN_SIDE` pixels, below which the deepest discriminators run out of pixels.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import GeneratorConfig

MIN_SIDE = 32
MASK_CHANNELS = 2  # one-hot foreground ("object") + instance boundary map


def mask_to_input(instance_masks: torch.Tensor) -> torch.Tensor:
    """Instance label maps (B x H x W, 0 = background) -> B x 2 x H x W float: foreground and the
    pix2pixHD instance-boundary map (a pixel whose 4-neighbour has another id), so touching objects
    stay distinct for the generator."""
    m = instance_masks
    if m.dim() == 2:
        m = m[None]
    edge = torch.zeros_like(m, dtype=torch.bool)
    dx = m[:, :, 1:] != m[:, :, :-1]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    dy = m[:, 1:, :] != m[:, :-1, :]
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return torch.stack([m > 0, edge], dim=1).float()


def check_size(x: torch.Tensor) -> None:
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"generator input is {w}x{h}; both sides must be at least {MIN_SIDE} px")


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Xavier-normal init with a small gain (the SPADE and U-GAT-IT papers' choice for GANs)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def pyramid_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """[(h, w), (ceil(h/2), ceil(w/2)), ...]: the sizes a size-agnostic decoder upsamples back to."""
    sizes = [(h, w)]
    for _ in range(levels):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


def up_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="nearest")


def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every spectral-norm parametrization by its current plain weight (inference export)."""
    from torch.nn.utils import parametrize

    for m in module.modules():
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


class GeneratorModel(nn.Module):
    """Generator(s) + discriminator(s) of one architecture; see the module docstring."""

    name: str = ""
    paired: bool = True  # False: losses never assume mask[i] belongs to image[i]
    # Adam (beta1, beta2) when generator.beta1 / beta2 are not set: the architecture's paper values.
    # beta1 = 0 with the two-timescale learning rates is SPADE's (and BigGAN's) choice: momentum on
    # an adversarial gradient that changes sign as D catches up mostly adds oscillation.
    adam_betas: tuple[float, float] = (0.0, 0.9)

    def __init__(self, in_mask_channels: int, out_channels: int, cfg: GeneratorConfig):
        super().__init__()
        if out_channels not in (1, 3):
            raise ValueError(f"out_channels must be 1 or 3, got {out_channels}")
        self.in_mask_channels = in_mask_channels
        self.out_channels = out_channels
        self.cfg = cfg

    # --- the contract -------------------------------------------------------------------------
    @staticmethod
    def mask_to_input(instance_masks: torch.Tensor) -> torch.Tensor:
        return mask_to_input(instance_masks)

    @property
    def z_dim(self) -> int:
        """Length of the style vector ``generate`` accepts; 0 = deterministic model (z ignored)."""
        return 0

    def generate(self, mask_input: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def losses_d(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def losses_g(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def g_params(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def d_params(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def generator_module_names(self) -> list[str]:
        """Sub-modules needed by ``generate``: what EMA averages and inference exports."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook after each optimizer step (U-GAT-IT clips its rho here)."""

    # --- shared helpers ---------------------------------------------------------------------------
    def export_generator(self) -> nn.Module:
        """A standalone copy for inference: ``forward(mask_input, z)`` -> image, spectral norm folded."""
        return fold_spectral_norm(_Exported(copy.deepcopy(self)).eval())


class _Exported(nn.Module):
    """Keeps only the generation sub-modules of a model (discriminators dropped)."""

    def __init__(self, model: GeneratorModel):
        super().__init__()
        keep = set(model.generator_module_names())
        for name in [n for n, _ in model.named_children() if n not in keep]:
            delattr(model, name)
        self.model = model
        self.z_dim = model.z_dim

    def forward(self, mask_input: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.generate(mask_input, z)
