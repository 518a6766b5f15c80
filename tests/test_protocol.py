"""The converged-study protocol: the plateau rule, joint batches, post-processing tuned on validation,
the paired-bootstrap verdict, and one split function for the flow and every per-stage command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.seg_data import FAST_ENCODER, blob_pair

from pipeline.config import ConfigError, load_config
from pipeline.evaluation.verdict import compare, paired_bootstrap
from pipeline.segmentation.arms import ARMS, joint_batch
from pipeline.segmentation.dataset import JointDataset, RealPairsDataset
from pipeline.segmentation.postprocess import instances_from_probs, tune_postprocess
from pipeline.segmentation.training import Plateau, learning_rate, train_segmentation


def test_plateau_drops_the_rate_then_stops_and_never_before_min_steps():
    p = Plateau(patience=2, min_delta=0.01, min_steps=0, lr_drops=1)
    scores = [0.1, 0.3, 0.305, 0.302, 0.30, 0.309]  # +0.005 and +0.009 are not improvements of 0.01
    stops, outlook = [], []
    for i, f in enumerate(scores):
        stops.append(p.update(100 * (i + 1), f))
        outlook.append(p.outlook())
    assert stops == [False, False, False, False, False, True]
    assert outlook[:4] == ["improving", "improving", "1 of 2 evaluations without a gain, then the learning rate drops",
                           "improving"]  # the drop resets the count
    assert outlook[4] == "1 of 2 evaluations without a gain, then stop"
    assert p.drops == 1  # the first plateau lowered the rate, the second one stopped
    late = Plateau(patience=1, min_delta=0.01, min_steps=500, lr_drops=0)
    assert [late.update(s, 0.0) for s in (100, 200, 300, 400)] == [False, False, False, False]
    assert late.outlook(400) == "1 of 1 evaluations without a gain, then stop (not before step 500)"
    assert late.update(500, 0.0)
    off = Plateau(patience=0, min_delta=0.0, min_steps=0, lr_drops=0)
    assert not any(off.update(s, 0.0) for s in range(1, 50))  # patience 0: the cap decides
    assert off.outlook() == "no plateau rule: runs to the cap"
    assert not Plateau(1, 0.0, 0, 0).update(10, math.nan)  # no validation images: never on patience
    # a falling validation loss keeps a stalled F1 going (EMPS: F1 flat for 1,000 steps, then +0.2)
    slow = Plateau(patience=2, min_delta=0.01, min_steps=0, lr_drops=0, min_loss_delta=0.02)
    f1s, losses = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], [1.0, 0.97, 0.95, 0.94, 0.935, 0.934]
    # 1.0 -> 0.97 -> 0.95 are drops of at least 2 %; 0.94 and 0.935 are not (0.95 * 0.98 = 0.931)
    assert [slow.update(100 * (i + 1), f, x) for i, (f, x) in enumerate(zip(f1s, losses))][:5] == [
        False, False, False, False, True]
    assert slow.loss_reference == pytest.approx(0.95)
    f1_only = Plateau(patience=2, min_delta=0.01, min_steps=0, lr_drops=0, min_loss_delta=0.0)
    assert [f1_only.update(100 * (i + 1), f, x) for i, (f, x) in enumerate(zip(f1s, losses))][:3] == [
        False, False, True]
    restored = Plateau(patience=2, min_delta=0.01, min_steps=0, lr_drops=0, min_loss_delta=0.02)
    restored.load(slow.state())
    assert restored.state() == slow.state()
    assert learning_rate(1e-3, 0, 10, 0, 0.2) == pytest.approx(1e-4)
    assert learning_rate(1e-3, 50, 10, 1, 0.2) == pytest.approx(2e-4)


@pytest.fixture(scope="module")
def cfg():
    torch.set_num_threads(1)
    return load_config("smoke", [f"segmentation.encoder={FAST_ENCODER}", "segmentation.image_size=64",
                                 "segmentation.batch_size=4", "runtime.progress=false", "runtime.device=cpu"])


def test_training_stops_on_patience_records_why_and_resumes_to_the_same_stop(cfg, tmp_path):
    """A model that cannot improve (learning rate ~0) stops on patience, well before the cap, and a
    run interrupted in the middle resumes to the same step, scores and stop."""
    plateau = cfg.model_copy(deep=True)
    seg = plateau.segmentation
    seg.eval_every, seg.patience, seg.min_steps, seg.lr_drops, seg.min_delta = 2, 2, 0, 1, 0.5
    train, val = [blob_pair(i) for i in range(4)], [blob_pair(50, size=64)]
    best = train_segmentation(plateau, train, val, tmp_path / "a", steps=200, lr=1e-9, seed=0, progress=False)
    m = json.loads((best.parent / "metrics.json").read_text())
    assert m["stop_reason"] == "patience" and m["steps_run"] < 200 and m["lr_drops_done"] == 1
    log = pd.read_csv(best.parent / "log.csv")
    assert log["step"].iloc[-1] == m["steps_run"] and log["lr"].iloc[-1] < log["lr"].iloc[0]

    train_segmentation(plateau, train, val, tmp_path / "b", steps=200, lr=1e-9, seed=0, progress=False, stop_at=4)
    again = train_segmentation(plateau, train, val, tmp_path / "b", steps=200, lr=1e-9, seed=0, progress=False)
    m2 = json.loads((again.parent / "metrics.json").read_text())
    assert (m2["steps_run"], m2["stop_reason"]) == (m["steps_run"], m["stop_reason"])
    assert pd.read_csv(again.parent / "log.csv")["val_f1"].tolist() == log["val_f1"].tolist()

    capped = train_segmentation(cfg, train, val, tmp_path / "c", steps=3, lr=1e-3, seed=0, progress=False)
    assert json.loads((capped.parent / "metrics.json").read_text())["stop_reason"] == "cap"


def test_joint_batches_keep_every_real_sample_and_use_their_own_random_stream():
    real = RealPairsDataset([blob_pair(i) for i in range(5)], 32, "boundary", seed=3)
    synth = RealPairsDataset([blob_pair(100 + i) for i in range(7)], 32, "boundary", seed=3, stream=1)
    n_real, n_syn = joint_batch(4, 0.5)
    assert (n_real, n_syn) == (4, 4) and joint_batch(4, 0.8) == (4, 1)
    joint = JointDataset(real, synth, n_real, n_syn)
    for step in (0, 3):
        batch = [joint[step * 8 + j] for j in range(8)]
        for j in range(4):  # the real part of step s is exactly the real-only arm's batch at step s
            torch.testing.assert_close(batch[j][0], real[step * 4 + j][0])
        for j in range(4):
            torch.testing.assert_close(batch[4 + j][0], synth[step * 4 + j][0])
    # same seed, same sample number, different stream: different crops and augmentations
    same_items = RealPairsDataset([blob_pair(0)] * 5, 32, "boundary", seed=3, stream=1)
    plain = RealPairsDataset([blob_pair(0)] * 5, 32, "boundary", seed=3)
    assert not all(np.array_equal(same_items.sample(k)[0], plain.sample(k)[0]) for k in range(4))
    assert set(ARMS) == {"real_only", "pretrained", "joint"}


def test_unknown_arm_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="unknown arm.*known: \\['joint', 'pretrained', 'real_only'\\]"):
        load_config("smoke", ["segmentation.arms=[baseline]"])


def _probs(masks, noise_seed=0):
    """Foreground / boundary probabilities that need a low threshold to find every object."""
    from pipeline.segmentation.targets import make_target

    rng = np.random.default_rng(noise_seed)
    out = []
    for m in masks:
        t = make_target(m, "boundary").astype(np.float32)
        out.append(np.clip(0.35 * t + rng.uniform(0, 0.05, t.shape), 0, 1).astype(np.float32))
    return out


def test_postprocessing_is_tuned_on_validation_and_ties_keep_the_defaults(cfg):
    masks = [blob_pair(i)[1] for i in range(3)]
    probs = _probs(masks)  # interiors at ~0.35-0.4: the default 0.5 threshold finds nothing
    assert instances_from_probs(probs[0], "boundary", 0.5, 0.5, 8).max() == 0
    fixed = cfg.evaluation.model_copy(update={"grid_extensions": 0})
    best, rows = tune_postprocess(probs, masks, "boundary", fixed, 8)
    assert best["fg_threshold"] == 0.3 and best["val_f1"] > 0.8
    assert len(rows) == len(cfg.evaluation.fg_grid) * len(cfg.evaluation.boundary_grid) * 4
    grown, grown_rows = tune_postprocess(probs, masks, "boundary", cfg.evaluation, 8)
    assert grown["val_f1"] >= best["val_f1"] and len(grown_rows) > len(rows)
    assert {r["fg_threshold"] for r in grown_rows} >= {0.2}  # 0.3 was the grid's edge and among the best
    empty = [np.zeros((2, 32, 32), np.float32)] * 2  # every setting scores 0: keep the defaults
    flat, _ = tune_postprocess(empty, [np.zeros((32, 32), np.int32)] * 2, "boundary", cfg.evaluation, 8)
    assert (flat["fg_threshold"], flat["boundary_threshold"], flat["min_object_area"]) == (0.5, 0.5, 8)


def _squares_with_specks(n_images: int = 2):
    """Two 15 x 15 objects per image; the probabilities also light up 7 x 7 specks (49 px) that no
    mask holds. Only a minimum area above 49 px (and below 225) removes them."""
    from pipeline.segmentation.targets import make_target

    masks, probs = [], []
    for _ in range(n_images):
        m = np.zeros((64, 64), np.int32)
        m[5:20, 5:20], m[40:55, 40:55] = 1, 2
        p = make_target(m, "boundary").astype(np.float32) * 0.9
        p[0, 5:12, 40:47] = p[0, 45:52, 5:12] = 0.9
        masks.append(m)
        probs.append(p)
    return probs, masks


def test_a_best_setting_on_the_grids_edge_grows_the_grid(cfg):
    """On EMPS, F1 rose with every doubling of the minimum area up to the grid's largest: the tuned
    setting sat on the edge. The grid now grows past an edge that holds the best F1."""
    probs, masks = _squares_with_specks()
    ev = cfg.evaluation.model_copy(update={"min_area_grid": [0.5, 1.0, 2.0, 4.0]})
    fixed, _ = tune_postprocess(probs, masks, "boundary", ev.model_copy(update={"grid_extensions": 0}), 8)
    assert fixed["min_object_area"] <= 32 and fixed["val_f1"] == pytest.approx(2 / 3)  # 4 objects found, 4 specks
    grown, rows = tune_postprocess(probs, masks, "boundary", ev, 8)
    assert grown["min_object_area"] == 64 and grown["val_f1"] == pytest.approx(1.0)
    assert max(r["min_object_area"] for r in rows) >= 64
    assert max(r["min_object_area"] for r in rows) <= 8 * 4 * 2 ** ev.grid_extensions


def _counts(tp, fp, fn):
    return np.array([tp, fp, fn], np.float64)


def test_paired_bootstrap_interval_covers_the_difference_and_separates_a_real_gain():
    rng = np.random.default_rng(0)
    images = 60
    ref = [np.stack([rng.integers(3, 6, images), rng.integers(0, 3, images), rng.integers(0, 3, images)]).astype(float)
           for _ in range(3)]
    better = [r + np.stack([np.ones(images), -np.minimum(1, r[1]), -np.minimum(1, r[2])]) for r in ref]
    d, lo, hi = paired_bootstrap(better, ref, 1000, 0.95)
    assert lo > 0 and lo <= d <= hi
    d0, lo0, hi0 = paired_bootstrap(ref, ref, 500, 0.95)
    assert d0 == 0 and lo0 == 0 and hi0 == 0  # identical arms: no difference, no spread


def test_compare_words_a_gain_a_loss_and_a_capped_arm():
    images = [f"im{i}" for i in range(30)]
    rng = np.random.default_rng(1)
    rows, per_image = [], {}

    def add(arm, seed, tp_shift, cap=False):
        i = len(rows)
        tp = rng.integers(4, 8, len(images)) + tp_shift
        per_image[i] = pd.DataFrame({"image": images, "tp": tp, "fp": 8 - tp, "fn": 8 - tp})
        f1 = float(tp.sum() / (tp.sum() + (8 - tp).sum()))
        rows.append({"arm": arm, "seed": seed, "n_real": 100, "f1": f1, "precision": f1, "recall": f1,
                     "hit_cap": cap, "row_id": i})

    for s in range(3):
        add("real_only", s, 0)
        add("pretrained:a", s, 2)
        add("joint:a", s, -2)
        add("pretrained:b", s, 2, cap=s == 1)
    frame = pd.DataFrame(rows)
    gain = compare(frame, per_image, "pretrained:a", 100, 100, 500)
    loss = compare(frame, per_image, "joint:a", 100, 100, 500)
    capped = compare(frame, per_image, "pretrained:b", 100, 100, 500)
    assert gain.word == "helped" and gain.ci_low > 0 and "95% interval" in gain.sentence
    assert loss.word == "hurt" and loss.ci_high < 0
    assert capped.word == "inconclusive" and capped.capped == ["pretrained:b"] and "step cap" in capped.sentence
    assert "one seed" not in gain.sentence and "another training seed" not in gain.sentence
    # one seed: the interval cannot hold the seed-to-seed spread, and the verdict says so
    one = compare(frame[frame.seed == 0], per_image, "pretrained:a", 100, 100, 500)
    assert one.seeds == 1 and one.word == "helped on one seed"
    assert one.sentence.startswith("On one training seed: synthetic data helped: pretrained:a")
    assert "1 seed, 30 test images)." in one.sentence and "not how far another training seed" in one.sentence


def test_every_command_and_the_flow_see_the_same_splits(tmp_path):
    """A fixed test list (data.test_list) reaches the flow's splits and the per-stage commands alike."""
    from typer.testing import CliRunner

    from pipeline import context
    from pipeline.cli import app
    from pipeline.data.demo import render_demo_set
    from pipeline.data.labeled_set import require_valid
    from pipeline.masks.shape_bank import training_masks

    render_demo_set(tmp_path / "set", n_images=16, size=64, seed=3)
    report = require_valid(tmp_path / "set", 10**8, 10**5)
    (tmp_path / "test.txt").write_text("\n".join(report.stems[:3]) + "\n")
    over = [f"data.set={tmp_path / 'set'}", f"data.test_list={tmp_path / 'test.txt'}", "data.n_train=8",
            "data.n_val=3", f"runtime.runs_dir={tmp_path / 'runs'}", f"segmentation.encoder={FAST_ENCODER}",
            "segmentation.image_size=32", "segmentation.max_steps=2", "segmentation.eval_every=2",
            "runtime.progress=false", "runtime.device=cpu"]
    flow_splits = context.prepare(load_config("smoke", over), run_id="r").splits
    assert flow_splits["test"] == sorted(report.stems[:3])
    stems, _ = training_masks(tmp_path / "set", load_config("smoke", over).data)
    assert stems == flow_splits["train"]
    res = CliRunner().invoke(app, ["train-seg", "--set", str(tmp_path / "set"), "--out", str(tmp_path / "seg"),
                                   "--config", "smoke", *over])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "seg" / "splits.json").read_text()) == flow_splits


def test_bf16_autocast_only_where_the_cpu_does_bf16_natively(monkeypatch):
    from types import SimpleNamespace

    from pipeline import device as dev

    cpu = torch.device("cpu")
    try:
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
        dev.configure(SimpleNamespace(threads=None, precision="auto"))
        assert not dev.uses_bf16(cpu)  # emulated bf16 is slower than fp32: keep fp32
        with dev.autocast(cpu):
            assert torch.get_autocast_dtype("cpu") != torch.bfloat16 or not torch.is_autocast_enabled("cpu")
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
        assert dev.uses_bf16(cpu)
        with dev.autocast(cpu):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        with dev.autocast(cpu, enabled=False):  # the stage's own switch still wins
            assert not torch.is_autocast_enabled("cpu")
        dev.configure(SimpleNamespace(threads=None, precision="fp32"))
        assert not dev.uses_bf16(cpu) and not dev.uses_bf16(torch.device("cuda"))
        dev.configure(SimpleNamespace(threads=None, precision="bf16"))
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
        assert dev.uses_bf16(cpu)  # asked for explicitly
    finally:
        dev.configure(SimpleNamespace(threads=None, precision="auto"))


def test_a_new_arm_is_one_function_and_one_registry_line(cfg, tmp_path, monkeypatch):
    """The worked example of docs/ARCHITECTURE.md: a new arm registered, accepted by the config,
    trained through the shared phase machinery."""
    from pipeline.segmentation import arms

    def _pretrained_slow(a):
        seg = a.cfg.segmentation
        pre = a.train("pretrain", a.synthetic(0), seg.pretrain_max_steps, seg.lr)
        return [pre, a.train("finetune", a.real(), seg.max_steps, seg.lr / 10, init_from=pre[1])]

    monkeypatch.setitem(arms.ARMS, "pretrained_slow",
                        arms.Arm("pretrained_slow", "synthetic pretraining, slow fine-tuning", True, _pretrained_slow))
    loaded = load_config("smoke", ["segmentation.arms=[real_only,pretrained_slow]", f"segmentation.encoder={FAST_ENCODER}",
                                   "segmentation.image_size=32", "segmentation.max_steps=2",
                                   "segmentation.pretrain_max_steps=2", "segmentation.eval_every=2",
                                   "runtime.progress=false", "runtime.device=cpu"])
    real = [blob_pair(i) for i in range(3)]
    inputs = arms.ArmInputs(loaded, lambda: RealPairsDataset(real, 32, "boundary"),
                            lambda stream: RealPairsDataset([blob_pair(9)], 32, "boundary", stream=stream),
                            [blob_pair(20)], 0, tmp_path, False)
    phases = arms.ARMS["pretrained_slow"].train(inputs)
    assert [p for p, _ in phases] == ["pretrain", "finetune"] and phases[-1][1].is_file()
    assert json.loads((tmp_path / "finetune" / "metrics.json").read_text())["lr"] == pytest.approx(loaded.segmentation.lr / 10)


def test_study_runs_every_arm_over_three_seeds_unless_told_otherwise(monkeypatch):
    """`study` is the whole comparison whatever the config (the CPU default trains real_only and
    joint over one seed); its options come before the user's overrides, which win."""
    from typer.testing import CliRunner

    import flows.commands as commands
    from pipeline.cli import app

    calls = []
    monkeypatch.setattr(commands, "_run_flow", lambda **params: calls.append(params) or {})
    runner = CliRunner()
    assert runner.invoke(app, ["study", "-s", "copypaste"]).exit_code == 0
    cfg = load_config(calls[-1]["config"], calls[-1]["overrides"])
    assert cfg.segmentation.arms == list(ARMS) and cfg.segmentation.seeds == [0, 1, 2]
    assert load_config("default").segmentation.seeds == [0]  # what `run` trains

    res = runner.invoke(app, ["study", "--seeds", "3,4", "--arms", "real_only,joint", "segmentation.seeds=[7]"])
    assert res.exit_code == 0, res.output
    cfg = load_config(calls[-1]["config"], calls[-1]["overrides"])
    assert cfg.segmentation.seeds == [7] and cfg.segmentation.arms == ["real_only", "joint"]

    for args, says in ((["--seeds", "0,x"], "--seeds 0,x: give whole numbers"),
                       (["--arms", "real_only,mixed"], "unknown arm")):
        res = runner.invoke(app, ["study", *args])
        assert res.exit_code != 0 and says in res.output and "Traceback" not in res.output
    assert len(calls) == 2
