"""pix2pix networks (Isola et al., CVPR 2017, "Image-to-Image Translation with Conditional
Adversarial Networks"), written from the paper's description.

* Generator: a U-Net, an encoder of stride-2 convolutions whose every level is concatenated to the
  decoder level of the same size (the skips carry the layout's edges straight to the output, which
  is why pix2pix reaches a sharp image with few steps), LeakyReLU 0.2 down, ReLU up, tanh out, no
  norm on the first and the innermost layers, dropout 0.5 on the three deepest decoder levels.
* Discriminator: the 70x70 PatchGAN, conditioned on the mask by concatenation: C64-C128-C256-C512
  of 4x4 convolutions (the last two at stride 1), one logit per patch.

Two deliberate departures, both so that any size of at least 32 px works (see ``base.py``): the
innermost decoder layer has no norm either (at 32 px its map is 1 px), the encoder uses 3x3 stride-2 convolutions (ceil(h/2) outputs, where 4x4 gives floor(h/2) and nothing
at 1 px) and the decoder upsamples to the recorded encoder sizes by nearest neighbour followed by a
3x3 convolution instead of transposed convolutions (no checkerboard artefacts, no size arithmetic).
InstanceNorm stands for the paper's BatchNorm at batch size 1, which is the same computation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..base import pyramid_sizes, up_to

DEPTH = 5  # encoder levels: 128 px -> 4 px at the bottleneck; 32 px (the smallest input) -> 1 px
DROPOUT_LEVELS = 3  # the paper's dropout (its only noise source) on the deepest decoder levels


def _width(ngf: int, level: int) -> int:
    return ngf * min(2**level, 8)  # 1, 2, 4, 8, 8 x ngf


class UNetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ngf: int):
        super().__init__()
        self.down = nn.ModuleList()
        prev = in_channels
        for level in range(DEPTH):
            width = _width(ngf, level)
            layers: list[nn.Module] = [] if level == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(prev, width, 3, stride=2, padding=1, bias=level in (0, DEPTH - 1)))
            if 0 < level < DEPTH - 1:
                layers.append(nn.InstanceNorm2d(width, affine=True))
            self.down.append(nn.Sequential(*layers))
            prev = width
        self.up = nn.ModuleList()
        for level in reversed(range(DEPTH)):
            # input: the level below's output (or the bottleneck), concatenated with this level's skip
            fin = _width(ngf, level) * (1 if level == DEPTH - 1 else 2)
            fout = _width(ngf, level - 1) if level > 0 else ngf
            layers = [nn.ReLU(), nn.Conv2d(fin, fout, 3, padding=1, bias=level == DEPTH - 1)]
            if level < DEPTH - 1:  # the innermost map can be 1 px: nothing to normalise over
                layers.append(nn.InstanceNorm2d(fout, affine=True))
            if level >= DEPTH - DROPOUT_LEVELS:
                layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(ngf, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = pyramid_sizes(x.shape[-2], x.shape[-1], DEPTH)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for i, block in enumerate(self.up):
            level = DEPTH - 1 - i
            x = block(up_to(x, sizes[level]))  # back to this level's input size
            if level > 0:
                x = torch.cat([x, skips.pop()], 1)
        return self.out(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: C64-C128-C256-C512, then a 1-channel 4x4 convolution (logits per patch)."""

    def __init__(self, in_channels: int, ndf: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        prev = ndf
        for i, stride in ((1, 2), (2, 2), (3, 1)):
            width = ndf * 2**i
            layers += [nn.Conv2d(prev, width, 4, stride=stride, padding=1, bias=False),
                       nn.InstanceNorm2d(width, affine=True), nn.LeakyReLU(0.2)]
            prev = width
        layers.append(nn.Conv2d(prev, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
