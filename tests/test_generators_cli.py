"""CLI: train-generator on a tiny labeled set, then generate from a mask store; one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generators_base import toy_pairs
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.data.store import MaskStore, PairStore
from pipeline.io import write_png

torch.set_num_threads(1)
TINY = ["generator.channels=4", "generator.image_size=32", "generator.steps=2", "runtime.progress=false", "runtime.device=cpu"]


@pytest.mark.parametrize("model", ["spade", "pix2pix"])
def test_train_then_generate(tmp_path, model):
    set_dir = tmp_path / "set"
    for i, (img, mask) in enumerate(toy_pairs(8, 40, 48)):
        write_png(set_dir / "images" / f"p{i}.png", (img[:, :, 0] * 255).astype(np.uint8))
        write_png(set_dir / "masks" / f"p{i}.png", mask.astype(np.uint8))
    runner = CliRunner()
    res = runner.invoke(app, ["train-generator", "--set", str(set_dir), "--model", model, "--out", str(tmp_path / "g"), "--config", "smoke", *TINY])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g" / "final.pt").is_file()

    masks = MaskStore(tmp_path / "masks")
    masks.write_shard(0, [m for _, m in toy_pairs(3, 40, 40, seed=1)], [{"index": i, "source": "placement"} for i in range(3)])
    masks.finalize()
    res = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "g" / "final.pt"), "--masks", str(tmp_path / "masks"),
                              "--out", str(tmp_path / "pairs"), "--count", "5", "--config", "smoke", "runtime.progress=false", "runtime.device=cpu"])
    assert res.exit_code == 0, res.output
    assert len(PairStore(tmp_path / "pairs")) == 5


def test_bad_inputs_give_one_line_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train-generator", "--set", str(tmp_path / "nope"), "--out", str(tmp_path / "g"), "--config", "smoke"])
    assert res.exit_code != 0 and "no such labeled-set folder" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "x.pt"), "--masks", str(tmp_path / "m"), "--out", str(tmp_path / "p"), "--config", "smoke"])
    assert res.exit_code != 0 and "not a mask store" in res.output


def test_train_generator_with_a_judge_stops_at_its_plateau(tmp_path):
    """--judge: a real-only arm folder (here an untrained model: its score does not matter) scores
    the validation masks' layouts; a folder that is no arm is a one-line error."""
    from pipeline.io import read_json, save_torch, write_json
    from pipeline.segmentation.models import create_model

    set_dir = tmp_path / "set"
    for i, (img, mask) in enumerate(toy_pairs(8, 40, 48)):
        write_png(set_dir / "images" / f"p{i}.png", (img[:, :, 0] * 255).astype(np.uint8))
        write_png(set_dir / "masks" / f"p{i}.png", mask.astype(np.uint8))
    arm = tmp_path / "arm"
    meta = {"arch": "Linknet", "encoder": "mobilenet_v2", "in_channels": 1, "classes": 2, "target": "boundary"}
    model = create_model("Linknet", "mobilenet_v2", 1, 2)
    save_torch(arm / "train" / "best.pt", {"meta": meta, "model": model.state_dict()})
    write_json(arm / "metrics.json", {"checkpoint": str(arm / "train" / "best.pt"), "fg_threshold": 0.5})
    plateau = ["generator.steps=50", "generator.eval_every=1", "generator.patience=1", "generator.min_delta=1.0",
               "generator.eval_layouts=2"]
    runner = CliRunner()
    res = runner.invoke(app, ["train-generator", "--set", str(set_dir), "--out", str(tmp_path / "g"), "--config", "smoke",
                              "--judge", str(arm), *TINY, *plateau])
    assert res.exit_code == 0, res.output
    assert "judged by" in res.output
    info = read_json(tmp_path / "g" / "training.json")
    assert info["stop_reason"] == "patience" and (info["steps_run"], info["max_steps"]) == (2, 50)
    assert info["judge"]["arm"] == "arm"
    res = runner.invoke(app, ["train-generator", "--set", str(set_dir), "--out", str(tmp_path / "g2"), "--config", "smoke",
                              "--judge", str(tmp_path), *TINY, *plateau])
    assert res.exit_code != 0 and "not a finished segmentation arm" in res.output and "Traceback" not in res.output
