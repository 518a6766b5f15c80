"""GAN loss terms shared by the architectures (each written from its paper's definition)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss for D (SPADE, after Lim & Ye / Miyato et al.)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def lsgan(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss (U-GAT-IT)."""
    return F.mse_loss(logits, torch.full_like(logits, target))


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)), summed over dims, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


_VGG_CACHE: dict[tuple[str, str], nn.Module] = {}
_VGG_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in vgg19.features
_VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def load_vgg19_features(path: str | Path, device: torch.device) -> nn.Module:
    """torchvision's vgg19 ``features`` with weights from a LOCAL file (full or features-only state
    dict); never downloads. Cached per (file, device) and kept out of checkpoints."""
    from torchvision.models import vgg19

    from ..io import load_user_torch

    path = Path(path)
    key = (str(path.resolve()), str(device))
    if key in _VGG_CACHE:
        return _VGG_CACHE[key]
    state = load_user_torch(path, "generator.vgg_weights file (VGG19 weights)")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    net = vgg19(weights=None).features
    try:
        net.load_state_dict(feats)
    except RuntimeError:
        raise InputError(f"{path}: not a torchvision vgg19 state dict (features.* keys missing or mis-shaped)") from None
    net = net[: _VGG_TAPS[-1] + 1].eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    _VGG_CACHE[key] = net
    return net


def vgg_loss(vgg: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Perceptual L1 over five VGG19 relu layers with the pix2pixHD/SPADE layer weights."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=fake.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=fake.device).view(1, 3, 1, 1)

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = (x.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - mean) / std

    x, y = prep(fake), prep(real)
    loss = fake.new_zeros((), dtype=torch.float32)
    k = 0
    for i, layer in enumerate(vgg):
        x, y = layer(x), layer(y)
        if i == _VGG_TAPS[k]:
            loss = loss + _VGG_WEIGHTS[k] * F.l1_loss(x, y.detach())
            k += 1
            if k == len(_VGG_TAPS):
                break
    return loss
