"""Filtering of synthetic pairs (pipeline/quality/filtering.py): scoring agrees with the project's own
prediction path, the kept pairs are the best-scoring ones, over-sampling copies only hard layouts,
and the filtered store is a faithful, deterministic copy with provenance and a summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.seg_data import tiny_checkpoint
from torch import nn

from pipeline.config import Config, RuntimeConfig, load_config
from pipeline.data.store import PairStore
from pipeline.device import configure
from pipeline.errors import ConfigError, InputError
from pipeline.evaluation.matching import match_instances
from pipeline.io import read_json
from pipeline.quality import filtering
from pipeline.quality.filtering import (
    batch_probabilities,
    filter_pairs,
    layout_indicators,
    pixel_bce,
    plan_filtering,
    score_pairs,
)
from pipeline.segmentation.targets import make_target
from pipeline.segmentation.training import (
    load_segmentation_model,
    predict_probabilities,
    predict_with_probabilities,
)


@pytest.fixture(autouse=True)
def _restore_runtime():
    torch.set_num_threads(1)
    yield
    configure(RuntimeConfig())  # score_pairs applies cfg.runtime process-wide


def squares_layout(n: int, size: int = 64, side: int = 10) -> np.ndarray:
    """``n`` separate squares on a 3 x 3 grid (never touching), ids 1..n."""
    mask = np.zeros((size, size), np.int32)
    for k in range(n):
        y, x = 4 + 20 * (k // 3), 4 + 20 * (k % 3)
        mask[y : y + side, x : x + side] = k + 1
    return mask


def image_of(mask: np.ndarray) -> np.ndarray:
    """Bright objects on a dark background, float32 HxWx1 (values exact in 8 bits)."""
    return np.where(mask > 0, 204, 51).astype(np.float32)[:, :, None] / 255.0


def write_store(root, pairs, generators=None) -> PairStore:
    store = PairStore(root)
    rows = [{"index": 10 + i, "generator": (generators or ["spade"] * len(pairs))[i], "mask_index": i}
            for i in range(len(pairs))]
    store.write_shard(0, [im for im, _ in pairs], [m for _, m in pairs], rows)
    store.finalize()
    return store


class BrightIsObject(nn.Module):
    """A stand-in segmenter that is right about the image: object where the pixel is bright, no
    boundaries (the test layouts never touch). Logits come from the normalised input as a real
    model's do: (0.2 - 0.5) / 0.25 * 10 = -12, (0.8 - 0.5) / 0.25 * 10 = +12."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([10.0, 0.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -20.0]))

    def forward(self, x):
        return self.conv(x)


META = {"arch": "stand-in", "encoder": "none", "in_channels": 1, "classes": 2, "target": "boundary"}


@pytest.fixture
def oracle(monkeypatch):
    monkeypatch.setattr(filtering, "load_segmentation_model", lambda ckpt, device: (BrightIsObject().eval(), META))


def graded_store(root):
    """Six pairs whose images show 6 squares; pair i's mask leaves out i of them (i = 0 is faithful)."""
    full = squares_layout(6)
    pairs = []
    for dropped in (3, 0, 5, 1, 4, 2):  # out of order, so "kept" cannot mean "first"
        mask = np.where(full > 6 - dropped, 0, full) if dropped else full
        pairs.append((image_of(full), mask))
    return write_store(root, pairs, ["spade", "copypaste"] * 3), [3, 0, 5, 1, 4, 2]


def test_layout_indicators_count_touching_objects():
    mask = np.zeros((20, 50), np.int32)
    mask[2:8, 2:8] = 1
    mask[2:8, 8:14] = 2  # touches 1 (4-adjacent columns 7 and 8)
    mask[12:18, 30:36] = 7  # alone, id with a gap
    mask[12, 36] = 0
    got = layout_indicators(mask)
    assert got["n_objects"] == 3
    assert got["touching_fraction"] == pytest.approx(2 / 3)
    assert got["coverage"] == pytest.approx(108 / 1000)
    assert got["objects_per_kpx"] == pytest.approx(3.0)
    diagonal = np.zeros((4, 4), np.int32)
    diagonal[0, 0], diagonal[1, 1] = 1, 2  # diagonal contact is not touching (4-connectivity)
    assert layout_indicators(diagonal)["touching_fraction"] == 0.0
    assert layout_indicators(np.zeros((5, 5), np.int32)) == {"n_objects": 0, "coverage": 0.0,
                                                            "objects_per_kpx": 0.0, "touching_fraction": 0.0}


def test_pixel_bce_is_the_mean_binary_cross_entropy():
    target = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    probs = np.array([[[0.8, 0.1], [0.5, 0.0]]])  # 0.0 is clipped, not infinite
    expected = -np.mean([np.log(0.8), np.log(0.9), np.log(0.5), np.log1p(-1e-6)])
    assert pixel_bce(probs, target) == pytest.approx(expected)
    assert pixel_bce(target, target) < 1e-5


def test_scores_agree_with_the_prediction_path_batched_or_not(tmp_path):
    """Batched scoring gives the same instances and losses as predict_with_probabilities, one image
    at a time; a 40 x 40 pair (not a multiple of 32) takes the padded single-image path. The
    thresholds (``postprocess``, as an arm's metrics.json holds them) sit at the untrained model's
    median outputs, so it predicts many objects to compare."""
    ckpt = tiny_checkpoint(tmp_path / "best.pt", seed=3)
    rng = np.random.default_rng(0)
    pairs = [(np.round(rng.uniform(0, 1, (s, s, 1)) * 255).astype(np.float32) / 255, squares_layout(k % 4 + 1, s, 8))
             for k, s in enumerate([64, 40, 64, 64])]
    write_store(tmp_path / "pairs", pairs)
    model, _ = load_segmentation_model(ckpt, "cpu")
    batched = batch_probabilities(model, [im for im, _ in pairs], torch.device("cpu"), amp=False)
    assert np.allclose(predict_probabilities(model, pairs[1][0], torch.device("cpu"), False), batched[1])
    fg, edge = (float(np.median(np.concatenate([p[c].ravel() for p in batched]))) for c in (0, 1))
    postprocess = {"fg_threshold": fg, "boundary_threshold": edge, "min_object_area": 2, "val_f1": 0.1}
    cfg = Config()
    cfg.runtime.precision, cfg.runtime.progress = "fp32", False
    scores = score_pairs(ckpt, tmp_path / "pairs", cfg, batch_size=2, progress=False, postprocess=postprocess)
    assert list(scores["row"]) == list(range(4)) and list(scores["index"]) == [10, 11, 12, 13]
    assert list(scores["generator"]) == ["spade"] * 4
    assert (scores["n_pred"] > 3).all()
    tuned = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(
        update={"fg_threshold": fg, "boundary_threshold": edge, "min_object_area": 2})})
    one_by_one = predict_with_probabilities(ckpt, [im for im, _ in pairs], tuned, "cpu")
    for (_, mask), probs, (inst, single), row in zip(pairs, batched, one_by_one, scores.itertuples(), strict=True):
        np.testing.assert_allclose(probs, single, atol=1e-5)
        m = match_instances(mask, inst, cfg.evaluation.iou_threshold)
        assert (row.f1, row.precision, row.recall, row.n_pred) == (m.f1, m.precision, m.recall, m.n_pred)
        assert row.pixel_loss == pytest.approx(pixel_bce(single, make_target(mask, "boundary")), rel=1e-4)
        assert row.n_objects == len(np.unique(mask)) - 1


def test_kept_pairs_are_the_faithful_ones_and_the_store_copies_them_exactly(tmp_path, oracle):
    graded_store(tmp_path / "pairs")
    scores = score_pairs(tmp_path / "ckpt.pt", tmp_path / "pairs", Config(), batch_size=4, progress=False)
    dropped = np.array([3, 0, 5, 1, 4, 2])
    # 6 squares seen, 6 - d in the mask: precision (6 - d) / 6, recall 1
    np.testing.assert_allclose(scores["f1"], 2 * (6 - dropped) / (12 - dropped))
    assert (scores["recall"] == 1.0).all()
    assert np.argsort(scores["pixel_loss"].to_numpy()).tolist() == np.argsort(dropped).tolist()

    out = filter_pairs(tmp_path / "pairs", scores, tmp_path / "filtered", keep_fraction=0.5)
    source = PairStore(tmp_path / "pairs")
    m = out.manifest
    assert list(m["source_row"]) == [1, 3, 5]  # dropped 0, 1, 2 objects: the best half, in source order
    assert list(m["source_index"]) == [11, 13, 15] and list(m["index"]) == [0, 1, 2]
    assert list(m["generator"]) == ["copypaste"] * 3 and list(m["copy"]) == [0, 0, 0]
    np.testing.assert_allclose(m["fidelity"], scores["fidelity"].iloc[[1, 3, 5]])
    for k, r in enumerate(m["source_row"]):
        (im, mk), (sim, smk) = out[k], source[r]
        np.testing.assert_array_equal(im, sim)
        np.testing.assert_array_equal(mk, smk)

    summary = read_json(tmp_path / "filtered" / "filtering.json")
    assert (summary["pairs_in"], summary["kept"], summary["removed"], summary["pairs_out"]) == (6, 3, 3, 3)
    assert summary["copies_added"] == 0
    assert summary["thresholds"]["min_fidelity_kept"] == pytest.approx(scores["f1"][5])  # 2 dropped
    assert summary["thresholds"]["max_fidelity_removed"] == pytest.approx(scores["f1"][0])  # 3 dropped
    assert summary["mean_fidelity"]["before"] == pytest.approx(scores["f1"].mean())
    assert summary["mean_fidelity"]["kept"] == pytest.approx(scores["f1"].iloc[[1, 3, 5]].mean())
    assert summary["mean_fidelity"]["kept"] > summary["mean_fidelity"]["before"]
    assert summary["by_generator"] == {
        "copypaste": {"pairs_in": 3, "kept": 3, "mean_fidelity_before": pytest.approx(scores["f1"].iloc[[1, 3, 5]].mean())},
        "spade": {"pairs_in": 3, "kept": 0, "mean_fidelity_before": pytest.approx(scores["f1"].iloc[[0, 2, 4]].mean())},
    }


def test_empty_mask_with_no_prediction_counts_as_faithful(tmp_path, oracle):
    empty = np.zeros((32, 32), np.int32)
    write_store(tmp_path / "pairs", [(image_of(empty), empty), (image_of(squares_layout(1, 32)), empty)])
    scores = score_pairs(tmp_path / "ckpt.pt", tmp_path / "pairs", Config(), progress=False)
    assert list(scores["f1"]) == [0.0, 0.0]  # the matching's convention for 0/0
    assert list(scores["fidelity"]) == [1.0, 0.0]  # but an empty pair seen as empty is faithful


def fake_scores(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "row": np.arange(n), "index": np.arange(n),
        "fidelity": rng.choice([0.5, 0.8, 1.0], n), "pixel_loss": rng.uniform(0, 1, n),
        "objects_per_kpx": rng.uniform(0, 3, n), "touching_fraction": rng.uniform(0, 1, n),
    })


def test_plan_ranks_by_fidelity_then_loss_and_keep_all_keeps_order():
    scores = pd.DataFrame({"row": range(5), "index": range(5), "fidelity": [0.9, 1.0, 0.9, 0.2, 0.9],
                           "pixel_loss": [0.3, 0.9, 0.1, 0.0, 0.3], "objects_per_kpx": [1.0] * 5,
                           "touching_fraction": [0.0] * 5})
    # 3 of 5: fidelity 1.0 (row 1), then 0.9 with the lowest loss (row 2), then the 0.3 tie -> earlier row 0
    assert list(plan_filtering(scores, 0.6)["row"]) == [0, 1, 2]
    everything = plan_filtering(scores, 1.0)
    assert list(everything["row"]) == [0, 1, 2, 3, 4] and (everything["copy"] == 0).all()
    assert len(plan_filtering(scores, 0.01)) == 1  # at least one pair
    with pytest.raises(InputError):
        plan_filtering(scores, 0.0)
    with pytest.raises(InputError):
        plan_filtering(scores, 0.5, hard_oversample=-1)


def test_oversampling_copies_only_hard_pairs_hardest_first():
    scores = fake_scores(40)
    plan = plan_filtering(scores, 0.5, hard_oversample=1.5)
    kept = plan[plan["copy"] == 0]
    copies = plan[plan["copy"] > 0]
    assert len(kept) == 20 and len(copies) == 30
    hard_rows = set(kept.loc[kept["hardness"] > kept["hardness"].median(), "row"])
    assert set(copies["row"]) == hard_rows  # every hard pair copied, nothing else
    assert len(hard_rows) == 10
    assert (copies["copy"].value_counts().sort_index() == [10, 10, 10]).all()  # three full turns
    first_turn = copies[copies["copy"] == 1]
    assert first_turn["hardness"].is_monotonic_decreasing
    # equally hard layouts: no pool, no copies
    flat = scores.assign(objects_per_kpx=1.0, touching_fraction=0.0)
    assert (plan_filtering(flat, 0.5, hard_oversample=1.0)["copy"] == 0).all()


def test_filtering_is_deterministic_and_refuses_a_folder_of_another_filtering(tmp_path):
    pairs = [(image_of(squares_layout(k % 6 + 1, 32, 6)), squares_layout(k % 6 + 1, 32, 6)) for k in range(12)]
    write_store(tmp_path / "pairs", pairs)
    scores = fake_scores(12, seed=4).assign(index=np.arange(10, 22))
    a = filter_pairs(tmp_path / "pairs", scores, tmp_path / "a", 0.75, hard_oversample=0.5, shard_size=4)
    b = filter_pairs(tmp_path / "pairs", scores, tmp_path / "b", 0.75, hard_oversample=0.5, shard_size=4)
    pd.testing.assert_frame_equal(a.manifest.drop(columns=["image", "mask"]), b.manifest.drop(columns=["image", "mask"]))
    assert len(a) == 9 + 4 and sorted(a.completed_shards()) == [0, 1, 2, 3]
    for k in range(len(a)):
        np.testing.assert_array_equal(a[k][1], b[k][1])
    # a finished folder is reused as is; other settings there are refused
    again = filter_pairs(tmp_path / "pairs", scores, tmp_path / "a", 0.75, hard_oversample=0.5, shard_size=4)
    pd.testing.assert_frame_equal(again.manifest, a.manifest)
    with pytest.raises(InputError, match="another filtering"):
        filter_pairs(tmp_path / "pairs", scores, tmp_path / "a", 0.5)
    with pytest.raises(InputError, match="do not belong"):
        filter_pairs(tmp_path / "pairs", scores.iloc[:-1], tmp_path / "c", 0.5)
    with pytest.raises(InputError, match="new folder"):
        filter_pairs(tmp_path / "pairs", scores, tmp_path / "pairs", 0.5)


def test_config_section_defaults_to_no_filtering():
    cfg = Config()
    assert (cfg.filtering.keep_fraction, cfg.filtering.hard_oversample) == (1.0, 0.0)
    assert load_config("default", ["filtering.keep_fraction=0.6"]).filtering.keep_fraction == 0.6
    with pytest.raises(ConfigError):
        load_config("default", ["filtering.keep_fraction=0"])


def test_the_report_says_what_filtering_kept(tmp_path, oracle):
    """A run that filtered its pairs says so beside the verdict, from the filter stage's own
    filtering.json: kept of how many, the fidelity at the cut, fidelity and touching before -> after."""
    from pipeline.report.build import _filtering

    graded_store(tmp_path / "pairs")
    scores = score_pairs(tmp_path / "ckpt.pt", tmp_path / "pairs", Config(), batch_size=4, progress=False)
    stage = tmp_path / "runs" / "line3" / "stages" / "filtered" / "k0"
    filter_pairs(tmp_path / "pairs", scores, stage / "pairs", keep_fraction=0.5)
    summary = read_json(stage / "pairs" / "filtering.json")
    run_dir = tmp_path / "runs" / "line3" / "r1"
    stages = [{"stage": "segmentation real_only", "path": "runs/line3/stages/seg_real_only/k"},
              {"stage": "filter pairs (copypaste)", "path": "/moved/runs/line3/stages/filtered/k0/pairs"},
              {"stage": "filter pairs (copypaste)", "path": "runs/line3/stages/filtered/k0/pairs"}]  # shown once
    (row,) = _filtering(run_dir, stages)
    assert (row["method"], row["pairs_in"], row["kept"], row["kept_pct"], row["copies"]) == ("copypaste", 6, 3, "50", 0)
    assert row["cut"] == f"{summary['thresholds']['min_fidelity_kept']:.2f}"
    assert row["fidelity"] == f"{summary['mean_fidelity']['before']:.2f} → {summary['mean_fidelity']['kept']:.2f}"
    t = summary["mean_touching_fraction"]
    assert row["touching"] == f"{t['before']:.2f} → {t['written']:.2f}"
    assert _filtering(run_dir, stages[:1]) == []  # no filtering in the run: nothing said
