"""COCO export: a labeled set and a synthetic pair store come back from pycocotools exactly."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.data.images import decode
from pipeline.data.sets import set_content_hash
from pipeline.data.store import PairStore
from pipeline.io import write_png


def instance_set(mask: np.ndarray) -> set[bytes]:
    """An instance map as a set of binary masks (ids do not matter, shapes do)."""
    return {np.packbits(mask == k).tobytes() for k in np.unique(mask) if k}


def round_trip(out_dir) -> dict[str, set[bytes]]:
    from pycocotools.coco import COCO

    coco = COCO(str(out_dir / "annotations.json"))
    got = {}
    for img in coco.dataset["images"]:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert all(a["iscrowd"] == 0 and a["area"] == coco.annToMask(a).sum() for a in anns)
        masks = [coco.annToMask(a) for a in anns]
        assert all(m.shape == (img["height"], img["width"]) for m in masks)
        assert all(bool(m.any()) for m in masks)
        got[img["file_name"]] = {np.packbits(m.astype(bool)).tobytes() for m in masks}
    return got


def labeled_masks() -> dict[str, np.ndarray]:
    a = np.zeros((40, 50), np.uint8)
    a[5:20, 5:20] = 1  # touching pair
    a[5:20, 20:30] = 2
    a[30:38, 40:48] = 3  # separate, at the edge region
    a[25:35, 2:12] = 4
    a[27:33, 4:10] = 0  # an object with a hole
    b = np.zeros((40, 50), np.uint8)
    b[0:10, 0:10] = 7
    b[10:20, 0:10] = 9  # touching, ids not sequential
    return {"a": a, "b": b}


def test_labeled_set_round_trip(tmp_path):
    src = tmp_path / "set"
    for stem, mask in labeled_masks().items():
        write_png(src / "images" / f"{stem}.png", (np.random.default_rng(0).random(mask.shape) * 255).astype(np.uint8))
        write_png(src / "masks" / f"{stem}.png", mask)
    (src / "set.yaml").write_text("object_name: seed\n")
    before = set_content_hash(src)
    res = CliRunner().invoke(app, ["export-coco", str(src), str(tmp_path / "coco"), "--no-progress"])
    assert res.exit_code == 0, res.output
    got = round_trip(tmp_path / "coco")
    assert got == {f"{s}.png": instance_set(m) for s, m in labeled_masks().items()}
    assert "6 'seed' annotations" in res.output
    for stem in labeled_masks():  # PNG images are copied bit for bit
        assert (tmp_path / "coco/images" / f"{stem}.png").read_bytes() == (src / "images" / f"{stem}.png").read_bytes()
    assert set_content_hash(src) == before


def test_pair_store_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    masks = list(labeled_masks().values()) + [np.zeros((40, 50), np.uint8)]  # and one empty mask
    images = [rng.random((40, 50, 1)).astype(np.float32) for _ in masks]
    store = PairStore(tmp_path / "synthetic")
    store.write_shard(0, images[:2], masks[:2], [{"index": 0}, {"index": 1}])
    store.write_shard(1, images[2:], masks[2:], [{"index": 2}])
    files = sorted(p.name for p in store.root.iterdir())  # no manifest.parquet yet: must stay so
    res = CliRunner().invoke(app, ["export-coco", str(store.root), str(tmp_path / "coco"), "--no-progress"])
    assert res.exit_code == 0, res.output
    got = round_trip(tmp_path / "coco")
    assert got == {f"{i:07d}.png": instance_set(m) for i, m in enumerate(masks)}
    assert decode(tmp_path / "coco/images/0000001.png").shape == (40, 50)
    assert sorted(p.name for p in store.root.iterdir()) == files


@pytest.mark.parametrize("layout", ["missing", "not_a_set", "inside"])
def test_bad_source_is_one_line_error(tmp_path, layout):
    src = tmp_path / "src"
    if layout != "missing":
        (src / "stuff").mkdir(parents=True)
    out = src / "coco" if layout == "inside" else tmp_path / "coco"
    res = CliRunner().invoke(app, ["export-coco", str(src), str(out)])
    assert res.exit_code != 0 and res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1
    assert not out.exists()
