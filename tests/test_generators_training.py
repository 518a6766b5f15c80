"""Training loop: exact resume after a kill, NaN rollback with halved learning rates, finish = no-op;
the fidelity plateau with a judge (stub judges with known scores, and a real segmentation checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_generators_base import toy_pairs

from pipeline.config import Config, GeneratorConfig, RuntimeConfig
from pipeline.data.images import InputError
from pipeline.generators.spade import SPADEModel
from pipeline.generators.training_loop import GeneratorDiverged, list_checkpoints, train_generator
from pipeline.io import load_torch, read_json

torch.set_num_threads(1)


def make_cfg(**kw) -> Config:
    g = dict(model="spade", channels=4, image_size=32, batch_size=2, steps=20, checkpoint_every=10, sample_every=10)
    return Config(generator=GeneratorConfig(**{**g, **kw}), runtime=RuntimeConfig(progress=False, device="cpu"))


class _Injected(Exception):
    pass


def _fail_on_call(monkeypatch, method: str, call: int, result):
    """Patch SPADEModel.<method> so its ``call``-th invocation raises or returns NaN losses."""
    original = getattr(SPADEModel, method)
    count = {"n": 0}

    def wrapper(self, batch):
        count["n"] += 1
        out = original(self, batch)
        if count["n"] == call or (call == 0):
            if result == "raise":
                raise _Injected("simulated kill")
            return {k: v * float("nan") for k, v in out.items()}
        return out

    monkeypatch.setattr(SPADEModel, method, wrapper)


@pytest.mark.slow  # ~10 s on the 2-core CPU: two short trainings compared step for step
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    pairs = toy_pairs(4, 40, 56)
    full = load_torch(train_generator(make_cfg(), pairs, tmp_path / "full", progress=False))

    killed_dir = tmp_path / "killed"
    with monkeypatch.context() as m:
        _fail_on_call(m, "losses_d", 11, "raise")  # dies during step 11, after the step-10 checkpoint
        with pytest.raises(_Injected):
            train_generator(make_cfg(), pairs, killed_dir, progress=False)
    assert not (killed_dir / "final.pt").exists()
    assert list_checkpoints(killed_dir)[-1].name == "ckpt_0000010.pt"
    with pytest.raises(InputError, match="different generator options"):
        train_generator(make_cfg(channels=8), pairs, killed_dir, progress=False)

    resumed = load_torch(train_generator(make_cfg(), pairs, killed_dir, progress=False))  # fresh objects
    assert resumed["step"] == full["step"] == 20
    for key in ("model", "ema"):
        for name, value in full[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
    log = [json.loads(line) for line in (killed_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 21))
    assert len(list_checkpoints(killed_dir)) == 2  # keep last two
    assert (killed_dir / "samples" / "step_0000020.png").is_file()

    before = (killed_dir / "final.pt").stat().st_mtime_ns
    assert train_generator(make_cfg(), pairs, killed_dir, progress=False) == killed_dir / "final.pt"
    assert (killed_dir / "final.pt").stat().st_mtime_ns == before  # finished: returned immediately


def test_nan_loss_rolls_back_and_halves_learning_rates(tmp_path, monkeypatch):
    pairs = toy_pairs(4, 32, 32)
    cfg = make_cfg(steps=8, checkpoint_every=4, sample_every=8)
    _fail_on_call(monkeypatch, "losses_g", 6, "nan")  # step 6 diverges once
    final = load_torch(train_generator(cfg, pairs, tmp_path / "run", progress=False))
    assert final["rollbacks"] == 1 and final["lr_scale"] == 0.5
    assert final["opt_g"]["param_groups"][0]["lr"] == pytest.approx(cfg.generator.lr_g / 2)
    assert final["opt_d"]["param_groups"][0]["lr"] == pytest.approx(cfg.generator.lr_d / 2)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))
    assert [r["lr_scale"] for r in log] == [1.0] * 4 + [0.5] * 4  # steps 5.. were redone at half LR


def test_persistent_nan_raises_clear_error(tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, "losses_d", 0, "nan")  # every call
    with pytest.raises(GeneratorDiverged, match="after 2 rollback"):
        train_generator(make_cfg(steps=4, nan_retries=2), toy_pairs(2, 32, 32), tmp_path / "run", progress=False)


# --- the fidelity plateau (issue 13 item 4) ------------------------------------------------------------


class ScriptedJudge:
    """Scores from a script, one per evaluation: the plateau's decisions are known in advance."""

    identity = {"kind": "scripted"}

    def __init__(self, f1s, layouts):
        self.f1s, self.layouts, self.calls = list(f1s), layouts, 0

    def score(self, images):
        assert len(images) == len(self.layouts) and images[0].shape == (32, 32, 1)
        f1 = self.f1s[self.calls]
        self.calls += 1
        return {"fidelity_f1": f1, "precision": f1, "recall": f1}


class ImageJudge:
    """A score computed from the generated images alone: a fresh judge after a resume scores the
    same weights the same, as the real judge does."""

    identity = {"kind": "image-mean"}

    def __init__(self, layouts):
        self.layouts = layouts

    def score(self, images):
        return {"fidelity_f1": float(np.mean([im.mean() for im in images])), "precision": 0.0, "recall": 0.0}


def _layouts(n=3):
    return [(img[:32, :32], m[:32, :32]) for img, m in toy_pairs(n, 40, 40, seed=7)]


def _eval_rows(path):
    import pandas as pd

    return pd.read_csv(path)


def test_plateau_stops_on_patience_and_final_holds_the_best_ema(tmp_path):
    """Scores 0.1, 0.3, 0.38, 0.32 with min_delta 0.1 and patience 2: 0.38 is the best but not an
    improvement, so training stops at the fourth evaluation (step 4 of a cap of 40) and final.pt
    holds the EMA weights of step 3, the same as a run that simply trained 3 steps: evaluating
    draws nothing from the training's random streams."""
    pairs = toy_pairs(4, 40, 40)
    judge = ScriptedJudge([0.1, 0.3, 0.38, 0.32], _layouts())
    cfg = make_cfg(steps=40, eval_every=1, patience=2, min_delta=0.1, checkpoint_every=100, sample_every=100)
    final = load_torch(train_generator(cfg, pairs, tmp_path / "judged", progress=False, judge=judge))
    info = read_json(tmp_path / "judged" / "training.json")
    assert judge.calls == 4 and final["step"] == 4 and final["ema_step"] == 3
    assert info["stop_reason"] == "patience" and info["steps_run"] == 4 and info["best_step"] == 3
    assert info["best_fidelity_f1"] == pytest.approx(0.38) and info["judge"] == {"kind": "scripted"}
    rows = _eval_rows(tmp_path / "judged" / "eval.csv")
    assert rows.step.tolist() == [1, 2, 3, 4] and rows.fidelity_f1.tolist() == pytest.approx(judge.f1s)
    assert (rows.elapsed_s.diff().dropna() >= 0).all()
    assert [p.name for p in sorted((tmp_path / "judged" / "samples").glob("*.png"))] == \
        [f"step_{s:07d}.png" for s in (1, 2, 3, 4)]  # a sample grid at every evaluation

    three = load_torch(train_generator(make_cfg(steps=3, checkpoint_every=100, sample_every=100), pairs,
                                        tmp_path / "three", progress=False))
    for name, value in three["ema"].items():
        torch.testing.assert_close(final["ema"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(final["model"][k], three["model"][k]) for k in three["ema"])  # training went on


def test_without_a_judge_training_runs_its_steps(tmp_path):
    """No judge: today's behaviour whatever the plateau fields say (fixed steps, last EMA weights)."""
    cfg = make_cfg(steps=4, eval_every=1, patience=1, min_delta=1.0, checkpoint_every=100, sample_every=100)
    final = load_torch(train_generator(cfg, toy_pairs(2, 32, 32), tmp_path / "run", progress=False))
    info = read_json(tmp_path / "run" / "training.json")
    assert final["step"] == final["ema_step"] == 4 and final["best_ema"] is None
    assert info["stop_reason"] == "cap" and info["best_step"] is None and info["judge"] is None
    from pipeline.device import precision_name  # which precision ran: not in the stage key, so recorded

    assert info["precision"] == precision_name(torch.device("cpu"), cfg.generator.amp)
    assert not (tmp_path / "run" / "eval.csv").exists()
    assert read_json(tmp_path / "run" / "options.json")["adam_betas"] == [0.0, 0.9]  # SPADE's paper values


def test_resume_with_a_judge_ends_identically(tmp_path, monkeypatch):
    """Killed during step 5 (checkpoints every 2 steps, evaluations every 2): the resumed run stops
    at the same step with the same best step, weights and evaluation log as an uninterrupted one,
    because the plateau state and the best EMA weights travel in the checkpoint."""
    pairs = toy_pairs(4, 40, 40)
    cfg = make_cfg(steps=30, eval_every=2, patience=2, min_delta=1.0, checkpoint_every=2, sample_every=100)
    full = load_torch(train_generator(cfg, pairs, tmp_path / "full", progress=False, judge=ImageJudge(_layouts())))

    killed = tmp_path / "killed"
    with monkeypatch.context() as m:
        _fail_on_call(m, "losses_d", 5, "raise")
        with pytest.raises(_Injected):
            train_generator(cfg, pairs, killed, progress=False, judge=ImageJudge(_layouts()))
    assert list_checkpoints(killed)[-1].name == "ckpt_0000004.pt" and not (killed / "final.pt").exists()
    with pytest.raises(InputError, match="judge"):  # another judge would mix two plateaus
        train_generator(cfg, pairs, killed, progress=False, judge=ScriptedJudge([0.5] * 9, _layouts()))
    resumed = load_torch(train_generator(cfg, pairs, killed, progress=False, judge=ImageJudge(_layouts())))

    assert resumed["step"] == full["step"] == 6  # min_delta 1.0: no gain after the first evaluation
    assert resumed["ema_step"] == full["ema_step"] and resumed["best"] == full["best"]
    for key in ("model", "ema"):
        for name, value in full[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
    a, b = _eval_rows(tmp_path / "full" / "eval.csv"), _eval_rows(killed / "eval.csv")
    assert a.step.tolist() == b.step.tolist() == [2, 4, 6]
    assert b.fidelity_f1.tolist() == pytest.approx(a.fidelity_f1.tolist(), abs=1e-6)
    done, again = read_json(tmp_path / "full" / "training.json"), read_json(killed / "training.json")
    assert (done["stop_reason"], done["best_step"]) == (again["stop_reason"], again["best_step"]) == ("patience", full["ema_step"])


def test_real_judge_scores_layouts_of_the_validation_masks(tmp_path):
    """load_judge end to end: a segmentation checkpoint and the metrics.json of its arm (tuned
    thresholds) judge held-out layouts; eval.csv gets fidelity and the realism numbers."""
    from pipeline.io import save_torch, write_json
    from pipeline.segmentation.models import create_model
    from pipeline.segmentation.training import model_meta

    cfg = make_cfg(steps=2, eval_every=2, patience=2, eval_layouts=3, sample_every=100)
    arm = tmp_path / "real_only_arm"
    meta = model_meta(cfg, 1)
    model = create_model(meta["arch"], meta["encoder"], 1, meta["classes"])
    save_torch(arm / "train" / "best.pt", {"meta": meta, "model": model.state_dict()})
    write_json(arm / "metrics.json", {"checkpoint": str(tmp_path / "moved" / "train" / "best.pt"),  # found under arm/
                                      "fg_threshold": 0.4, "boundary_threshold": 0.6, "min_object_area": 5})
    val = toy_pairs(2, 48, 40, seed=3)
    train_generator(cfg, toy_pairs(2, 32, 32), tmp_path / "gen", progress=False, judge=arm, val_pairs=val)
    row = _eval_rows(tmp_path / "gen" / "eval.csv").iloc[0]
    assert row.step == 2 and 0.0 <= row.fidelity_f1 <= 1.0 and row.n_true > 0
    for k in ("mean_diff", "std_ratio", "intensity_w1", "gradient_w1", "l1_to_real"):
        assert np.isfinite(row[k]), k
    judge = read_json(tmp_path / "gen" / "options.json")["judge"]
    assert judge["arm"] == arm.name and judge["fg_threshold"] == 0.4 and judge["min_object_area"] == 5
    assert judge["layouts"] == 3 and judge["layout_objects"] > 0
    with pytest.raises(InputError, match="validation pairs"):
        train_generator(cfg, toy_pairs(2, 32, 32), tmp_path / "gen2", progress=False, judge=arm)


def test_judge_layouts_are_fixed_held_out_crops_with_objects():
    from pipeline.generators.judge import judge_layouts, realism_numbers

    val = toy_pairs(2, 64, 80, seed=5)
    layouts = judge_layouts(val, 32, 5, seed=0)
    again = judge_layouts(val, 32, 5, seed=0)
    assert len(layouts) == 5 and all(m.shape == (32, 32) and img.shape == (32, 32, 1) for img, m in layouts)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(layouts, again))
    assert all(m.any() for _, m in layouts)
    small = judge_layouts([(np.zeros((40, 36, 1), np.float32), np.ones((40, 36), np.int32))], 64, 1, seed=0)
    assert small[0][1].shape == (40, 36)  # never padded: a layout is real mask pixels only
    same = realism_numbers([img for img, _ in layouts], [img for img, _ in layouts])
    assert same["mean_diff"] == 0 and same["intensity_w1"] == 0 and same["gradient_w1"] == 0
    assert same["l1_to_real"] == 0 and same["std_ratio"] == pytest.approx(1.0)
    flat = realism_numbers([np.full_like(img, 0.5) for img, _ in layouts], [img for img, _ in layouts])
    assert flat["std_ratio"] == 0 and flat["gradient_w1"] > 0


def test_use_vae_auto_follows_how_much_the_images_differ_in_look(tmp_path):
    """use_vae: auto gives SPADE its style encoder when the training images differ in brightness,
    not when they share one look; the decision and its numbers are in options.json."""
    from pipeline.generators.appearance import appearance_spread, images_differ_in_look

    same = toy_pairs(4, 32, 32)
    varied = [(np.clip(img * scale, 0, 1).astype(np.float32), m) for (img, m), scale in zip(same, (0.3, 0.6, 1.0, 1.4))]
    assert not images_differ_in_look(appearance_spread([i for i, _ in same]))
    assert images_differ_in_look(appearance_spread([i for i, _ in varied]))
    for name, pairs, expected in (("same", same, 0), ("varied", varied, 1)):
        cfg = make_cfg(steps=1, use_vae="auto", checkpoint_every=100, sample_every=100)
        final = load_torch(train_generator(cfg, pairs, tmp_path / name, progress=False))
        options = read_json(tmp_path / name / "options.json")
        assert options["use_vae_auto"]["use_vae"] is bool(expected)
        assert options["generator"]["use_vae"] is bool(expected)
        assert any(k.startswith("netE.") for k in final["model"]) is bool(expected)
