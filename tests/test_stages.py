"""Stage layer without Prefect: content-addressed caching and the segmentation-model mask source."""

from __future__ import annotations

import numpy as np

from pipeline import stages
from pipeline.config import load_config
from pipeline.data.store import MaskStore

FAST = ["data.demo_images=20", "data.demo_size=64", "data.n_train=10", "data.n_val=4", "data.n_test=4",
        "masks.count=8", "masks.size=64", "segmentation.finetune_steps=2", "segmentation.eval_every=2"]


def test_segmodel_masks_source_and_cache(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "masks.sources={placement: 0.5, segmodel: 0.5}",
                                "runtime.progress=false"])
    assert stages.source_counts(cfg) == {"placement": 4, "segmodel": 4}
    ctx = stages.prepare(cfg, run_id="r")
    d, secs, cached = stages.stage_segmodel_masks(ctx, 4)
    assert not cached
    store = MaskStore(d)
    assert len(store) == 4 and set(store.manifest.source) == {"segmodel"}
    assert store[0].shape == (64, 64) and store[0].dtype == np.int32
    d2, secs2, cached2 = stages.stage_segmodel_masks(ctx, 4)
    assert cached2 and d2 == d and secs2 == 0.0


def test_stage_keys_follow_inputs(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}"])
    ctx = stages.prepare(cfg, run_id="r")
    base = stages.seg_arm_key(ctx, "baseline", 0, 10, [])
    assert base == stages.seg_arm_key(ctx, "baseline", 0, 10, [tmp_path / "pairs"])  # real-only ignores synthetic
    assert base != stages.seg_arm_key(ctx, "baseline", 1, 10, [])
    pre = stages.seg_arm_key(ctx, "pretrained", 0, 10, [tmp_path / "a"])
    assert pre != stages.seg_arm_key(ctx, "pretrained", 0, 10, [tmp_path / "b"])
    other = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "generator.steps=99"])
    assert stages.generator_key(ctx) != stages.generator_key(stages.prepare(other, run_id="r2"))
    assert base == stages.seg_arm_key(stages.prepare(other, run_id="r3"), "baseline", 0, 10, [])
