"""What a plant engineer sees (issue 15 items 4-7): recall and precision by object size (px and set
units), 'Use this model', real beside synthetic and mask statistics, `synth-pretrain runs` and
runs/<set>/latest. Numbers in hand-made run folders are test inputs, not results."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures.seg_data import FAST_ENCODER
from typer.testing import CliRunner

from pipeline import context, stages
from pipeline.cli import app
from pipeline.config import Config, load_config
from pipeline.io import read_json, write_json, write_text
from pipeline.report import collect
from pipeline.report.build import build_report
from pipeline.report.runs import find_runs, latest_of, update_latest
from pipeline.report.sizes import object_diameters, pooled_by_size, size_bin_counts, size_edges

FAST = ["data.demo_images=20", "data.demo_size=64", "data.n_train=10", "data.n_val=4", "data.n_test=4",
        "masks.count=8", "masks.size=64", "segmentation.n_real=[10]", "runtime.progress=false"]


def _square(mask: np.ndarray, y: int, x: int, side: int, value: int) -> None:
    mask[y : y + side, x : x + side] = value


# ------------------------------------------------------------------------------------- item 4: sizes


def test_size_bins_count_found_and_false_objects_by_size():
    gt = np.zeros((64, 64), np.int32)
    _square(gt, 2, 2, 3, 5)  # d = 3.4 px
    _square(gt, 20, 20, 6, 9)  # d = 6.8 px, missed
    _square(gt, 40, 40, 12, 2)  # d = 13.5 px
    pred = np.zeros_like(gt)
    _square(pred, 2, 2, 3, 1)
    _square(pred, 40, 40, 12, 7)
    _square(pred, 2, 40, 8, 3)  # d = 9.0 px, false positive
    edges = np.array([0.0, 5.0, 10.0, np.inf])
    t = size_bin_counts({"a": pred}, {"a": gt, "b": gt}, edges, 0.5)  # "b" has no prediction: all missed
    assert t.n_gt.tolist() == [2, 2, 2] and t.tp_gt.tolist() == [1, 0, 1]
    assert t.n_pred.tolist() == [1, 1, 1] and t.tp_pred.tolist() == [1, 0, 1]
    assert object_diameters(gt) == pytest.approx(np.sqrt(4 * np.array([144, 9, 36]) / np.pi))  # sorted ids 2, 5, 9


def test_size_edges_are_open_ended_quantiles():
    edges = size_edges(np.arange(1, 101, dtype=float), n_bins=4)
    assert edges[0] == 0 and np.isinf(edges[-1]) and edges[1:-1].tolist() == [26.0, 50.0, 75.0]
    assert size_edges(np.zeros(0)).tolist() == [0.0, np.inf]


@pytest.fixture()
def run_dir(tmp_path):
    """A finished run folder under runs/<set>/ with checkpoints, validation F1 and size bins."""
    run = tmp_path / "runs" / "line3" / "20260101-120000-default"
    run.mkdir(parents=True)
    rows = []
    for seed in (0, 1):
        for arm, f1, val in (("real_only", 0.50, 0.60), ("pretrained:spade", 0.55, 0.70)):
            ckpt = tmp_path / "runs" / "line3" / "stages" / f"seg_{arm.split(':')[0]}" / f"k{seed}" / "finetune" / "best.pt"
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            ckpt.write_bytes(b"")
            rows.append({"row": "seed", "arm": arm, "seed": seed, "n_real": 100, "f1": f1, "precision": f1, "recall": f1,
                         "val_f1": val + 0.01 * seed, "fg_threshold": 0.45, "boundary_threshold": 0.3,
                         "min_object_area": 17, "checkpoint": f"runs/line3/stages/seg_{arm.split(':')[0]}/k{seed}/finetune/best.pt"})
    verdict = {"row": "verdict", "arm": "pretrained:spade", "n_real": 100, "word": "helped", "sentence": "Helped, made up here."}
    pd.DataFrame([verdict, *rows]).to_csv(run / "results.csv", index=False)
    write_json(run / "verdict.json", {"verdicts": [verdict]})
    write_text(run / "config.yaml", Config().to_yaml())
    write_json(run / "set.json", {"name": "line3", "summary": "line3: 130 pairs", "object_name": "fragment",
                                  "pixel_size": 0.5, "pixel_unit": "mm"})
    write_json(run / "stages.json", [{"stage": "segmentation real_only", "seconds": 1.0, "cached": True, "compute_seconds": 9.0,
                                      "path": "/elsewhere/runs/line3/stages/seg_real_only/k0"}])
    write_json(run / "run.json", {"run_id": run.name, "set": "line3", "config": "default", "synthesis": ["spade"],
                                  "started": 1_767_268_800.0})
    np.savez(run / "sizes.npz", ground_truth=np.array([4.0, 9, 20]), pretrained=np.array([9.0, 20]))
    bins = []
    for arm in ("real_only", "pretrained:spade"):
        for seed in (0, 1):
            for b, (lo, hi, n_gt, tp) in enumerate([(0, 7, 10, 2), (7, 14, 10, 8), (14, np.inf, 10, 9)]):
                bins.append({"arm": arm, "seed": seed, "n_real": 100, "bin": b, "lo_px": lo, "hi_px": hi, "n_gt": n_gt,
                             "tp_gt": tp + (arm != "real_only"), "n_pred": 12, "tp_pred": tp})
    pd.DataFrame(bins).to_csv(run / "size_bins.csv", index=False)
    return run


def test_pooled_by_size_sums_seeds():
    t = pd.DataFrame([{"arm": "a", "seed": s, "n_real": 10, "bin": 0, "lo_px": 0, "hi_px": np.inf, "n_gt": 4, "tp_gt": s,
                       "n_pred": 0, "tp_pred": 0} for s in (1, 2)])
    p = pooled_by_size(t).iloc[0]
    assert p.recall == pytest.approx(3 / 8) and np.isnan(p.precision) and p.seeds == 2


def test_report_shows_recall_and_precision_by_size_in_set_units(run_dir):
    html, md = build_report(run_dir)
    text, md_text = html.read_text(), md.read_text()
    assert 'alt="recall and precision by object size"' in text
    assert "< 7 px (< 3.5 mm)" in text and "7–14 px (3.5–7 mm)" in text and "≥ 14 px (≥ 7 mm)" in text
    # recall of the smallest objects, pretrained arm: (3 + 3) found of 10 + 10, shown with its counts
    assert "| < 7 px (< 3.5 mm) | 10 | 20 (4/20) | 17 (4/24) | 30 (6/20) | 17 (4/24) |" in md_text


# ---------------------------------------------------------------------------------- item 5: use it


def _parse(command: str):
    """Parse a report command with the CLI's own parser (no command runs)."""
    from typer.main import get_command

    args = shlex.split(command)
    assert args[0] == "synth-pretrain"
    group = get_command(app)
    ctx = group.make_context("synth-pretrain", args[1:], resilient_parsing=True)
    sub = group.get_command(ctx, args[1])
    return sub.make_context(args[1], args[2:]).params


def test_report_says_which_model_to_use_and_how(run_dir):
    from pipeline.export.model_source import resolve_model

    html, md = build_report(run_dir)
    text, md_text = html.read_text(), md.read_text()
    src = resolve_model(run_dir)
    assert src.description["arm"] == "pretrained:spade" and src.description["seed"] == 0  # best validation F1
    assert "Use this model" in text and "min_object_area 17 px" in md_text and "fg_threshold 0.45" in md_text
    assert str(src.checkpoint.resolve()) in text
    commands = [line for line in md_text.splitlines() if line.startswith("synth-pretrain ")]
    assert len(commands) == 2
    predict, export = (_parse(c) for c in commands)
    assert predict["model"] == run_dir.resolve() and predict["arm"] == "pretrained:spade" and predict["seed"] == 0
    assert predict["pixel_size"] == 0.5 and predict["pixel_unit"] == "mm"
    assert export["model"] == run_dir.resolve() and export["fmt"] == "onnx" and export["arm"] == "pretrained:spade"


def test_report_repeats_the_runs_notices_under_the_verdict(run_dir):
    manifest = json.loads((run_dir / "run.json").read_text())
    write_json(run_dir / "run.json", {**manifest, "notices": ["a tenth of the objects are 120 px or wider"]})
    html, md = build_report(run_dir)
    text, md_text = html.read_text(), md.read_text()
    for t in (text, md_text):
        assert "Check the setup" in t and "120 px or wider" in t
        assert t.index("Helped, made up here.") < t.index("Check the setup")  # under the verdict
    write_json(run_dir / "run.json", manifest)  # a run without notices (older run.json too): no box
    assert "Check the setup" not in build_report(run_dir)[0].read_text()


def test_one_seed_report_gives_the_study_command_and_its_time(run_dir):
    results = pd.read_csv(run_dir / "results.csv")
    assert "A verdict across 3 seeds" not in build_report(run_dir)[0].read_text()  # two seeds ran: nothing to add
    one = results[(results.row != "seed") | (results.seed == 0)].copy()
    one.loc[one.row == "seed", "train_seconds"] = [600.0, 1200.0]  # real_only 10 min, pretrained:spade 20 min
    one.to_csv(run_dir / "results.csv", index=False)
    html, md = build_report(run_dir)
    text, md_text = html.read_text(), md.read_text()
    # seeds 1 and 2 of both arms, one after another (the fixture's config: one task at a time)
    assert "about 60 min here judging by this run's arm times (1 worker)" in text
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["runtime"].update(task_runner="dask", dask_workers=2)
    write_text(run_dir / "config.yaml", yaml.safe_dump(cfg))
    # longest first on two workers: 20 + 10 min each
    assert "about 30 min here judging by this run's arm times (2 workers)" in build_report(run_dir)[0].read_text()
    command = next(line for line in md_text.splitlines() if line.startswith("synth-pretrain study"))
    assert command == (f"synth-pretrain study --config {run_dir.resolve() / 'config.yaml'} -s spade "
                       f"--arms real_only,pretrained --seeds 0,1,2")
    params = _parse(command)
    assert params["synthesis"] == ["spade"] and params["arms"] == "real_only,pretrained" and params["seeds"] == "0,1,2"


def test_a_study_from_a_runs_config_reuses_its_arms(tmp_path):
    """What the one-seed report promises: `study --config <run>/config.yaml` gives every arm of the
    run the stage key it had, so seed 0 comes from the cache and only the other seeds train."""
    from pipeline.stages import seg_arm_key

    run = context.prepare(load_config("default", [f"runtime.runs_dir={tmp_path}", "data.demo_images=24",
                                                   "data.n_train=12", "data.n_val=4", "data.n_test=4"]), "one-seed")
    study = context.prepare(load_config(run.run_dir / "config.yaml", [
        "segmentation.seeds=[0,1,2]", "segmentation.arms=[real_only,pretrained,joint]"]), "study")
    pairs = [tmp_path / "stages" / "synthetic" / "k"]
    for arm in ("real_only", "joint"):
        assert seg_arm_key(study, arm, 0, 12, pairs) == seg_arm_key(run, arm, 0, 12, pairs)
    assert seg_arm_key(study, "joint", 1, 12, pairs) != seg_arm_key(run, "joint", 0, 12, pairs)


def test_report_without_checkpoints_says_so(run_dir):
    shutil.rmtree(run_dir.parent / "stages")
    text = build_report(run_dir)[0].read_text()
    assert "No checkpoint to recommend" in text and "is missing" in text


# ---------------------------------------------------------- item 7: stage folders, runs, latest


def test_stage_table_names_the_stage_folder(run_dir):
    text = build_report(run_dir)[0].read_text()
    assert "<code>stages/seg_real_only/k0</code>" in text and "folder (under runs/line3/)" in text


def _fake_run(set_root, name: str, started: float, finished: bool = True, word: str = "helped"):
    d = set_root / name
    d.mkdir(parents=True)
    write_json(d / "run.json", {"run_id": name, "set": set_root.name, "config": "smoke", "synthesis": ["spade", "copypaste"],
                                "started": started})
    if finished:
        write_text(d / "results.csv", "row,arm\n")
        write_text(d / "report.html", "<html></html>")
        write_json(d / "verdict.json", {"verdicts": [{"row": "verdict", "arm": "pretrained:spade", "n_real": 10, "word": word},
                                                      {"row": "label_efficiency", "arm": "x", "word": "ignored"}]})
    return d


def test_latest_points_at_the_newest_finished_run(tmp_path):
    root = tmp_path / "runs" / "demo"
    old = _fake_run(root, "20260101-000000-smoke", 1000.0)
    assert update_latest(root) == old and os.readlink(root / "latest") == old.name
    new = _fake_run(root, "20260102-000000-smoke", 2000.0, word="hurt")
    _fake_run(root, "20260103-000000-smoke", 3000.0, finished=False)  # running or killed: never latest
    update_latest(root)
    assert latest_of(root) == new and (root / "latest" / "report.html").is_file()
    update_latest(root)  # rebuilding any report again: still the newest, no stray temporary link
    assert latest_of(root) == new and sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_latest_txt_where_symlinks_fail(tmp_path, monkeypatch):
    root = tmp_path / "runs" / "demo"
    run = _fake_run(root, "20260101-000000-smoke", 1000.0)

    def refuse(*_a, **_k):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", refuse)
    assert update_latest(root) == run
    assert not (root / "latest").exists() and (root / "latest.txt").read_text().strip() == run.name
    assert latest_of(root) == run


def test_report_of_a_run_moves_latest(run_dir):
    build_report(run_dir)
    assert latest_of(run_dir.parent) == run_dir


def test_runs_command_lists_runs(tmp_path):
    root = tmp_path / "runs"
    a = _fake_run(root / "demo", "20260101-000000-smoke", time.mktime((2026, 1, 1, 9, 30, 0, 0, 0, -1)))
    b = _fake_run(root / "line3", "20260102-000000-smoke", 2e9, word="no detectable difference")
    (root / "demo" / "stages").mkdir()  # stage folders are not runs
    update_latest(root / "demo")
    assert [r["path"] for r in find_runs(root)] == [str(a), str(b)]
    assert [r["set"] for r in find_runs(root, "line3")] == ["line3"]
    result = CliRunner().invoke(app, ["runs", "--runs-dir", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["set", "date", "config", "synthesis", "verdict", "path"]
    demo = next(line for line in lines if str(a) in line)
    assert demo.startswith("*") and "2026-01-01 09:30" in demo and "spade,copypaste" in demo
    assert "pretrained:spade: helped" in demo and "ignored" not in demo
    assert "pretrained:spade: no detectable difference" in next(line for line in lines if str(b) in line)
    missing = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no such runs folder" in missing.output


# --------------------------------------------- items 4, 6 through the stage layer (a real small set)


def _first_image_shape(pair_dir):
    from pipeline.data.store import PairStore

    return PairStore(pair_dir)[0][0].shape[:2]


def test_collect_writes_size_bins_mask_stats_and_realism(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "generator.model=copypaste"])
    ctx = context.prepare(cfg, run_id="r")
    bank, s1, c1 = stages.stage_shape_bank(ctx, 10)
    masks, s2, c2 = stages.stage_masks(ctx, "placement", bank, 8)
    context.record(ctx, "masks (placement)", masks, s2, c2)
    gen, _, _ = stages.stage_train_generator(ctx, 10)
    pairs, _, _ = stages.stage_generate(ctx, gen, masks)
    collect.write_samples(ctx, [pairs])
    assert (ctx.run_dir / "samples.png").is_file() and (ctx.run_dir / "realism.png").is_file()
    import cv2

    strip = cv2.imread(str(ctx.run_dir / "realism.png"))
    h, w = _first_image_shape(pairs)
    assert strip.shape[1] >= 5 * w and strip.shape[0] >= h  # a real crop and four synthetic tiles, none shrunk

    collect.write_mask_stats(ctx)
    assert (ctx.run_dir / "mask_stats.png").is_file()

    test = dict(zip(ctx.splits["test"], (m for _, m in ctx.pairs("test"))))
    perfect, empty = tmp_path / "arm_perfect", tmp_path / "arm_empty"
    for d, preds in ((perfect, {k: v.astype(np.uint16) for k, v in test.items()}),
                     (empty, {k: np.zeros_like(v, np.uint16) for k, v in test.items()})):
        d.mkdir()
        np.savez(d / "predictions.npz", **preds)
    rows = [{"arm": "pretrained:copypaste", "seed": 0, "n_real": 10}, {"arm": "real_only", "seed": 0, "n_real": 10}]
    out = collect.write_size_bins(ctx, [perfect, empty], rows)
    t = pd.read_csv(out)
    n_objects = sum(len(object_diameters(m)) for m in test.values())
    good, none = t[t.arm == "pretrained:copypaste"], t[t.arm == "real_only"]
    assert good.n_gt.sum() == n_objects and (good.tp_gt == good.n_gt).all() and (good.tp_pred == good.n_pred).all()
    assert none.tp_gt.sum() == 0 and none.n_pred.sum() == 0 and (none.n_gt.to_numpy() == good.n_gt.to_numpy()).all()


def test_set_json_carries_the_pixel_size(tmp_path):
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path / 'runs'}"])
    demo = context.prepare(cfg, run_id="r").set_dir
    mine = tmp_path / "line3"
    shutil.copytree(demo, mine)
    info = yaml.safe_load((mine / "set.yaml").read_text()) if (mine / "set.yaml").is_file() else {}
    info.update({"pixel_size": 0.12, "pixel_unit": "mm", "procedural": False})
    write_text(mine / "set.yaml", yaml.safe_dump(info))
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path / 'runs'}", f"data.set={mine}"])
    s = read_json(context.prepare(cfg, run_id="r").run_dir / "set.json")
    assert s["pixel_size"] == 0.12 and s["pixel_unit"] == "mm"


@pytest.mark.slow  # trains two smoke arms: ~25 s
def test_partial_report_shows_the_arms_a_running_study_has_finished(tmp_path):
    """`report RUN --partial`: the arms recorded so far, collected into RUN/partial/, headed by how
    many of the run's arms they are; the run's own files are not touched."""
    cfg = load_config("smoke", [*FAST, f"runtime.runs_dir={tmp_path}", "generator.model=copypaste",
                                "segmentation.arms=[real_only,pretrained]", f"segmentation.encoder={FAST_ENCODER}"])
    ctx = context.prepare(cfg, run_id="r")
    context.write_run_manifest(ctx, ["copypaste"])
    bank, _, _ = stages.stage_shape_bank(ctx, 10)
    masks, s, c = stages.stage_masks(ctx, "placement", bank, 8)
    context.record(ctx, "masks (placement)", masks, s, c)
    pairs, _, _ = stages.stage_generate(ctx, stages.stage_train_generator(ctx, 10)[0], masks)
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(ctx.run_dir), "--partial"])
    assert res.exit_code != 0 and "no arm has finished yet" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["report", str(ctx.run_dir)])
    assert res.exit_code != 0 and "--partial" in res.output  # an unfinished run points to the option

    context.record(ctx, "segmentation real_only", *stages.stage_seg_arm(ctx, "real_only", 0, 10, []))
    res = runner.invoke(app, ["report", str(ctx.run_dir), "--partial"])
    assert res.exit_code == 0, res.output
    assert "1 of 2 arms finished" in res.output
    text = (ctx.run_dir / "partial" / "report.html").read_text()
    assert "Partial report" in text and "1 of the run's 2 arms" in text and "Use this model" in text

    mctx = ctx.with_synthesis("copypaste")
    context.record(ctx, "segmentation pretrained (copypaste)", *stages.stage_seg_arm(mctx, "pretrained", 0, 10, [pairs]))
    res = runner.invoke(app, ["report", str(ctx.run_dir), "--partial"])
    assert res.exit_code == 0 and "2 of 2 arms finished" in res.output, res.output
    results = pd.read_csv(ctx.run_dir / "partial" / "results.csv")
    assert set(results.arm.dropna()) == {"real_only", "pretrained:copypaste"} and (results.row == "verdict").sum() == 1
    assert not (ctx.run_dir / "results.csv").exists() and not (ctx.run_dir / "report.html").exists()
    assert not (tmp_path / "demo" / "latest").exists()  # a partial report is not the set's latest run


def test_report_says_the_verdict_is_for_filtered_pairs(run_dir):
    stage = run_dir.parent / "stages" / "filtered" / "k0" / "pairs"
    write_json(stage / "filtering.json", {
        "pairs_in": 800, "kept": 480, "pairs_out": 480, "copies_added": 0, "thresholds": {"min_fidelity_kept": 0.5},
        "mean_fidelity": {"before": 0.57, "kept": 0.74}, "mean_touching_fraction": {"before": 0.67, "written": 0.58}})
    recorded = json.loads((run_dir / "stages.json").read_text())
    write_json(run_dir / "stages.json", [*recorded, {"stage": "filter pairs (spade)", "seconds": 1.0, "cached": False,
                                                     "compute_seconds": 1.0, "path": str(stage)}])
    html, md = build_report(run_dir)
    for t in (html.read_text(), md.read_text()):
        assert ("Filtered synthetic pairs" in t and "the arms trained on 480 of 800 pairs (60 %)" in t
                and "object F1 ≥ 0.50" in t and "0.57 → 0.74" in t and "0.67 → 0.58" in t)
        assert t.index("Helped, made up here.") < t.index("Filtered synthetic pairs")
    write_json(run_dir / "stages.json", recorded)
    assert "Filtered synthetic pairs" not in build_report(run_dir)[0].read_text()


# ------------------------------------------------------------- synth-pretrain compare RUN_A RUN_B


def _run_with_arms(root, name: str, arms: dict[tuple[str, int], tuple[str, list[tuple[int, int, int]]]],
                   images=("a", "b", "c", "d"), overrides=()):
    """A run folder whose stages.json records arm folders: (arm, seed) -> (stage key, tp/fp/fn per image)."""
    run = root / "runs" / "line3" / name
    run.mkdir(parents=True)
    recorded = []
    for (arm, seed), (key, counts) in arms.items():
        d = root / "runs" / "line3" / "stages" / f"seg_{arm.split(':')[0]}" / key
        tp, fp, fn = (np.array(c, float) for c in zip(*counts))
        f1 = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
        write_json(d / "metrics.json", {"arm": arm, "seed": seed, "n_real": 50, "f1": f1, "precision": tp.sum() / (tp.sum() + fp.sum()),
                                        "recall": tp.sum() / (tp.sum() + fn.sum()), "hit_cap": False})
        pd.DataFrame({"image": list(images), "tp": tp, "fp": fp, "fn": fn}).to_csv(d / "per_image.csv", index=False)
        recorded.append({"stage": f"segmentation {arm}", "seconds": 1.0, "cached": False, "path": f"runs/line3/stages/seg_{arm.split(':')[0]}/{key}"})
    write_json(run / "stages.json", recorded)
    write_text(run / "config.yaml", load_config("default", list(overrides)).to_yaml())
    return run


def test_compare_pairs_an_arm_of_two_runs_by_seed(tmp_path):
    worse = [(5, 5, 5)] * 4
    better = [(8, 1, 2)] * 4
    same = {("real_only", s): (f"r{s}", [(6, 3, 4)] * 4) for s in (0, 1)}
    a = _run_with_arms(tmp_path, "a", {**same, **{("joint:copypaste", s): (f"a{s}", worse) for s in (0, 1)}})
    b = _run_with_arms(tmp_path, "b", {**same, ("joint:copypaste", 0): ("b0", better), ("joint:copypaste", 2): ("b2", better)},
                       overrides=["filtering.keep_fraction=0.6"])
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "settings changed from A to B: filtering.keep_fraction: 1.0 -> 0.6" in lines
    joint = next(line for line in lines if line.startswith("Better: joint:copypaste with 50 real pairs"))
    # seed 0 only (seed 1 is not in B, seed 2 not in A): 16/(16+3) against 10/(10+10)
    assert f"F1 {100 * 16 / 19:.1f} vs 50.0 %" in joint and "1 seed, 4 test images" in joint and "One seed" in joint
    assert any(line.startswith("Same arm: real_only with 50 real pairs") for line in lines)

    only = CliRunner().invoke(app, ["compare", str(a), str(b), "--arm", "real_only"])
    assert "joint:copypaste" not in only.output and "Same arm" in only.output
    unknown = CliRunner().invoke(app, ["compare", str(a), str(b), "--arm", "joint:spade"])
    assert unknown.exit_code != 0 and "joint:spade: not an arm of either run" in unknown.output
    assert "Traceback" not in unknown.output


def test_compare_refuses_runs_on_other_test_images(tmp_path):
    a = _run_with_arms(tmp_path, "a", {("real_only", 0): ("r0", [(1, 1, 1)] * 4)})
    b = _run_with_arms(tmp_path, "b", {("real_only", 0): ("s0", [(1, 1, 1)] * 4)}, images=("a", "b", "c", "e"))
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code != 0 and "test images are not those of" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "no stages.json" in missing.output
