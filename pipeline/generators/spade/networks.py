"""SPADE networks (Park et al., CVPR 2019, "Semantic Image Synthesis with Spatially-Adaptive
Normalization"), written from the paper's description.

* SPADE normalisation: parameter-free norm, then per-pixel gamma/beta predicted by a small conv net
  over the mask resized to the feature map, so the layout is re-injected at every scale instead of
  being washed out by normalisation.
* Generator: SPADE residual blocks from a coarse start (the downsampled mask, or a VAE style code),
  nearest upsampling x5, channels 16c -> c.
* Discriminator: multi-scale PatchGAN conditioned on the mask by concatenation; returns all
  intermediate features for the feature-matching loss.
Spectral norm on every conv of G's residual blocks and of D, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..base import pyramid_sizes, up_to

N_UP = 5  # paper's "normal" generator: start at 1/32 of the output size


class SPADE(nn.Module):
    def __init__(self, channels: int, label_channels: int, hidden: int, norm: str = "instance"):
        super().__init__()
        if norm == "instance":
            self.norm = nn.InstanceNorm2d(channels, affine=False)
        elif norm == "batch":  # plain (sync-free) batch norm
            self.norm = nn.BatchNorm2d(channels, affine=False)
        else:
            raise ValueError(f"SPADE norm must be 'instance' or 'batch', got {norm!r}")
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(seg, size=x.shape[-2:], mode="nearest")
        act = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(act)) + self.beta(act)


class SPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int, norm: str):
        super().__init__()
        fmid = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, label_channels, hidden, norm)
        self.norm_1 = SPADE(fmid, label_channels, hidden, norm)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, label_channels, hidden, norm)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return skip + dx


class SPADEGenerator(nn.Module):
    def __init__(self, label_channels: int, out_channels: int, nf: int, z_dim: int = 0, norm: str = "instance"):
        super().__init__()
        hidden = 2 * nf  # paper: 128 hidden with nf = 64
        self.z_dim = z_dim
        top = 16 * nf
        if z_dim:
            self.fc = nn.Linear(z_dim, top * 4 * 4)
        else:
            self.fc = nn.Conv2d(label_channels, top, 3, padding=1)
        blk = lambda a, b: SPADEResBlock(a, b, label_channels, hidden, norm)  # noqa: E731
        self.head_0 = blk(top, top)
        self.middle_0 = blk(top, top)
        self.middle_1 = blk(top, top)
        self.up_0 = blk(16 * nf, 8 * nf)
        self.up_1 = blk(8 * nf, 4 * nf)
        self.up_2 = blk(4 * nf, 2 * nf)
        self.up_3 = blk(2 * nf, nf)
        self.conv_img = nn.Conv2d(nf, out_channels, 3, padding=1)

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        # at least 2x2 at the coarsest level: InstanceNorm needs more than one pixel (32-px inputs)
        sizes = [(max(h, 2), max(w, 2)) for h, w in pyramid_sizes(seg.shape[-2], seg.shape[-1], N_UP)]
        if self.z_dim:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = self.fc(z.to(seg.dtype)).view(seg.shape[0], -1, 4, 4)
            x = F.interpolate(x, size=sizes[N_UP], mode="bilinear", align_corners=False)
        else:
            x = self.fc(F.interpolate(seg, size=sizes[N_UP], mode="nearest"))
        x = self.head_0(x, seg)
        x = up_to(x, sizes[4])
        x = self.middle_1(self.middle_0(x, seg), seg)
        for level, block in zip((3, 2, 1, 0), (self.up_0, self.up_1, self.up_2, self.up_3)):
            x = block(up_to(x, sizes[level]), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class ConvEncoder(nn.Module):
    """VAE image encoder -> (mu, logvar) of the style code; adaptive pooling makes it size-agnostic."""

    def __init__(self, in_channels: int, nf: int, z_dim: int):
        super().__init__()
        # four stride-2 stages (not the paper's six) so 32-px crops keep > 1 pixel for InstanceNorm
        chans = [in_channels, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
        strides = [2, 2, 2, 2, 1]
        layers: list[nn.Module] = []
        for a, b, s in zip(chans[:-1], chans[1:], strides):
            layers += [spectral_norm(nn.Conv2d(a, b, 3, stride=s, padding=1)), nn.InstanceNorm2d(b), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.fc_mu = nn.Linear(8 * nf * 16, z_dim)
        self.fc_var = nn.Linear(8 * nf * 16, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(image).flatten(1)
        return self.fc_mu(h), self.fc_var(h)


class PatchDiscriminator(nn.Module):
    """PatchGAN with 4 conv stages (k4, strides 2,2,2,1) + a 1-channel logit map."""

    def __init__(self, in_channels: int, nf: int, n_layers: int = 4):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, nf, 4, stride=2, padding=2), nn.LeakyReLU(0.2))]
        cur = nf
        for n in range(1, n_layers):
            nxt = min(cur * 2, 8 * nf)
            stride = 1 if n == n_layers - 1 else 2
            blocks.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(cur, nxt, 4, stride=stride, padding=2)),
                    nn.InstanceNorm2d(nxt),
                    nn.LeakyReLU(0.2),
                )
            )
            cur = nxt
        blocks.append(nn.Conv2d(cur, 1, 4, stride=1, padding=2))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats  # last entry = logits


class MultiscaleDiscriminator(nn.Module):
    def __init__(self, in_channels: int, nf: int, num_d: int):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, nf) for _ in range(num_d))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out
