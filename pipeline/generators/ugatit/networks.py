"""U-GAT-IT networks (Kim et al., ICLR 2020, "U-GAT-IT: Unsupervised Generative Attentional
Networks with Adaptive Layer-Instance Normalization"), written from the paper.

* CAM: an auxiliary classifier on global-average- and global-max-pooled encoder features; its
  weights re-weight the feature channels (attention) and its logits get their own loss.
* AdaLIN: rho-mixed instance/layer norm whose gamma/beta come from an MLP over the attended
  features. ``light`` (the paper's light model) feeds the MLP globally pooled features; the
  non-light variant here feeds 4x4 adaptively pooled features (the paper's full model flattens the
  whole map, which would tie the network to one image size).
* Decoder upsampling uses LIN (learned gamma/beta/rho), nearest upsampling to recorded sizes.
* Discriminators: spectral-norm PatchGANs with their own CAM; a deep "global" and a shallow
  "local" one per domain. Deviation: zero padding and 3x3 kernels in the stride-1 layers so that
  small crops (>= 32 px) still produce a logit map.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..base import up_to


def _mix_norm(x: torch.Tensor, rho: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    xf = x.float()
    in_mean, in_var = xf.mean(dim=(2, 3), keepdim=True), xf.var(dim=(2, 3), keepdim=True, unbiased=False)
    ln_mean, ln_var = xf.mean(dim=(1, 2, 3), keepdim=True), xf.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    out_in = (xf - in_mean) / torch.sqrt(in_var + eps)
    out_ln = (xf - ln_mean) / torch.sqrt(ln_var + eps)
    rho = rho.float()
    return (rho * out_in + (1 - rho) * out_ln).to(x.dtype)


class AdaLIN(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return _mix_norm(x, self.rho) * gamma[:, :, None, None] + beta[:, :, None, None]


class LIN(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mix_norm(x, self.rho) * self.gamma + self.beta


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AdaLINResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.pad1, self.conv1, self.norm1 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), AdaLIN(c)
        self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), AdaLIN(c)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(h)), gamma, beta)


class CAM(nn.Module):
    """Class activation map attention: returns (attended features, 2 logits, heatmap)."""

    def __init__(self, c: int, sn: bool, act: nn.Module):
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        self.gap_fc = wrap(nn.Linear(c, 1, bias=False))
        self.gmp_fc = wrap(nn.Linear(c, 1, bias=False))
        self.fuse = nn.Conv2d(2 * c, c, 1)
        self.act = act

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        x_gap = x * self.gap_fc.weight.view(1, -1, 1, 1)
        x_gmp = x * self.gmp_fc.weight.view(1, -1, 1, 1)
        x = self.act(self.fuse(torch.cat([x_gap, x_gmp], 1)))
        return x, torch.cat([gap_logit, gmp_logit], 1), x.sum(dim=1, keepdim=True)


class ResnetGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ngf: int, n_blocks: int = 4, light: bool = True):
        super().__init__()
        self.light = light
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU())
        self.down = nn.ModuleList(
            nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, bias=False), nn.InstanceNorm2d(ngf * m * 2), nn.ReLU())
            for m in (1, 2)
        )
        c = ngf * 4
        self.enc_blocks = nn.Sequential(*[ResBlock(c) for _ in range(n_blocks)])
        self.cam = CAM(c, sn=False, act=nn.ReLU())
        mlp_in = c if light else c * 16
        self.mlp = nn.Sequential(nn.Linear(mlp_in, c, bias=False), nn.ReLU(), nn.Linear(c, c, bias=False), nn.ReLU())
        self.gamma = nn.Linear(c, c, bias=False)
        self.beta = nn.Linear(c, c, bias=False)
        self.dec_blocks = nn.ModuleList(AdaLINResBlock(c) for _ in range(n_blocks))
        self.up = nn.ModuleList(
            nn.ModuleDict({"pad": nn.ReflectionPad2d(1), "conv": nn.Conv2d(ngf * m, ngf * m // 2, 3, bias=False), "norm": LIN(ngf * m // 2)})
            for m in (4, 2)
        )
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sizes = [tuple(x.shape[-2:])]
        x = self.stem(x)
        for d in self.down:
            x = d(x)
            sizes.append(tuple(x.shape[-2:]))
        x, cam_logit, heatmap = self.cam(self.enc_blocks(x))
        pooled = F.adaptive_avg_pool2d(x, 1 if self.light else 4).flatten(1)
        h = self.mlp(pooled)
        gamma, beta = self.gamma(h), self.beta(h)
        for blk in self.dec_blocks:
            x = blk(x, gamma, beta)
        for up, size in zip(self.up, (sizes[1], sizes[0])):
            x = F.relu(up["norm"](up["conv"](up["pad"](up_to(x, size)))))
        return self.head(x), cam_logit, heatmap

    def clip_rho(self) -> None:
        for m in self.modules():
            if isinstance(m, (AdaLIN, LIN)):
                m.rho.data.clamp_(0.0, 1.0)


class CAMDiscriminator(nn.Module):
    """n_layers=7: global (5 stride-2 stages), n_layers=5: local (3 stride-2 stages)."""

    def __init__(self, in_channels: int, ndf: int, n_layers: int, max_mult: int = 16):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        cur = ndf
        for _ in range(1, n_layers - 2):
            nxt = min(cur * 2, ndf * max_mult)
            layers += [spectral_norm(nn.Conv2d(cur, nxt, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cur = nxt
        nxt = min(cur * 2, ndf * max_mult)
        layers += [spectral_norm(nn.Conv2d(cur, nxt, 3, stride=1, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.cam = CAM(nxt, sn=True, act=nn.LeakyReLU(0.2))
        self.out = spectral_norm(nn.Conv2d(nxt, 1, 3, stride=1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, cam_logit, _ = self.cam(self.body(x))
        return self.out(x), cam_logit
