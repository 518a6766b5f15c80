"""DiffAugment (Zhao et al., 2020): differentiable colour / translation / cutout for D inputs.

With ~100 training images the discriminator memorises the real set within a few hundred steps;
augmenting *both* what it sees as real and as fake (differentiably, so G still gets gradients)
prevents that without leaking augmentations into the generated images.

Parameters are drawn once per call of :func:`sample_params` and then applied with
:func:`apply` to the real and the fake batch alike, so feature-matching losses compare like with
like. Colour jitter touches image channels only; translation and cutout also move/erase the
conditioning mask channels so mask and image stay aligned.
"""

from __future__ import annotations

import torch

KNOWN = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in parts if p not in KNOWN]
    if bad:
        raise ValueError(f"generator.diffaug: unknown augmentation(s) {bad}; known: {list(KNOWN)}")
    return parts


def sample_params(
    policy: tuple[str, ...], batch: int, height: int, width: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Random parameters for one batch (uses the global torch RNG, so runs are seed-reproducible)."""
    p: dict[str, torch.Tensor] = {}
    if "color" in policy:
        p["brightness"] = torch.rand(batch, 1, 1, 1, device=device) - 0.5
        p["saturation"] = torch.rand(batch, 1, 1, 1, device=device) * 2
        p["contrast"] = torch.rand(batch, 1, 1, 1, device=device) + 0.5
    if "translation" in policy:
        sy, sx = int(height * 0.125 + 0.5), int(width * 0.125 + 0.5)
        p["shift_y"] = torch.randint(-sy, sy + 1, (batch, 1, 1), device=device)
        p["shift_x"] = torch.randint(-sx, sx + 1, (batch, 1, 1), device=device)
    if "cutout" in policy:
        ch, cw = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
        p["cut_y"] = torch.randint(0, height + (1 - ch % 2), (batch, 1, 1), device=device)
        p["cut_x"] = torch.randint(0, width + (1 - cw % 2), (batch, 1, 1), device=device)
        p["cut_size"] = torch.tensor([ch, cw], device=device)
    return p


def _color(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    x = x + p["brightness"].to(x.dtype)
    if x.shape[1] > 1:  # saturation is meaningless for gray images
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * p["saturation"].to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * p["contrast"].to(x.dtype) + mean


def _translate(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Integer shift with zero fill, as a gather so gradients flow to the kept pixels."""
    b, _, h, w = x.shape
    dev = x.device
    ys = torch.arange(h, device=dev).view(1, h, 1) + p["shift_y"] + 1  # +1: one-pixel zero border
    xs = torch.arange(w, device=dev).view(1, 1, w) + p["shift_x"] + 1
    ys, xs = ys.clamp(0, h + 1), xs.clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # B, H+2, W+2, C
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    return padded[bi, ys.expand(b, h, w), xs.expand(b, h, w)].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    b, _, h, w = x.shape
    dev = x.device
    ch, cw = int(p["cut_size"][0]), int(p["cut_size"][1])
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside_y = (ys >= p["cut_y"] - ch // 2) & (ys < p["cut_y"] - ch // 2 + ch)
    inside_x = (xs >= p["cut_x"] - cw // 2) & (xs < p["cut_x"] - cw // 2 + cw)
    keep = ~(inside_y & inside_x)
    return x * keep.unsqueeze(1).to(x.dtype)


def apply(
    image: torch.Tensor, mask: torch.Tensor | None, params: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment an image batch (and its conditioning mask channels, spatially only)."""
    if "brightness" in params:
        image = _color(image, params)
    if "shift_y" in params:
        image = _translate(image, params)
        mask = _translate(mask, params) if mask is not None else None
    if "cut_y" in params:
        image = _cutout(image, params)
        mask = _cutout(mask, params) if mask is not None else None
    return image, mask
