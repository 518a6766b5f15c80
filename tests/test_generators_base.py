"""Shared checks every registered generator must pass (subclass GeneratorChecks, set MODEL).

Tiny networks (channels=4) on 32-56 px inputs so each generator's checks run in seconds on CPU.
Odd sizes: the networks are size-agnostic (they upsample to recorded sizes), so 40 x 56 runs
without padding; the only requirement is a side of at least 32 px.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import GeneratorConfig
from pipeline.generators.base import MASK_CHANNELS, mask_to_input
from pipeline.generators.registry import GENERATORS, create_generator

torch.set_num_threads(1)  # the CI/dev machine's cores are shared; one thread is faster than contention


def toy_pairs(n: int = 4, h: int = 40, w: int = 56, channels: int = 1, seed: int = 0):
    """(image float32 HxWxC in [0,1], instance mask int32) with bright textured blobs on a dark
    background; two blobs touch so the boundary channel matters."""
    rng = np.random.default_rng(seed)
    pairs = []
    yy, xx = np.mgrid[:h, :w]
    for _ in range(n):
        mask = np.zeros((h, w), np.int32)
        for k in range(1, 4):
            cy, cx, r = rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(5, 9)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
        img = 0.15 + 0.6 * (mask > 0) + 0.08 * rng.random((h, w))
        img = np.repeat(img[:, :, None], channels, axis=2)
        if channels == 3:
            img = img * np.array([1.0, 0.8, 0.6])
        pairs.append((img.astype(np.float32), mask))
    return pairs


def to_batch(pairs) -> dict[str, torch.Tensor]:
    inst = torch.from_numpy(np.stack([m for _, m in pairs])).long()
    image = torch.from_numpy(np.stack([i for i, _ in pairs])).permute(0, 3, 1, 2) * 2 - 1
    return {"mask": mask_to_input(inst), "image": image.contiguous(), "instances": inst}


class GeneratorChecks:
    MODEL: str = ""
    CFG: dict = {}
    OVERFIT = True  # variants of an already-checked model may skip the (slowest) overfit check

    def cfg(self, **kw) -> GeneratorConfig:
        return GeneratorConfig(model=self.MODEL, channels=4, image_size=32, batch_size=4, **{**self.CFG, **kw})

    def model(self, channels: int = 1, **kw):
        torch.manual_seed(0)
        return create_generator(self.MODEL, MASK_CHANNELS, channels, self.cfg(**kw))

    def reconstruction_error(self, model, batch) -> float:
        """Paired models: L1 between the generated and the real image."""
        with torch.no_grad():
            return float((model.generate(batch["mask"]) - batch["image"]).abs().mean())

    @pytest.mark.parametrize("channels,size", [(1, (40, 56)), (3, (32, 32))])
    def test_losses_forward_backward(self, channels, size):
        model = self.model(channels)
        batch = to_batch(toy_pairs(2, *size, channels=channels))
        for losses, params in ((model.losses_d(batch), model.d_params()), (model.losses_g(batch), model.g_params())):
            assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
            model.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            grads = [p.grad for p in params if p.grad is not None]
            assert grads and any(float(g.abs().sum()) > 0 for g in grads)
            assert all(torch.isfinite(g).all() for g in grads)

    def test_generate_shape_range_and_export(self):
        model = self.model(3).eval()
        batch = to_batch(toy_pairs(2, 40, 56, channels=3))
        z = torch.randn(2, model.z_dim) if model.z_dim else None
        out = model.generate(batch["mask"], z)
        assert out.shape == (2, 3, 40, 56)
        assert out.min() >= -1 and out.max() <= 1
        exported = model.export_generator()
        from torch.nn.utils import parametrize

        assert not any(parametrize.is_parametrized(m) for m in exported.modules())
        assert all("dis" not in n and "netD" not in n for n, _ in exported.named_modules())
        torch.testing.assert_close(exported(batch["mask"], z), out, atol=1e-5, rtol=1e-4)

    def test_too_small_input_is_refused(self):
        model = self.model(1)
        with pytest.raises(ValueError, match="at least 32"):
            model.generate(mask_to_input(torch.zeros(1, 16, 40, dtype=torch.long)))

    def test_overfit_lowers_reconstruction(self):
        if not self.OVERFIT:
            pytest.skip("variant: overfit already checked for the base configuration")
        model = self.model(1, diffaug="")
        batch = to_batch(toy_pairs(4, 32, 32))
        opt_g = torch.optim.Adam(model.g_params(), lr=1e-3, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(model.d_params(), lr=1e-3, betas=(0.5, 0.999))
        before = self.reconstruction_error(model, batch)
        for _ in range(50):
            opt_d.zero_grad()
            sum(model.losses_d(batch).values()).backward()
            opt_d.step()
            opt_g.zero_grad()
            sum(model.losses_g(batch).values()).backward()
            opt_g.step()
            model.after_step()
        after = self.reconstruction_error(model, batch)
        assert after < 0.7 * before, (before, after)


def test_every_registered_generator_has_a_tester():
    here = Path(__file__).parent
    tested = set()
    for f in here.glob("test_generators_*.py"):
        tested |= set(re.findall(r'MODEL = "(\w+)"', f.read_text()))
    assert set(GENERATORS) <= tested, sorted(set(GENERATORS) - tested)


def test_mask_to_input_marks_touching_instances():
    inst = torch.zeros(1, 6, 8, dtype=torch.long)
    inst[0, 1:5, 1:4] = 1
    inst[0, 1:5, 4:7] = 2  # touches object 1 along column 3|4
    x = mask_to_input(inst)
    assert x.shape == (1, 2, 6, 8)
    assert torch.equal(x[0, 0], (inst[0] > 0).float())
    assert x[0, 1, 2, 3] == 1 and x[0, 1, 2, 4] == 1  # the shared edge is a boundary on both sides
    assert x[0, 1, 0, 0] == 0 and x[0, 1, 5, 7] == 0  # background far from objects
    assert x[0, 1, 2, 2] == 0  # object interior
