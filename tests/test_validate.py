"""Labeled-set validation: every bad-input kind is named, one line each, no traceback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from pipeline.data.images import InputError, read_image, read_mask, to_instance_mask
from pipeline.data.labeled_set import load_pairs, make_splits, validate_set


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def _good_pair(root: Path, stem: str, size=(32, 40), ext=".png") -> None:
    img = (np.arange(size[0] * size[1]).reshape(size) % 251).astype(np.uint8)
    mask = np.zeros(size, np.uint8)
    mask[4:12, 4:12] = 255
    _png(root / "images" / f"{stem}{ext}", img)
    _png(root / "masks" / f"{stem}.png", mask)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def bad_set(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    _good_pair(root, "good")
    # corrupt image
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png IEND")
    _png(root / "masks" / "corrupt.png", np.zeros((8, 8), np.uint8))
    # truncated JPEG
    _png(root / "masks" / "trunc.png", np.zeros((32, 40), np.uint8))
    ok, buf = cv2.imencode(".jpg", np.full((32, 40), 120, np.uint8))
    (root / "images" / "trunc.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    # mask without image, image without mask
    _png(root / "masks" / "orphanmask.png", np.zeros((32, 40), np.uint8))
    _png(root / "images" / "orphanimage.png", np.zeros((32, 40), np.uint8))
    # size mismatch
    _png(root / "images" / "mismatch.png", np.zeros((32, 40), np.uint8))
    _png(root / "masks" / "mismatch.png", np.zeros((30, 40), np.uint8))
    # float mask and negative mask (TIFF)
    _png(root / "images" / "floatmask.png", np.zeros((16, 16), np.uint8))
    tifffile.imwrite(root / "masks" / "floatmask.tif", np.full((16, 16), 0.5, np.float32))
    _png(root / "images" / "negmask.png", np.zeros((16, 16), np.uint8))
    neg = np.zeros((16, 16), np.int16)
    neg[2, 2] = -3
    tifffile.imwrite(root / "masks" / "negmask.tif", neg)
    # too many instances (limit set to 5 below)
    _png(root / "images" / "crowded.png", np.zeros((32, 40), np.uint8))
    crowded = np.zeros((32, 40), np.uint16)
    for k in range(8):
        crowded[2:6, 2 + 4 * k : 4 + 4 * k] = k + 1
    _png(root / "masks" / "crowded.png", crowded)
    # duplicate stems with different extensions
    _good_pair(root, "dup")
    _png(root / "images" / "dup.bmp", np.zeros((32, 40), np.uint8))
    # symlink pointing outside the set
    outside = tmp_path / "outside.png"
    _png(outside, np.zeros((32, 40), np.uint8))
    os.symlink(outside, root / "images" / "escape.png")
    _png(root / "masks" / "escape.png", np.zeros((32, 40), np.uint8))
    # image over the size limit (limit set below)
    _png(root / "images" / "huge.png", np.zeros((200, 200), np.uint8))
    _png(root / "masks" / "huge.png", np.zeros((200, 200), np.uint8))
    # non-image file: ignored with a note
    (root / "images" / "README.txt").write_text("notes")
    return root


EXPECTED = {
    "corrupt.png": "unreadable or corrupt",
    "trunc.jpg": "truncated JPEG",
    "orphanmask.png": "mask without image",
    "orphanimage.png": "image without mask",
    "mismatch.png": "does not match image",
    "floatmask.tif": "floating-point",
    "negmask.tif": "negative",
    "crowded.png": "instances, over the limit",
    "dup.bmp": "duplicate stem",
    "escape.png": "symlink points outside",
    "huge.png": "over the limit",
}


def test_every_bad_file_is_named_once(bad_set: Path):
    report = validate_set(bad_set, max_pixels=20_000, max_instances=5)
    assert not report.ok
    for name, problem in EXPECTED.items():
        hits = [e for e in report.errors if f"/{name}:" in e and problem in e]
        assert hits, f"no error for {name} ({problem}); got {report.errors}"
    assert all("\n" not in e for e in report.errors)
    assert any("README.txt" in n and "ignored" in n for n in report.notes)
    assert report.stems == ["good"]


def test_cli_validate_exits_nonzero_without_traceback(bad_set: Path):
    before = _tree_hash(bad_set)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "validate", str(bad_set), "--max-pixels", "20000", "--max-instances", "5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    for name in EXPECTED:
        assert name in proc.stderr
    assert _tree_hash(bad_set) == before  # validation never alters user data


def test_empty_set_and_missing_folder(tmp_path: Path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    assert any("empty set" in e for e in validate_set(tmp_path / "empty").errors)
    (tmp_path / "nomasks" / "images").mkdir(parents=True)
    assert any("missing folder" in e for e in validate_set(tmp_path / "nomasks").errors)
    assert any("no such" in e for e in validate_set(tmp_path / "absent").errors)


def test_set_yaml_unknown_key_and_bad_test_list(tmp_path: Path):
    root = tmp_path / "s"
    _good_pair(root, "a")
    (root / "set.yaml").write_text("display_name: x\ncolour: red\n")
    assert any("unknown key colour" in e for e in validate_set(root).errors)
    (root / "set.yaml").write_text("test: [a, zzz]\n")
    assert any("zzz" in e for e in validate_set(root).errors)


def test_binary_mask_becomes_instances_by_components():
    m = np.zeros((20, 20), np.uint8)
    m[1:5, 1:5] = 255
    m[10:15, 10:15] = 255
    inst = to_instance_mask(m)
    assert inst.dtype == np.int32 and inst.max() == 2


def test_instance_map_keeps_touching_objects_apart():
    m = np.zeros((20, 20), np.uint16)
    m[2:8, 2:6] = 7
    m[2:8, 6:10] = 300  # touches object 7
    inst = to_instance_mask(m)
    assert inst.max() == 2 and len(np.unique(inst[2:8, 2:10])) == 2


def test_colour_coded_mask():
    m = np.zeros((10, 10, 3), np.uint8)
    m[1:4, 1:4] = (255, 0, 0)
    m[5:9, 5:9] = (0, 255, 0)
    assert to_instance_mask(m).max() == 2


@pytest.mark.parametrize(
    "arr,channels,expect_shape,expect_max",
    [
        (np.full((8, 9), 65535, np.uint16), 1, (8, 9, 1), 1.0),
        (np.full((8, 9, 3), 255, np.uint8), 3, (8, 9, 3), 1.0),
        (np.dstack([np.full((8, 9, 3), 51, np.uint8), np.zeros((8, 9), np.uint8)]), 3, (8, 9, 3), 0.2),
    ],
)
def test_image_internal_form(tmp_path, arr, channels, expect_shape, expect_max):
    path = tmp_path / "x.png"
    _png(path, arr)
    img = read_image(path, channels)
    assert img.dtype == np.float32 and img.shape == expect_shape
    assert img.max() == pytest.approx(expect_max, abs=1e-6)


def test_gray_tiff_and_rgb_set_loads(tmp_path):
    root = tmp_path / "rgb"
    _good_pair(root, "g")
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[..., 2] = 200
    _png(root / "images" / "c.png", rgb)
    tifffile.imwrite(root / "masks" / "c.tif", np.ones((32, 40), np.uint16))
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.channels == 3
    (img_c, mask_c), (img_g, _) = load_pairs(report, ["c", "g"])
    assert img_c.shape == (32, 40, 3) and img_g.shape == (32, 40, 3)
    assert mask_c.max() == 1


def test_read_mask_error_names_file(tmp_path):
    with pytest.raises(InputError, match="nothere.png"):
        read_mask(tmp_path / "nothere.png")


def test_splits_deterministic_and_disjoint():
    stems = [f"s{i:03d}" for i in range(150)]
    a = make_splits(stems, 100, 20, None, seed=3)
    b = make_splits(list(reversed(stems)), 100, 20, None, seed=3)
    assert a == b
    assert len(a["train"]) == 100 and len(a["val"]) == 20 and len(a["test"]) == 30
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    assert make_splits(stems, 100, 20, None, seed=4) != a


def test_fixed_test_list_wins():
    stems = [f"s{i:03d}" for i in range(40)]
    sp = make_splits(stems, 100, 20, None, seed=0, fixed_test=["s001", "s002"])
    assert sp["test"] == ["s001", "s002"]
    assert "s001" not in sp["train"] + sp["val"] and sp["train"]


def test_real_sets_validate(emps_dir, tiles_dir):
    emps = validate_set(emps_dir, check_pixels=False)
    assert emps.ok and len(emps.pairs) == 461
    tiles = validate_set(tiles_dir, check_pixels=False)
    assert tiles.ok and len(tiles.pairs) == 1344
