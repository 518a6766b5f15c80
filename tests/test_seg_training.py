"""Training loop, exact resume, whole-image prediction, segmentation-model masks, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.seg_data import FAST_ENCODER, blob_pair
from typer.testing import CliRunner

from pipeline.config import load_config
from pipeline.io import load_torch, save_torch, write_png
from pipeline.segmentation.dataset import RealPairsDataset
from pipeline.segmentation.segmodel_masks import write_segmodel_masks
from pipeline.segmentation.training import (
    is_channels_last,
    load_segmentation_model,
    predict_instances,
    predict_probabilities,
    train_segmentation,
)

OVERRIDES = [
    f"segmentation.encoder={FAST_ENCODER}",
    "segmentation.image_size=64",
    "segmentation.batch_size=4",
    "segmentation.eval_every=10",
    "segmentation.patience=0",  # fixed-length runs unless a test turns the plateau rule on
    "runtime.progress=false",
    "runtime.device=cpu",
]


@pytest.fixture(scope="module")
def cfg():
    torch.set_num_threads(1)
    return load_config("smoke", OVERRIDES)


@pytest.fixture(scope="module")
def data():
    return [blob_pair(i) for i in range(8)], [blob_pair(100 + i, size=72) for i in range(2)]


@pytest.fixture(scope="module")
def trained(cfg, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    best = train_segmentation(cfg, data[0], data[1], out, steps=30, lr=3e-3, seed=0, progress=False)
    return best


def test_short_training_learns_and_writes_outputs(cfg, trained):
    out = trained.parent
    log = pd.read_csv(out / "log.csv")
    assert list(log["step"]) == [10, 20, 30]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0] or log["val_f1"].iloc[-1] > log["val_f1"].iloc[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_val_f1"] == pytest.approx(log["val_f1"].max())
    assert metrics["best_step"] == int(log.loc[log["val_f1"] == log["val_f1"].max(), "step"].max())  # ties -> later
    # where the time went: validation's own seconds, apart from the steps' rate
    assert (log["val_seconds"] > 0).all() and metrics["validation_s"] == pytest.approx(log["val_seconds"].sum())
    assert metrics["validation_s"] < metrics["time_s"]
    # bf16 or fp32 is a runtime choice outside the stage key: the record says which one ran
    from pipeline.device import precision_name

    assert metrics["precision"] == precision_name(torch.device("cpu"), cfg.segmentation.amp)
    model, meta = load_segmentation_model(trained)
    assert meta["target"] == "boundary" and meta["in_channels"] == 1


def test_finished_run_returns_without_training_again(cfg, data, trained):
    before = trained.stat().st_mtime_ns
    again = train_segmentation(cfg, data[0], data[1], trained.parent, steps=30, lr=3e-3, seed=0, progress=False)
    assert again == trained and trained.stat().st_mtime_ns == before


def test_resume_matches_uninterrupted_run(cfg, data, tmp_path):
    straight = train_segmentation(cfg, data[0], data[1][:1], tmp_path / "a", steps=20, lr=2e-3, seed=3)
    train_segmentation(cfg, data[0], data[1][:1], tmp_path / "b", steps=20, lr=2e-3, seed=3, stop_at=10)
    assert load_torch(tmp_path / "b" / "last.pt")["step"] == 10
    resumed = train_segmentation(cfg, data[0], data[1][:1], tmp_path / "b", steps=20, lr=2e-3, seed=3)
    a, b = load_torch(straight.parent / "last.pt"), load_torch(resumed.parent / "last.pt")
    assert a["step"] == b["step"] == 20
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-5, atol=1e-6)
    assert pd.read_csv(tmp_path / "a" / "log.csv")["val_f1"].tolist() == pd.read_csv(tmp_path / "b" / "log.csv")["val_f1"].tolist()


def test_crops_are_deterministic_and_keep_instance_ids(data):
    ds = RealPairsDataset(data[0], 48, "boundary", augment=True, seed=5)
    (img1, m1), (img2, m2) = ds.sample(7), ds.sample(7)
    assert np.array_equal(img1, img2) and np.array_equal(m1, m2)
    assert img1.shape == (48, 48, 1) and m1.dtype == np.int32
    ids = set().union(*(set(np.unique(m)) for _, m in data[0]))
    for k in range(12):
        _, mask = ds.sample(k)
        assert set(np.unique(mask)) <= ids  # nearest-neighbour warps invent no labels
    x, y = ds[3]
    assert x.shape == (1, 48, 48) and y.shape == (2, 48, 48)
    small = RealPairsDataset([blob_pair(0, size=40)], 64, "binary", augment=False)
    assert small.sample(0)[0].shape == (64, 64, 1)  # reflect-padded up to the crop size


def test_foreground_crops_show_objects_of_a_rare_object_set(data):
    """One image in eight has objects: plain crops rarely see them, forced crops always do."""
    empty = [(img, np.zeros_like(m)) for img, m in data[0][1:]]
    pairs = [data[0][0]] + empty
    plain = RealPairsDataset(pairs, 32, "boundary", augment=False, seed=2)
    forced = RealPairsDataset(pairs, 32, "boundary", augment=False, seed=2, foreground=1.0)
    assert forced.object_items == [0]
    assert np.mean([plain.sample(k)[1].any() for k in range(40)]) < 0.3
    assert all(forced.sample(k)[1].any() for k in range(40))
    half = RealPairsDataset(pairs, 32, "boundary", augment=False, seed=2, foreground=0.5)
    assert 0.3 < np.mean([half.sample(k)[1].any() for k in range(80)]) < 0.9
    off = RealPairsDataset(pairs, 32, "boundary", augment=False, seed=2, foreground=0.0)
    assert all(np.array_equal(off.sample(k)[1], plain.sample(k)[1]) for k in range(10))  # 0 = old crops


def test_prediction_on_any_size_and_tiling(cfg, trained):
    image = blob_pair(7, size=100)[0][:, :90]
    masks = predict_instances(trained, [image], cfg)
    assert masks[0].shape == (100, 90) and masks[0].dtype == np.int32
    model, _ = load_segmentation_model(trained)
    whole = predict_probabilities(model, image, torch.device("cpu"))
    tiled = predict_probabilities(model, image, torch.device("cpu"), tile=64)
    assert tiled.shape == whole.shape == (2, 100, 90) and np.isfinite(tiled).all()
    assert np.corrcoef(whole.ravel(), tiled.ravel())[0, 1] > 0.8


def test_channels_last_changes_speed_not_predictions(trained):
    image = blob_pair(9, size=96)[0]
    nhwc, _ = load_segmentation_model(trained)
    nchw, _ = load_segmentation_model(trained, channels_last=False)
    assert is_channels_last(nhwc) and not is_channels_last(nchw)
    a = predict_probabilities(nhwc, image, torch.device("cpu"))
    b = predict_probabilities(nchw, image, torch.device("cpu"))
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_training_channels_last_matches_contiguous_start(cfg, data, tmp_path):
    """Same seed, NHWC vs NCHW: same losses to float rounding (the speed-up changes no recipe)."""
    off = cfg.model_copy(update={"segmentation": cfg.segmentation.model_copy(update={"channels_last": False})})
    a = train_segmentation(cfg, data[0], [], tmp_path / "nhwc", steps=2, lr=1e-3, seed=1, progress=False)
    b = train_segmentation(off, data[0], [], tmp_path / "nchw", steps=2, lr=1e-3, seed=1, progress=False)
    loss_a = pd.read_csv(a.parent / "log.csv")["train_loss"].iloc[-1]
    loss_b = pd.read_csv(b.parent / "log.csv")["train_loss"].iloc[-1]
    assert loss_a == pytest.approx(loss_b, rel=1e-4)
    wa, wb = load_torch(a)["model"], load_torch(b)["model"]
    name = next(k for k, v in wa.items() if v.dim() == 4 and v.shape[1] > 1 and v.shape[2] > 1)
    assert wa[name].is_contiguous(memory_format=torch.channels_last) and not wa[name].is_contiguous()
    assert wb[name].is_contiguous()


def test_segmodel_masks_are_deterministic(cfg, trained, tmp_path):
    cfg = cfg.model_copy(update={"masks": cfg.masks.model_copy(update={"segmodel_min_score": 0.0, "size": 48})})
    images = [blob_pair(200 + i, size=80)[0] for i in range(3)]
    store = write_segmodel_masks(trained, images, tmp_path / "m1", cfg, seed=1, count=5, shard_size=2)
    again = write_segmodel_masks(trained, images, tmp_path / "m2", cfg, seed=1, count=5, shard_size=2)
    assert len(store) == 5 and set(store.manifest["source"]) == {"segmodel"}
    assert {"index", "origin", "checkpoint", "n_objects"} <= set(store.manifest.columns)
    for i in range(5):
        assert store[i].shape == (48, 48) and np.array_equal(store[i], again[i])
        assert store[i].max() == store.manifest.loc[i, "n_objects"]


def _write_set(root, n=8):
    for i in range(n):
        image, mask = blob_pair(300 + i, size=64)
        write_png(root / "images" / f"img{i:02d}.png", (image[:, :, 0] * 255).astype(np.uint8))
        write_png(root / "masks" / f"img{i:02d}.png", mask.astype(np.uint16))


def test_cli_train_and_evaluate(tmp_path):
    from pipeline.cli import app

    _write_set(tmp_path / "set")
    over = [*OVERRIDES, "segmentation.max_steps=4", "segmentation.eval_every=2", "data.n_train=4",
            "data.n_val=2", "data.n_test=2"]
    runner = CliRunner()
    res = runner.invoke(app, ["train-seg", "--set", str(tmp_path / "set"), "--out", str(tmp_path / "run"),
                              "--config", "smoke", *over])
    assert res.exit_code == 0, res.output
    assert "train 4 steps (cap)" in res.output and "test F1" in res.output
    best = tmp_path / "run" / "real_only" / "train" / "best.pt"
    metrics = json.loads((tmp_path / "run" / "real_only" / "metrics.json").read_text())
    assert metrics["arm"] == "real_only" and metrics["hit_cap"] and metrics["train_steps"] == 4
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(best), "--set", str(tmp_path / "set"),
                              "--out", str(tmp_path / "eval"), "--config", "smoke", *over])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_images"] == 2 and summary["n_true"] > 0
    assert len(pd.read_csv(tmp_path / "eval" / "per_image.csv")) == 2

    # a model that predicts nothing: no true positives, recall 0, counts still reported
    ckpt = load_torch(best)
    head = [k for k in ckpt["model"] if k.startswith("segmentation_head") and k.endswith("bias")][0]
    ckpt["model"][head] = torch.full_like(ckpt["model"][head], -50.0)
    save_torch(tmp_path / "nothing.pt", ckpt)
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nothing.pt"), "--set",
                              str(tmp_path / "set"), "--out", str(tmp_path / "eval0"), "--config", "smoke", *over])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "eval0" / "summary.json").read_text())
    assert (summary["tp"], summary["fp"], summary["recall"], summary["f1"]) == (0, 0, 0.0, 0.0)
    assert summary["fn"] == summary["n_true"] and summary["pixel_iou"] == 0.0

    res = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--set",
                              str(tmp_path / "set"), "--out", str(tmp_path / "e"), "--config", "smoke"])
    assert res.exit_code != 0 and "checkpoint not found" in res.output


def test_weight_average_follows_the_trend_and_copies_integer_buffers():
    import torch
    from torch import nn

    from pipeline.segmentation.training import WeightAverage

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    avg = WeightAverage(net, decay=0.9)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    avg.update(net)  # first update: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(avg.model[0].weight, 0.1 * start + 0.9 * (start + 1.0))
    assert torch.allclose(avg.model[1].running_mean, torch.full((2,), 0.9 * 2.0))
    assert int(avg.model[1].num_batches_tracked) == 7
    for _ in range(200):
        avg.update(net)
    assert torch.allclose(avg.model[0].weight, net[0].weight, atol=1e-6)
    assert not avg.model.training and not any(p.requires_grad for p in avg.model.parameters())
    again = WeightAverage(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), decay=0.9)
    again.load(avg.state())
    assert again.updates == avg.updates and torch.equal(again.model[0].weight, avg.model[0].weight)


def test_crop_size_advice_warns_only_when_objects_outgrow_the_crop():
    from pipeline.segmentation.dataset import crop_size_advice

    small, large = np.zeros((256, 256), np.int32), np.zeros((256, 256), np.int32)
    for k in range(10):  # ten 20 px objects, and ten 70 px ones
        small[k * 24 : k * 24 + 20, 10:30] = k + 1
        large[(k % 3) * 80 : (k % 3) * 80 + 70, (k // 3) * 60 : (k // 3) * 60 + 50] = k + 1
    assert crop_size_advice([small], 32) is None and crop_size_advice([large], 96) is None
    assert crop_size_advice([np.zeros((64, 64), np.int32)], 16) is None  # no objects: nothing to say
    says = crop_size_advice([large], 64)
    assert says is not None and "70 px or wider, wider than the 64 px" in says and "image_size=96" in says
