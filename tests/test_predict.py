"""`predict` on a folder: outputs per image, object measurements, bad files skipped, resume, and the
choice of checkpoint from a run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures.seg_data import blob_pair, tiny_checkpoint, touching_squares
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.data.images import decode
from pipeline.export.model_source import resolve_model
from pipeline.export.predict import PixelSize, measure_objects
from pipeline.io import write_json, write_png


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def test_measure_objects_known_mask():
    mask = touching_squares()  # two touching 20x15 rectangles
    mask[0:2, 0:3] = 5  # an id with a gap before it (ids 3, 4 unused)
    objects = measure_objects(mask, "a.png", PixelSize(0.5, "um", "test"))
    assert objects["object_id"].tolist() == [1, 2, 5]
    first = objects.iloc[0]
    assert first["area_px"] == 300 and first["equivalent_diameter_px"] == pytest.approx(np.sqrt(1200 / np.pi))
    assert (first["bbox_x0"], first["bbox_y0"], first["bbox_x1"], first["bbox_y1"]) == (5, 10, 20, 30)
    assert (first["centroid_x"], first["centroid_y"]) == (pytest.approx(12.0), pytest.approx(19.5))
    assert first["area_um2"] == pytest.approx(75.0)
    assert first["equivalent_diameter_um"] == pytest.approx(0.5 * first["equivalent_diameter_px"])


def test_predict_folder_writes_outputs_skips_bad_files_and_resumes(checkpoint, tmp_path):
    images = tmp_path / "images"
    for i, size in enumerate((64, 100)):  # 100 px is not a multiple of 32: padded and cropped back
        write_png(images / f"img{i}.png", (blob_pair(i, size=size)[0][:, :, 0] * 255).astype(np.uint8))
    write_png(images / "big.png", np.full((150, 90, 3), 128, np.uint8))  # RGB into a gray model, tiled at 64
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "set.yaml").write_text("pixel_size: 0.25\npixel_unit: nm\n")
    before = sorted(p.name for p in images.iterdir())
    out = tmp_path / "pred"
    args = ["predict", str(checkpoint), str(images), str(out), "--tile", "64", "--min-area", "1", "--no-progress"]

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "broken.png" in res.output and "1 image(s) skipped" in res.output
    assert sorted(p.name for p in images.iterdir()) == before  # nothing written into the image folder
    objects, summary = pd.read_csv(out / "objects.csv"), pd.read_csv(out / "summary.csv")
    assert sorted(summary["image"]) == ["big.png", "img0.png", "img1.png"]
    for row in summary.itertuples():
        mask = decode(out / "masks" / row.image)
        assert mask.dtype == np.uint16 and mask.shape == (row.height, row.width)
        assert decode(out / "overlays" / row.image).shape == (row.height, row.width, 3)
        assert row.n_objects == len(objects[objects["image"] == row.image]) == len(np.unique(mask)) - 1
        assert objects.loc[objects["image"] == row.image, "area_px"].sum() == np.count_nonzero(mask)
    assert {"area_nm2", "equivalent_diameter_nm"} <= set(objects.columns)  # pixel size from set.yaml
    assert (out / "size_distribution.png").stat().st_size > 0

    res = CliRunner().invoke(app, args)  # same model and settings: every mask is reused
    assert res.exit_code == 0 and "3 reused" in res.output, res.output
    assert pd.read_csv(out / "objects.csv").equals(objects)


def test_predict_refuses_output_inside_images(checkpoint, tmp_path):
    write_png(tmp_path / "a.png", np.zeros((32, 32), np.uint8))
    res = CliRunner().invoke(app, ["predict", str(checkpoint), str(tmp_path), str(tmp_path / "out")])
    assert res.exit_code != 0 and "inside it" in res.output and not (tmp_path / "out").exists()


def test_run_folder_picks_best_validation_arm_with_its_tuned_postprocessing(checkpoint, tmp_path):
    """A run folder (runs/<set>/<run-id>) -> by default the arm with the best mean validation F1
    (never the test F1), seed 0, with the post-processing tuned for it; paths recorded relative to
    the folder the run started from are found from the run folder itself."""
    root = tmp_path / "runs" / "myset"
    rows = []
    for arm, sub, val, test in (("real_only", "train", 0.5, 0.9), ("pretrained", "finetune", 0.6, 0.1)):
        for seed in (0, 1):
            base = arm.split(":")[0]
            ckpt = root / "stages" / f"seg_{base}" / f"key{seed}" / sub / "best.pt"
            ckpt.parent.mkdir(parents=True)
            ckpt.write_bytes(checkpoint.read_bytes())
            rows.append({"row": "seed", "arm": arm, "seed": seed, "n_real": 100, "min_object_area": 20 + seed,
                         "fg_threshold": 0.4 if arm == "pretrained" else None, "val_f1": val, "f1": test,
                         "checkpoint": f"runs/myset/stages/seg_{base}/key{seed}/{sub}/best.pt"})
    run = root / "20260101-000000-default"
    run.mkdir()
    (run / "config.yaml").write_text("name: default\nevaluation:\n  fg_threshold: 0.6\n")
    verdict = {"row": "verdict", "arm": "pretrained", "n_real": 100, "sentence": "x"}
    pd.DataFrame([verdict, *rows]).to_csv(run / "results.csv", index=False)

    source = resolve_model(run)
    assert source.checkpoint == root / "stages/seg_pretrained/key0/finetune/best.pt"
    assert source.min_object_area == 20 and source.fg_threshold == 0.4  # tuned for this arm
    other = resolve_model(run, arm="real_only", seed=1, min_area=5)
    assert other.checkpoint == root / "stages/seg_real_only/key1/train/best.pt" and other.min_object_area == 5
    assert other.fg_threshold == 0.6  # nothing tuned recorded: the run's config

    (run / "results.csv").unlink()  # no results.csv: the arm folders' metrics.json are read instead
    for r in rows:
        arm_dir = root / r["checkpoint"].removeprefix("runs/myset/").rsplit("/", 2)[0]
        write_json(arm_dir / "metrics.json", r)
    assert resolve_model(run).checkpoint == source.checkpoint
    res = CliRunner().invoke(app, ["export", str(run), "--arm", "joint"])
    assert res.exit_code != 0 and "no 'joint' arm" in res.output
    assert json.loads((root / "stages/seg_pretrained/key0/metrics.json").read_text())["seed"] == 0
