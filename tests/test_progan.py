"""ProgressiveGAN mask source: growth schedule, shapes at every level, resume, masks through the
segmentation post-processing, and the stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.seg_data import blob_pair

from pipeline.data.images import InputError
from pipeline.data.store import MaskStore
from pipeline.io import load_torch
from pipeline.masks.progan import (
    Z_DIM,
    ProDiscriminator,
    ProGenerator,
    sample_progan_masks,
    schedule,
    train_progan,
)

torch.set_num_threads(1)


def disc_masks(n: int = 4) -> list[np.ndarray]:
    return [blob_pair(seed, size=48, n=5)[1] for seed in range(n)]


def test_schedule_grows_and_fades():
    # 4 levels from 32 (level 3) to 256 (level 6); 400 steps -> 100 per level, first 50 fading in
    assert schedule(0, 400, 7, 3) == (3, 1.0)
    assert schedule(99, 400, 7, 3) == (3, 1.0)
    assert schedule(100, 400, 7, 3) == (4, 0.0)
    assert schedule(125, 400, 7, 3) == (4, 0.5)
    assert schedule(160, 400, 7, 3) == (4, 1.0)
    assert schedule(399, 400, 7, 3)[0] == 6


@pytest.mark.parametrize("level,alpha", [(0, 1.0), (2, 0.3), (3, 1.0)])
def test_networks_at_every_level(level, alpha):
    g, d = ProGenerator(32, width=16), ProDiscriminator(32, width=16)
    z = torch.randn(3, Z_DIM)
    x = g(z, level, alpha)
    assert x.shape == (3, 2, 4 << level, 4 << level) and x.abs().max() <= 1
    score = d(x, level, alpha)
    assert score.shape == (3,)
    score.sum().backward()
    assert g.to_out[level].weight.grad is not None


def test_train_resume_and_sample(tmp_path):
    masks = disc_masks()
    ckpt = train_progan(masks, tmp_path / "m", size=32, steps=2, width=16, batch_size=4, progress=False)
    assert load_torch(ckpt)["step"] == 2
    train_progan(masks, tmp_path / "m", size=32, steps=4, width=16, batch_size=4, progress=False)
    assert load_torch(ckpt)["step"] == 4  # resumed from step 2, not restarted
    out = sample_progan_masks(ckpt, 5, seed=1, min_area=2)
    assert len(out) == 5 and all(m.shape == (32, 32) and m.dtype == np.int32 for m in out)
    again = sample_progan_masks(ckpt, 5, seed=1, min_area=2)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))  # deterministic per seed
    with pytest.raises(InputError, match="power of two"):
        train_progan(masks, tmp_path / "bad", size=48, steps=1, progress=False)


def test_progan_stage_writes_a_mask_store(tmp_path):
    from pipeline import context, stages
    from pipeline.config import load_config

    cfg = load_config("smoke", ["data.demo_images=20", "data.demo_size=64", "data.n_train=10", "data.n_val=4",
                                "data.n_test=4", "masks.size=32", "masks.progan_steps=3",
                                "masks.sources={placement: 0.5, progan: 0.5}", f"runtime.runs_dir={tmp_path}",
                                "runtime.progress=false"])
    ctx = context.prepare(cfg, run_id="r")
    d, _, cached = stages.stage_masks(ctx, "progan", None, 6)
    store = MaskStore(d)
    assert not cached and len(store) == 6 and set(store.manifest.source) == {"progan"}
    assert store[0].shape == (32, 32)
    assert stages.stage_masks(ctx, "progan", None, 6)[2]
