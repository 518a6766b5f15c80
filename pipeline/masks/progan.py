"""ProgressiveGAN mask source (Karras et al. 2018), optional and off by default.

The network draws a *segmentation target* (object-interior and instance-boundary maps, the same two
channels the segmentation models predict) from noise; the watershed that turns a segmentation
model's output into instances turns these into instance masks. So a ProgressiveGAN mask is handled
exactly like a predicted one.

From the paper: growth by resolution doubling with a linear fade-in of each new block, equalized
learning rate (weights scaled at run time by He's constant), pixel-wise feature normalisation in the
generator, a minibatch-standard-deviation channel in the discriminator, WGAN-GP with the small
drift term. Resolutions run from ``start`` (32) to ``masks.size`` (e.g. 128); each level gets an
equal share of ``masks.progan_steps``, the first half of it fading in.

The industrial study this tool follows found ProgressiveGAN masks weak next to placement and
segmentation-model masks; ``bench/progan.py`` measures that here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..data.store import MaskStore, shard_ranges
from ..errors import InputError
from ..io import load_torch, save_torch, write_json
from ..segmentation.postprocess import instances_from_probs
from ..segmentation.targets import make_target

Z_DIM = 128
CHANNELS = 2  # interior, boundary


class EqConv(nn.Module):
    """Conv with equalized learning rate: N(0, 1) weights scaled by sqrt(2 / fan_in) at run time."""

    def __init__(self, cin: int, cout: int, k: int, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = math.sqrt(2.0 / (cin * k * k))
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqLinear(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = math.sqrt(2.0 / cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _widths(levels: int, width: int) -> list[int]:
    """Channels per level, 4x4 first: ``width`` up to 32x32, then halved per doubling (min 16)."""
    return [max(16, width >> max(0, i - 3)) for i in range(levels)]


class ProGenerator(nn.Module):
    def __init__(self, max_size: int, width: int = 128):
        super().__init__()
        self.levels = int(math.log2(max_size)) - 1  # 4x4 is level 0
        w = _widths(self.levels, width)
        self.input = EqLinear(Z_DIM, w[0] * 16)
        self.first = EqConv(w[0], w[0], 3, 1)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv(w[i - 1], w[i], 3, 1), EqConv(w[i], w[i], 3, 1)]) for i in range(1, self.levels)
        )
        self.to_out = nn.ModuleList(EqConv(c, CHANNELS, 1) for c in w)

    def forward(self, z: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        x = F.leaky_relu(self.input(pixel_norm(z)).view(z.shape[0], -1, 4, 4), 0.2)
        x = pixel_norm(F.leaky_relu(self.first(pixel_norm(x)), 0.2))
        prev = x
        for i in range(1, level + 1):
            prev = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            for conv in self.blocks[i - 1]:
                x = pixel_norm(F.leaky_relu(conv(x), 0.2))
        out = self.to_out[level](x)
        if level > 0 and alpha < 1.0:
            skip = F.interpolate(self.to_out[level - 1](prev), scale_factor=2, mode="nearest")
            out = alpha * out + (1 - alpha) * skip
        return torch.tanh(out)  # [-1, 1]; probabilities are (out + 1) / 2


class ProDiscriminator(nn.Module):
    def __init__(self, max_size: int, width: int = 128):
        super().__init__()
        self.levels = int(math.log2(max_size)) - 1
        w = _widths(self.levels, width)
        self.from_in = nn.ModuleList(EqConv(CHANNELS, c, 1) for c in w)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqConv(w[i], w[i], 3, 1), EqConv(w[i], w[i - 1], 3, 1)]) for i in range(1, self.levels)
        )
        self.final_conv = EqConv(w[0] + 1, w[0], 3, 1)
        self.final_dense = EqLinear(w[0] * 16, w[0])
        self.out = EqLinear(w[0], 1)

    def forward(self, x: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        h = F.leaky_relu(self.from_in[level](x), 0.2)
        for i in range(level, 0, -1):
            for conv in self.blocks[i - 1]:
                h = F.leaky_relu(conv(h), 0.2)
            h = F.avg_pool2d(h, 2)
            if i == level and alpha < 1.0:
                skip = F.leaky_relu(self.from_in[level - 1](F.avg_pool2d(x, 2)), 0.2)
                h = alpha * h + (1 - alpha) * skip
        # minibatch standard deviation: one extra channel that lets D see a collapsed batch
        std = h.std(dim=0, unbiased=False).mean().expand(h.shape[0], 1, *h.shape[2:])
        h = F.leaky_relu(self.final_conv(torch.cat([h, std], dim=1)), 0.2)
        h = F.leaky_relu(self.final_dense(h.flatten(1)), 0.2)
        return self.out(h).squeeze(1)


def target_crops(masks: list[np.ndarray], size: int, n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` random ``size`` crops of real masks as 2-channel targets in [-1, 1] (flips, rot90)."""
    out = []
    for _ in range(n):
        m = masks[int(rng.integers(len(masks)))]
        h, w = m.shape
        if h < size or w < size:
            m = np.pad(m, ((0, max(0, size - h)), (0, max(0, size - w))))
            h, w = m.shape
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = np.rot90(m[y : y + size, x : x + size], int(rng.integers(4)))
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        out.append(make_target(np.ascontiguousarray(crop), "boundary"))
    return torch.from_numpy(np.stack(out)).float() * 2 - 1


def _gradient_penalty(d: ProDiscriminator, real: torch.Tensor, fake: torch.Tensor, level: int, alpha: float):
    eps = torch.rand(real.shape[0], 1, 1, 1)
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(mix, level, alpha).sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def schedule(step: int, total: int, levels: int, start_level: int) -> tuple[int, float]:
    """(level, fade-in alpha) at ``step``: equal shares per level, the first half of each fading in."""
    n = levels - start_level
    share = max(1, total // n)
    k = min(n - 1, step // share)
    within = (step - k * share) / max(1, share // 2)
    return start_level + k, 1.0 if k == 0 else min(1.0, within)


def train_progan(
    masks: list[np.ndarray], out_dir: Path, size: int, steps: int, seed: int = 0, start: int = 32,
    batch_size: int = 16, width: int = 64, progress: bool = True,
) -> Path:
    """Train on random crops of real instance masks; returns ``out_dir/progan.pt`` (resumes from it)."""
    if size < 8 or size & (size - 1):
        raise InputError(f"masks.size={size}: the ProgressiveGAN mask source needs a power of two (e.g. 128)")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "progan.pt"
    torch.manual_seed(seed)
    g, d = ProGenerator(size, width), ProDiscriminator(size, width)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.0, 0.99))
    step, rng = 0, np.random.default_rng(seed)
    if ckpt_path.is_file():
        st = load_torch(ckpt_path)
        g.load_state_dict(st["g"])
        d.load_state_dict(st["d"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        step, rng.bit_generator.state = int(st["step"]), st["rng"]
        torch.set_rng_state(st["torch_rng"])
    start_level = int(math.log2(start)) - 2
    levels = g.levels
    bar = tqdm(total=steps, initial=step, desc="progan", disable=not progress)
    log = []
    while step < steps:
        level, alpha = schedule(step, steps, levels, start_level)
        res = 4 << level
        real = target_crops(masks, size, batch_size, rng)
        real = F.avg_pool2d(real, size // res) if res < size else real
        z = torch.randn(batch_size, Z_DIM)
        fake = g(z, level, alpha)
        d_real, d_fake = d(real, level, alpha), d(fake.detach(), level, alpha)
        loss_d = d_fake.mean() - d_real.mean() + 10 * _gradient_penalty(d, real, fake.detach(), level, alpha)
        loss_d = loss_d + 1e-3 * (d_real**2).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = -d(g(torch.randn(batch_size, Z_DIM), level, alpha), level, alpha).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == steps:
            log.append({"step": step, "resolution": res, "alpha": round(alpha, 3), "loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())})
            bar.set_postfix(res=res, d=f"{log[-1]['loss_d']:.2f}", g=f"{log[-1]['loss_g']:.2f}")
        if step % 250 == 0 or step == steps:
            save_torch(ckpt_path, {"g": g.state_dict(), "d": d.state_dict(), "opt_g": opt_g.state_dict(),
                                   "opt_d": opt_d.state_dict(), "step": step, "rng": rng.bit_generator.state,
                                   "torch_rng": torch.get_rng_state(), "size": size, "width": width})
    bar.close()
    write_json(out_dir / "progan_log.json", log)
    return ckpt_path


@torch.inference_mode()
def sample_progan_masks(ckpt: Path, count: int, seed: int, min_area: int = 8, batch_size: int = 32) -> list[np.ndarray]:
    """``count`` instance masks: generated targets -> watershed (the segmentation post-processing)."""
    st = load_torch(ckpt)
    g = ProGenerator(int(st["size"]), int(st["width"]))
    g.load_state_dict(st["g"])
    g.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for startidx in range(0, count, batch_size):
        n = min(batch_size, count - startidx)
        probs = ((g(torch.randn(n, Z_DIM, generator=gen), g.levels - 1) + 1) / 2).numpy()
        out += [instances_from_probs(p, "boundary", min_object_area=min_area).astype(np.int32) for p in probs]
    return out


def write_progan_masks(
    masks: list[np.ndarray], model_dir: Path, masks_dir: Path, size: int, count: int, steps: int, seed: int,
    min_area: int, shard_size: int = 500, progress: bool = True,
) -> MaskStore:
    """Train (or resume) the ProgressiveGAN in ``model_dir``; write ``count`` masks as a MaskStore."""
    ckpt = train_progan(masks, model_dir, size, steps, seed, start=min(32, size), progress=progress)
    store = MaskStore(masks_dir)
    done = store.completed_shards()
    for k, a, b in shard_ranges(count, shard_size):
        if k in done:
            continue
        batch = sample_progan_masks(ckpt, b - a, seed=seed * 100_003 + k, min_area=min_area)
        store.write_shard(k, batch, [{"index": i, "source": "progan"} for i in range(a, b)])
    store.finalize()
    return store
