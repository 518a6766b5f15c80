"""Stage layer without Prefect: content-addressed caching and the segmentation-model mask source."""

from __future__ import annotations

import numpy as np

from pipeline import context, stages
from pipeline.config import load_config
from pipeline.data.store import MaskStore, PairStore
from pipeline.io import read_json
from pipeline.report import collect

FAST = ["data.demo_images=20", "data.demo_size=64", "data.n_train=10", "data.n_val=4", "data.n_test=4",
        "masks.count=8", "masks.size=64", "segmentation.max_steps=2", "segmentation.pretrain_max_steps=2",
        "segmentation.eval_every=2"]


def test_segmodel_masks_source_and_cache(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "masks.sources={placement: 0.5, segmodel: 0.5}",
                                "runtime.progress=false"])
    assert stages.source_counts(cfg) == {"placement": 4, "segmodel": 4}
    ctx = context.prepare(cfg, run_id="r")
    d, secs, cached = stages.stage_masks(ctx, "segmodel", None, 4)
    assert not cached
    store = MaskStore(d)
    assert len(store) == 4 and set(store.manifest.source) == {"segmodel"}
    assert store[0].shape == (64, 64) and store[0].dtype == np.int32
    d2, secs2, cached2 = stages.stage_masks(ctx, "segmodel", None, 4)
    assert cached2 and d2 == d and secs2 == 0.0


def test_stage_keys_follow_inputs(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}"])
    ctx = context.prepare(cfg, run_id="r")
    base = stages.seg_arm_key(ctx, "real_only", 0, 10, [])
    assert base == stages.seg_arm_key(ctx, "real_only", 0, 10, [tmp_path / "pairs"])  # real-only ignores synthetic
    assert base == stages.seg_arm_key(ctx.with_synthesis("copypaste"), "real_only", 0, 10, [])  # and the method
    assert base != stages.seg_arm_key(ctx, "real_only", 1, 10, [])
    pre = stages.seg_arm_key(ctx, "pretrained", 0, 10, [tmp_path / "a"])
    assert pre != stages.seg_arm_key(ctx, "pretrained", 0, 10, [tmp_path / "b"])
    assert pre != stages.seg_arm_key(ctx.with_synthesis("copypaste"), "pretrained", 0, 10, [tmp_path / "a"])
    # a study's list options (seeds, n_real, arms) do not re-key finished arms
    more = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "segmentation.seeds=[0,1,2]"])
    assert base == stages.seg_arm_key(context.prepare(more, run_id="r4"), "real_only", 0, 10, [])
    other = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "generator.steps=99"])
    assert stages.generator_key(ctx) != stages.generator_key(context.prepare(other, run_id="r2"))
    assert base == stages.seg_arm_key(context.prepare(other, run_id="r3"), "real_only", 0, 10, [])


def test_generator_key_names_the_judge(tmp_path):
    """A judged generator is another generator (its weights are the best by that judge); without a
    judge the plateau fields change nothing, so they do not re-key; copy-paste ignores the judge."""
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}"])
    ctx = context.prepare(cfg, run_id="r")
    a, b = tmp_path / "seg_real_only" / "aaaa", tmp_path / "seg_real_only" / "bbbb"
    plain = stages.generator_key(ctx, 10)
    assert len({plain, stages.generator_key(ctx, 10, a), stages.generator_key(ctx, 10, b)}) == 3
    patient = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "generator.patience=4",
                                    "generator.eval_every=7"])
    pctx = context.prepare(patient, run_id="r2")
    assert stages.generator_key(pctx, 10) == plain
    assert stages.generator_key(pctx, 10, a) != stages.generator_key(ctx, 10, a)
    cp = ctx.with_synthesis("copypaste")
    assert stages.generator_key(cp, 10, a) == stages.generator_key(cp, 10)


def _untrained_arm(ctx, arm_dir):
    """A real-only arm folder as the stage writes it (an untrained model: its scores do not matter
    here, and training one would take a minute)."""
    from pipeline.io import save_torch, write_json
    from pipeline.segmentation.models import create_model
    from pipeline.segmentation.training import model_meta

    meta = model_meta(ctx.cfg, ctx.channels)
    model = create_model(meta["arch"], meta["encoder"], ctx.channels, meta["classes"])
    save_torch(arm_dir / "train" / "best.pt", {"meta": meta, "model": model.state_dict()})
    write_json(arm_dir / "metrics.json", {"checkpoint": str(arm_dir / "train" / "best.pt"), "fg_threshold": 0.5,
                                          "boundary_threshold": 0.5, "min_object_area": 4})
    return arm_dir


def test_judged_generator_stage_stops_at_its_plateau(tmp_path):
    """The stage with a real-only arm as judge: the generator trains to its plateau on the
    validation layouts (patience 1, min_delta 1: two evaluations, two steps) before the cap of 20, and is
    cached after."""
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "runtime.progress=false",
                                "generator.steps=20", "generator.eval_every=1", "generator.patience=1",
                                "generator.min_delta=1.0", "generator.eval_layouts=4", "generator.channels=4",
                                "generator.image_size=32", "segmentation.encoder=mobilenet_v2"])
    ctx = context.prepare(cfg, run_id="r")
    judge = _untrained_arm(ctx, tmp_path / "stages" / "seg_real_only" / "judgekey")
    gen, _, cached = stages.stage_train_generator(ctx, 10, judge)
    info = read_json(gen / "training.json")
    assert not cached and info["stop_reason"] == "patience" and info["steps_run"] == 2
    assert info["judge"]["arm"] == judge.name and info["judge"]["layouts"] == 4
    assert gen.name == stages.generator_key(ctx, 10, judge)
    assert stages.stage_train_generator(ctx, 10, judge)[2]


def test_quality_stage_writes_metrics_grid_and_report_entry(tmp_path):
    """Synthetic-data quality through the stage layer: every metric in its range, several styles per
    mask differ (VAE on), the grid has one column per style, and the run gets quality.json."""
    import cv2

    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "runtime.progress=false",
                                "generator.use_vae=true", "generator.steps=2", "quality.images=8",
                                "quality.c2st_steps=5", "quality.styles=3"])
    ctx = context.prepare(cfg, run_id="r")
    bank, _, _ = stages.stage_shape_bank(ctx)
    masks, _, _ = stages.stage_masks(ctx, "placement", bank, 8)
    gen, _, _ = stages.stage_train_generator(ctx)
    pairs, _, _ = stages.stage_generate(ctx, gen, masks)
    arm, _, _ = stages.stage_seg_arm(ctx, "real_only", 0, 10, [pairs])
    segmenter = collect.reference_segmenter([arm])
    assert segmenter == arm / "train" / "best.pt" and segmenter.is_file()

    d, _, cached = stages.stage_quality(ctx, gen, pairs, segmenter)
    assert not cached
    q = read_json(d / "quality.json")
    for k in ("mask_fidelity_f1", "mask_fidelity_real_f1", "realism_c2st_accuracy"):
        assert 0.0 <= q[k]["value"] <= 1.0 and q[k]["meaning"]
    assert q["diversity_pixel_l1"]["value"] > 0 and q["details"]["diversity"]["stochastic"]
    assert q["details"]["mask_fidelity"]["n_images"] == 8
    grid = cv2.imread(str(d / "style_grid.png"))
    assert grid.shape[1] == 5 * 128 + 4 * 4  # mask | real | 3 styles, 4-px gaps
    assert stages.stage_quality(ctx, gen, pairs, segmenter)[2]  # cached

    collect.collect_quality(ctx, {"placement": d})
    merged = read_json(ctx.run_dir / "quality.json")
    assert "details" not in merged and merged["realism_c2st_accuracy"] == q["realism_c2st_accuracy"]
    assert (ctx.run_dir / "style_grid.png").is_file()


def test_new_sources_and_methods_run_through_the_registries_and_the_filter_stage(tmp_path):
    """realmask masks, object copy-paste on them, Simple Copy-Paste (no masks), then the filter
    stage judged by a real-only arm: every stage cached on a second call."""
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "runtime.progress=false",
                                "masks.sources={realmask: 1.0}", "filtering.keep_fraction=0.5"])
    ctx = context.prepare(cfg, run_id="r")
    masks, _, _ = stages.stage_masks(ctx, "realmask", None, 8, 10)
    assert set(MaskStore(masks).manifest.source) == {"realmask"} and len(MaskStore(masks)) == 8
    assert stages.stage_masks(ctx, "realmask", None, 8, 10)[2]

    cp = ctx.with_synthesis("copypaste")
    bank, _, _ = stages.stage_train_generator(cp, 10)
    cp_pairs, _, _ = stages.stage_generate(cp, bank, masks)
    assert set(PairStore(cp_pairs).manifest.generator) == {"copypaste"}

    scp = ctx.with_synthesis("simple_copypaste")
    prepared, _, _ = stages.stage_train_generator(scp, 10)
    scp_pairs, _, cached = stages.stage_generate(scp, prepared, None)
    store = PairStore(scp_pairs)
    assert not cached and len(store) == cfg.generation.count and set(store.manifest.generator) == {"simple_copypaste"}
    assert stages.stage_generate(scp, prepared, None)[2]
    assert stages.generation_key(scp, prepared, None) != stages.generation_key(cp, prepared, None)

    judge, _, _ = stages.stage_seg_arm(ctx, "real_only", 0, 10, [])
    kept, _, cached = stages.stage_filter(cp, cp_pairs, judge)
    summary = read_json(kept / "filtering.json")
    assert not cached and len(PairStore(kept)) == round(0.5 * len(PairStore(cp_pairs)))
    assert summary["kept"] == len(PairStore(kept))
    assert (kept.parent / "scores.parquet").is_file()
    assert stages.stage_filter(cp, cp_pairs, judge)[2]


def test_a_new_mask_source_and_method_are_one_function_and_one_registry_line(tmp_path, monkeypatch):
    """The worked examples of docs/ARCHITECTURE.md: a mask source ("grid": squares on a grid) and a
    synthesis method ("flat": every object one grey level) registered, accepted by the config and
    run through the cached stages."""
    from pipeline.data.store import MaskStore, shard_ranges
    from pipeline.generators import methods
    from pipeline.masks import sources

    def _grid(ctx, out_dir, bank_dir, count, n_real):
        size = ctx.cfg.masks.size
        store = MaskStore(out_dir)
        for k, start, stop in shard_ranges(count, 500):
            masks = np.zeros((stop - start, size, size), np.int32)
            for n, (y, x) in enumerate([(y, x) for y in range(4, size - 12, 16) for x in range(4, size - 12, 16)]):
                masks[:, y:y + 10, x:x + 10] = n + 1
            store.write_shard(k, masks, [{"index": i, "source": "grid"} for i in range(start, stop)])
        store.finalize()
        return out_dir

    def _nothing(ctx, out_dir, n_real):
        pass

    def _flat(ctx, prepared, mask_dir, out_dir):
        masks, store = MaskStore(mask_dir), PairStore(out_dir)
        for k, start, stop in shard_ranges(len(masks), ctx.cfg.generation.shard_size):
            ms = [masks[i] for i in range(start, stop)]
            images = [np.where(m > 0, 0.8, 0.2).astype(np.float32)[:, :, None] for m in ms]
            store.write_shard(k, images, ms, [{"index": i, "generator": "flat"} for i in range(start, stop)])
        store.finalize()

    monkeypatch.setitem(sources.MASK_SOURCES, "grid", sources.MaskSource("grid", "squares on a grid", _grid))
    monkeypatch.setitem(methods.SYNTHESIS_METHODS, "flat",
                        methods.SynthesisMethod("flat", "one grey level per class", _nothing, _flat, trained=False))
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "runtime.progress=false",
                                "masks.sources={grid: 1.0}", "generator.model=flat"])
    ctx = context.prepare(cfg, run_id="r")
    masks, _, cached = stages.stage_masks(ctx, "grid", None, 4, 10)
    assert not cached and set(MaskStore(masks).manifest.source) == {"grid"} and MaskStore(masks)[0].max() == 9
    prepared, _, _ = stages.stage_train_generator(ctx, 10)
    pairs, _, _ = stages.stage_generate(ctx, prepared, masks)
    image, mask = PairStore(pairs)[0]
    assert len(PairStore(pairs)) == 4 and abs(float(image[mask > 0].mean()) - 0.8) < 0.01
    assert stages.stage_generate(ctx, prepared, masks)[2]  # cached
