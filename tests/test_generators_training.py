"""Training loop: exact resume after a kill, NaN rollback with halved learning rates, finish = no-op."""

from __future__ import annotations

import json

import pytest
import torch
from test_generators_base import toy_pairs

from pipeline.config import Config, GeneratorConfig, RuntimeConfig
from pipeline.data.images import InputError
from pipeline.generators.spade import SPADEModel
from pipeline.generators.training_loop import GeneratorDiverged, list_checkpoints, train_generator
from pipeline.io import load_torch

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
