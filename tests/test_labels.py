"""Labels from annotation files (COCO from CVAT / Roboflow, LabelMe, CVAT XML): instance maps as a
raster set would give them, one line per bad annotation, the set folder untouched, and a lossless
export-coco -> import -> export round trip."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.data.labeled_set import load_mask, load_pairs, validate_set
from pipeline.data.rle import counts_from_string, paint
from pipeline.io import write_png

H, W = 40, 60


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}|{st.st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def image(path: Path, h: int = H, w: int = W) -> None:
    write_png(path, (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8))


def rect(x0, y0, x1, y1) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def instance_set(mask: np.ndarray) -> set[bytes]:
    return {np.packbits(mask == k).tobytes() for k in np.unique(mask) if k}


def reference_map(anns: list[dict], h: int, w: int) -> list[np.ndarray]:
    """Each annotation's binary mask as pycocotools' own COCO reader draws it."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": [{"id": i, "height": h, "width": w} for i in {a["image_id"] for a in anns}], "annotations": anns,
                    "categories": [{"id": a["category_id"]} for a in anns]}
    coco.createIndex()
    return [coco.annToMask(a).astype(bool) for a in anns]


def validate_cli(path: Path) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["validate", str(path)])
    return res.exit_code, res.output


# ---------------------------------------------------------------------------------------- COCO


def cvat_coco_set(root: Path) -> list[dict]:
    """CVAT's COCO 1.0 layout: annotations/instances_default.json, images/ (polygons, an iscrowd
    uncompressed RLE as CVAT writes brush masks, a compressed RLE, two categories)."""
    for stem in ("f1", "f2", "f3"):
        image(root / "images" / f"{stem}.png")
    brush = np.zeros((H, W), np.uint8)
    brush[20:30, 40:55] = 1
    brush[25:28, 45:50] = 0  # a hole
    uncompressed, value = [0], 0  # run lengths, column-major, background first
    for v in brush.ravel(order="F").tolist():
        if v != value:
            uncompressed.append(0)
            value = v
        uncompressed[-1] += 1
    disk = np.zeros((H, W), np.uint8)
    cv2.circle(disk, (15, 30), 6, 1, -1)
    comp = mask_util.encode(np.asfortranarray(disk))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [rect(2, 2, 12.5, 10)],
         "bbox": [2, 2, 10.5, 8], "area": 84},
        {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0,
         "segmentation": [[20, 5, 30, 5, 25, 15], rect(32, 2, 36, 6)], "bbox": [20, 2, 16, 13], "area": 60},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [H, W], "counts": uncompressed}, "bbox": [40, 20, 15, 10], "area": 135},
        {"id": 4, "image_id": 2, "category_id": 2, "iscrowd": 0,
         "segmentation": {"size": [H, W], "counts": comp["counts"].decode()}, "bbox": [9, 24, 13, 13], "area": 1},
    ]
    coco = {
        "images": [{"id": 1, "file_name": "f1.png", "height": H, "width": W},
                   {"id": 2, "file_name": "f2.png", "height": H, "width": W}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "rock", "supercategory": ""}, {"id": 2, "name": "pellet", "supercategory": ""}],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    return anns


def test_cvat_coco_polygons_rle_iscrowd(tmp_path):
    root = tmp_path / "cvat_coco"
    anns = cvat_coco_set(root)
    before = tree_hash(root)
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.stems == ["f1", "f2"] and [p.name for p in report.unlabeled] == ["f3.png"]
    assert any("f3.png" in n and "unlabeled" in n for n in report.notes)
    assert report.categories == ["pellet", "rock"] and report.info.object_name == "object"
    assert "CVAT COCO" in report.summary() and "pellet, rock" in report.summary()
    m1, m2 = (load_mask(p) for p in report.pairs)
    assert m1.dtype == np.int32 and m1.shape == (H, W)
    ref = reference_map(anns, H, W)
    assert instance_set(m1) == {np.packbits(m).tobytes() for m in ref[:3]}
    assert instance_set(m2) == {np.packbits(ref[3]).tobytes()}
    assert [int(m1[5, 5]), int(m1[8, 25]), int(m1[21, 41])] == [1, 2, 3]  # ids in annotation order
    assert m1[4, 34] == 2  # second polygon part belongs to the same object
    assert report.pairs[0].n_objects == 3
    assert tree_hash(root) == before


def test_category_choice_from_set_yaml(tmp_path):
    root = tmp_path / "cvat_coco"
    cvat_coco_set(root)
    (root / "set.yaml").write_text("categories: [pellet]\n")
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.categories == ["pellet"] and report.info.object_name == "pellet"
    assert load_mask(report.pairs[0]).max() == 1 and load_mask(report.pairs[1]).max() == 1
    (root / "set.yaml").write_text("categories: [pellet, slag]\n")
    errors = validate_set(root).errors
    assert len(errors) == 1 and "set.yaml" in errors[0] and "slag" in errors[0] and "pellet, rock" in errors[0]


def roboflow_split(folder: Path, stems: list[str], first_id: int = 1) -> None:
    """Roboflow's COCO export: _annotations.coco.json beside the images; category 0 is the project
    name as a supercategory placeholder no annotation uses."""
    images, anns = [], []
    for k, stem in enumerate(stems):
        folder.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / f"{stem}_jpg.rf.ab12.jpg"), np.full((H, W, 3), 90, np.uint8))
        images.append({"id": k, "file_name": f"{stem}_jpg.rf.ab12.jpg", "height": H, "width": W})
        anns.append({"id": first_id + k, "image_id": k, "category_id": 1, "iscrowd": 0,
                     "segmentation": [rect(5 + k, 5, 20 + k, 18)], "bbox": [5 + k, 5, 15, 13], "area": 195})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 0, "name": "ore-xyz", "supercategory": "none"},
                           {"id": 1, "name": "fragment", "supercategory": "ore-xyz"}]}
    (folder / "_annotations.coco.json").write_text(json.dumps(coco))


def test_roboflow_splits_and_single_split(tmp_path):
    root = tmp_path / "rf"
    roboflow_split(root / "train", ["a", "b"])
    roboflow_split(root / "valid", ["c"], first_id=10)
    before = tree_hash(root)
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.stems == ["a_jpg.rf.ab12", "b_jpg.rf.ab12", "c_jpg.rf.ab12"]
    assert report.categories == ["fragment"] and report.info.object_name == "fragment"
    assert not any("_annotations.coco.json" in n for n in report.notes)
    (img, mask), = load_pairs(report, ["c_jpg.rf.ab12"])
    assert img.shape == (H, W, 1) and mask.max() == 1  # equal RGB channels: a gray set and mask[10, 10] == 1
    single = validate_set(root / "train")  # a split folder on its own is a set too
    assert single.ok and single.stems == ["a_jpg.rf.ab12", "b_jpg.rf.ab12"]
    assert tree_hash(root) == before


# ------------------------------------------------------------------------------------- LabelMe


def labelme(path: Path, shapes: list[dict], h: int = H, w: int = W) -> None:
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": path.stem + ".png",
                                "imageData": None, "imageHeight": h, "imageWidth": w}))


def poly_shape(label, pts, group=None, kind="polygon") -> dict:
    return {"label": label, "points": pts, "group_id": group, "shape_type": kind, "flags": {}}


def test_labelme_beside_images(tmp_path):
    root = tmp_path / "lm"
    for stem in ("a", "b", "c"):
        image(root / "images" / f"{stem}.png")
    patch = np.zeros((5, 4), np.uint8)
    patch[1:4, 1:3] = 255
    ok, png = cv2.imencode(".png", patch)
    labelme(root / "images" / "a.json", [
        poly_shape("rock", [[2, 2], [12, 2], [12, 10], [2, 10]]),
        poly_shape("rock", [[20, 2], [26, 2], [26, 8]], group=1),
        poly_shape("rock", [[30, 2], [36, 2], [36, 8], [30, 8]], group=1),  # same group: one object
        poly_shape("pellet", [[45, 30], [49, 30]], kind="circle"),
        {**poly_shape("pellet", [[50, 5], [53, 9]], kind="mask"), "mask": base64.b64encode(png.tobytes()).decode()},
        poly_shape("rock", [[1, 30], [20, 30]], kind="line"),
    ])
    labelme(root / "images" / "b.json", [])
    before = tree_hash(root)
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.stems == ["a", "b"] and [p.name for p in report.unlabeled] == ["c.png"]
    assert any("b.png" in n and "LabelMe file with no shapes" in n and "negative" in n for n in report.notes)
    assert any("shape 6" in n and "not an area" in n for n in report.notes)
    mask = load_mask(report.pairs[0])
    assert mask.max() == 4 and mask[5, 5] == 1 and mask[3, 24] == mask[5, 33] == 2
    assert mask[30, 45] == 3 and (mask == 3).sum() > 40  # a disk of radius 4
    assert sorted(zip(*np.nonzero(mask == 4))) == [(y, x) for y in (6, 7, 8) for x in (51, 52)]
    assert load_mask(report.pairs[1]).max() == 0
    assert report.categories == ["pellet", "rock"]
    assert tree_hash(root) == before


# ------------------------------------------------------------------------------------ CVAT XML

CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>t</name><labels>
    <label><name>rock</name></label><label><name>pellet</name></label><label><name>crack</name></label>
  </labels></task></meta>
  <image id="0" name="frames/x1.png" width="60" height="40">
    <polygon label="rock" source="manual" occluded="0" points="2.0,2.0;12.0,2.0;12.0,10.0;2.0,10.0" z_order="0">
    </polygon>
    <mask label="pellet" source="manual" occluded="0" rle="3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3" left="30" top="20" width="13" height="15" z_order="0">
    </mask>
    <ellipse label="pellet" source="manual" occluded="0" cx="50" cy="8" rx="5" ry="3" rotation="0" z_order="0">
    </ellipse>
    <polyline label="crack" source="manual" occluded="0" points="1,30;20,35" z_order="0"></polyline>
    <tag label="rock" source="manual"></tag>
  </image>
  <image id="1" name="x2.png" width="60" height="40">
  </image>
</annotations>
"""


def test_cvat_xml(tmp_path):
    root = tmp_path / "cvat"
    for stem in ("x1", "x2"):
        image(root / "images" / f"{stem}.png")
    (root / "annotations.xml").write_text(CVAT_XML)
    before = tree_hash(root)
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.stems == ["x1", "x2"]
    assert any("x2.png" in n and "CVAT <image> with no shapes" in n for n in report.notes)
    assert any("<polyline> #1" in n and "not an area" in n for n in report.notes)
    mask = load_mask(report.pairs[0])
    assert mask.max() == 3 and mask[5, 5] == 1 and mask[8, 50] == 3
    # CVAT's mask code: row-major runs over its rectangle, background first
    runs = [3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3]
    crop = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(15, 13)
    assert np.array_equal(mask[20:35, 30:43] == 2, crop) and (mask == 2).sum() == crop.sum()
    assert report.categories == ["pellet", "rock"]
    assert tree_hash(root) == before


def test_cvat_xml_refusals(tmp_path):
    root = tmp_path / "cvat"
    image(root / "images" / "x1.png")
    (root / "annotations.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "boom">]>\n<annotations>&e;</annotations>')
    errors = validate_set(root).errors
    assert len(errors) == 1 and "DTD" in errors[0] and "annotations.xml" in errors[0]
    (root / "annotations.xml").write_text('<annotations><track id="0" label="rock"></track></annotations>')
    assert "CVAT for images 1.1" in validate_set(root).errors[0]
    (root / "annotations.xml").write_text("<annotations><image name='x1.png' width='60'")
    assert "not valid XML" in validate_set(root).errors[0]


# --------------------------------------------------------------------------------- overlap rule


@pytest.mark.parametrize("big_first", [True, False])
def test_overlap_smaller_on_top(tmp_path, big_first):
    root = tmp_path / "ov"
    image(root / "images" / "a.png")
    big = {"segmentation": [rect(5, 5, 35, 30)], "label": "big"}
    small = {"segmentation": [rect(10, 10, 18, 18)], "label": "small"}
    hidden = {"segmentation": [rect(20, 20, 24, 24)], "label": "hidden"}  # under two same-size smaller ones
    cover = {"segmentation": [rect(20, 20, 24, 24)], "label": "cover"}
    order = [big, small, hidden, cover] if big_first else [small, hidden, cover, big]
    anns = [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, **{"segmentation": o["segmentation"]}}
            for k, o in enumerate(order)]
    (root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}], "annotations": anns,
        "categories": [{"id": 1, "name": "rock"}]}))
    report = validate_set(root)
    assert report.ok, report.errors
    mask = load_mask(report.pairs[0])
    ids = {o["label"]: k + 1 for k, o in enumerate(order)}
    assert mask[14, 14] != mask[7, 7] and mask[7, 7] > 0  # small drawn over big
    # equal areas: file order, the later on top; the earlier vanishes, ids close up (1..3 in file order)
    assert mask.max() == 3 and report.pairs[0].n_objects == 3
    assert any(f"annotation {ids['hidden']}" in n and "entirely covered" in n for n in report.notes)
    expected = {"big": mask[7, 7], "small": mask[14, 14], "cover": mask[22, 22]}
    kept = [o["label"] for o in order if o["label"] != "hidden"]
    assert [expected[k] for k in kept] == [1, 2, 3]


# ---------------------------------------------------------------------------- bad annotations


def test_bad_annotations_one_line_each(tmp_path):
    root = tmp_path / "bad"
    for stem in ("ok", "neg", "extra", "broken"):
        image(root / "images" / f"{stem}.png")
    good = rect(2, 2, 10, 10)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [good]},
        {"id": 11, "image_id": 4, "category_id": 1, "segmentation": [[1, 1, 5, 5]]},  # 2 points
        {"id": 12, "image_id": 4, "category_id": 1, "segmentation": [rect(50, 30, 70, 35)]},  # outside
        {"id": 13, "image_id": 4, "category_id": 1, "segmentation": [good], "bbox": [-5, 2, 8, 8]},  # box outside
        {"id": 14, "image_id": 99, "category_id": 1, "segmentation": [good]},  # no such image
        {"id": 15, "image_id": 4, "category_id": 7, "segmentation": [good]},  # no such category
        {"id": 16, "image_id": 4, "category_id": 1, "segmentation": {"size": [10, 10], "counts": [100]}},
        {"id": 17, "image_id": 4, "category_id": 1, "segmentation": {"size": [H, W], "counts": [5, 5]}},
        {"id": 18, "image_id": 4, "category_id": 1, "segmentation": [], "bbox": [1, 1, 5, 5]},  # box only
        {"id": 19, "image_id": 4, "category_id": 1, "segmentation": {"size": [H, W], "counts": "!!"}},
    ]
    images = [{"id": 1, "file_name": "ok.png", "height": H, "width": W},
              {"id": 2, "file_name": "neg.png", "height": H, "width": W},
              {"id": 3, "file_name": "gone.png", "height": H, "width": W},
              {"id": 4, "file_name": "broken.png", "height": H, "width": W}]
    (root / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "rock"}]}))
    before = tree_hash(root)
    code, out = validate_cli(root)
    assert code != 0 and "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ") and "problem(s) found" not in line]
    expected = {
        "annotation 11": "needs at least 3", "annotation 12": "outside the 60x40 image",
        "annotation 13": "bbox", "annotation 14": "annotation for an image that is not there",
        "annotation 15": "category_id 7", "annotation 16": "does not match the 60x40 image",
        "annotation 17": "runs cover 10 pixels", "annotation 18": "box only",
        "annotation 19": "RLE compressed counts", "gone.png": "annotation for an image that is not there",
    }
    for key, problem in expected.items():
        hits = [e for e in errors if re.search(rf"{re.escape(key)}\b", e) and problem in e]
        assert len(hits) == 1, (key, problem, errors)
        assert "annotations.json" in hits[0]
    assert len(errors) == len(expected)
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert any("neg.png" in n and "COCO image entry with no annotations" in n and "empty (negative)" in n for n in notes)
    assert any("extra.png" in n and "no entry" in n and "unlabeled" in n for n in notes)
    assert tree_hash(root) == before


def test_several_label_sources_refused(tmp_path):
    root = tmp_path / "two"
    image(root / "images" / "a.png")
    write_png(root / "masks" / "a.png", np.zeros((H, W), np.uint8))
    (root / "annotations.json").write_text("{}")
    errors = validate_set(root).errors
    assert len(errors) == 1 and "keep one label source" in errors[0]


# --------------------------------------------------------------------------------- round trip


def test_export_import_export_round_trip(tmp_path):
    from tests.test_coco import labeled_masks

    src = tmp_path / "set"
    rng = np.random.default_rng(0)
    for stem, mask in labeled_masks().items():
        write_png(src / "images" / f"{stem}.png", (rng.random(mask.shape) * 255).astype(np.uint8))
        write_png(src / "masks" / f"{stem}.png", mask)
    big = np.zeros((64, 48), np.uint16)  # many touching instances, an object in two pieces, borders
    big[0:20, 0:48] = 1
    for k in range(2, 40):
        y, x = divmod(k, 8)
        big[20 + 5 * y : 24 + 5 * y, 6 * x : 6 * x + 6] = k
    big[60:64, 0:3] = 50
    big[60:64, 45:48] = 50
    write_png(src / "images" / "c.png", (rng.random(big.shape) * 255).astype(np.uint8))
    write_png(src / "masks" / "c.png", big)
    (src / "set.yaml").write_text("object_name: seed\n")
    runner = CliRunner()
    assert runner.invoke(app, ["export-coco", str(src), str(tmp_path / "coco1"), "--no-progress"]).exit_code == 0
    before = tree_hash(tmp_path / "coco1")
    raster, imported = validate_set(src), validate_set(tmp_path / "coco1")
    assert imported.ok, imported.errors
    assert imported.stems == raster.stems and imported.info.object_name == "seed"
    for a, b in zip(raster.pairs, imported.pairs):
        assert np.array_equal(load_mask(a), load_mask(b)), a.stem  # same ids too, not only same shapes
    res = runner.invoke(app, ["export-coco", str(tmp_path / "coco1"), str(tmp_path / "coco2"), "--no-progress"])
    assert res.exit_code == 0, res.output
    one, two = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in ("coco1", "coco2"))
    for key in ("images", "annotations", "categories"):
        assert one[key] == two[key], key
    for stem in raster.stems:
        assert (tmp_path / "coco1/images" / f"{stem}.png").read_bytes() == (tmp_path / "coco2/images" / f"{stem}.png").read_bytes()
    assert tree_hash(tmp_path / "coco1") == before


# --------------------------------------------------------------------------------------- RLE code


def test_rle_runs_match_pycocotools():
    rng = np.random.default_rng(3)
    for t in range(200):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        m = (rng.random((h, w)) < [0.0, 1.0, 0.1, 0.5, 0.9][t % 5]).astype(np.uint8)
        runs = counts_from_string(mask_util.encode(np.asfortranarray(m))["counts"])
        assert int(runs.sum()) == h * w
        assert np.array_equal(paint(h, w, [runs], [0]), m.astype(np.int32))


def test_label_studio_and_cvat_subset_layouts(tmp_path):
    """Label Studio: result.json whose file_name carries folders (Windows separators too);
    newer CVAT: images/<subset>/ beside annotations/instances_<subset>.json."""
    ls = tmp_path / "ls"
    image(ls / "images" / "5f3c2a1b-img001.png")
    coco = {"images": [{"id": 7, "file_name": "images\\5f3c2a1b-img001.png", "height": H, "width": W}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 0, "segmentation": [rect(3, 3, 9, 9)]}],
            "categories": [{"id": 0, "name": "pellet"}]}
    (ls / "result.json").write_text(json.dumps(coco))
    report = validate_set(ls)
    assert report.ok, report.errors
    assert report.stems == ["5f3c2a1b-img001"] and "Label Studio" in report.label_format
    assert validate_set(ls, check_pixels=False).stems == report.stems

    cvat = tmp_path / "cvat"
    cvat_coco_set(cvat)
    (cvat / "images" / "default").mkdir()
    for f in ("f1.png", "f2.png", "f3.png"):
        (cvat / "images" / f).rename(cvat / "images" / "default" / f)
    report = validate_set(cvat)
    assert report.ok, report.errors
    assert report.stems == ["f1", "f2"] and report.pairs[0].image.parent.name == "default"


def test_degenerate_outline_is_a_note_and_image_becomes_negative(tmp_path):
    root = tmp_path / "sliver"
    image(root / "images" / "a.png")
    (root / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 20, 10, 30, 10]]}],
        "categories": [{"id": 1, "name": "rock"}]}))
    report = validate_set(root)
    assert report.ok, report.errors
    assert any("annotation 5" in n and "covers no pixel" in n for n in report.notes)
    assert any("a.png" in n and "negative" in n for n in report.notes)
    assert report.pairs[0].n_objects == 0 and load_mask(report.pairs[0]).max() == 0
