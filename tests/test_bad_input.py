"""Bad files judged by their whole content: corruption anywhere, trailing bytes, wrong format,
anti-aliased binary masks, symlinked folders. Every finding names its file; the C decoders print
nothing of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data.images import InputError, antialiased_binary, decode, to_instance_mask
from pipeline.data.labeled_set import validate_set


def _texture(h=96, w=96, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w)).astype(np.uint8), (5, 5), 0)


def _jpeg_bytes(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", arr)
    assert ok
    return buf.tobytes()


def _png_bytes(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def _set(root: Path, images: dict[str, bytes], size=(96, 96)) -> Path:
    """A set whose images/ hold the given bytes, each with a plain one-object mask."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros(size, np.uint8)
    mask[10:30, 10:30] = 255
    for name, data in images.items():
        (root / "images" / name).write_bytes(data)
        (root / "masks" / f"{Path(name).stem}.png").write_bytes(_png_bytes(mask))
    return root


def _mid_corrupt_jpeg() -> bytes:
    """Damage in the middle of the compressed data; the end-of-image marker is intact."""
    data = bytearray(_jpeg_bytes(_texture(128, 128)))
    mid = len(data) // 2
    data[mid : mid + 200] = bytes(200)  # zeroed sectors, as a failing disk or copy leaves them
    assert data.endswith(b"\xff\xd9")
    return bytes(data)


def test_jpeg_corrupt_in_the_middle_is_refused_and_named(tmp_path, capfd):
    path = tmp_path / "mid.jpg"
    path.write_bytes(_mid_corrupt_jpeg())
    with pytest.raises(InputError, match=r"mid\.jpg: corrupt JPEG"):
        decode(path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # libjpeg's own unnamed line does not reach the terminal


def test_jpeg_with_a_foreign_marker_in_the_data_is_refused(tmp_path):
    data = bytearray(_jpeg_bytes(_texture()))
    mid = len(data) // 2
    data[mid : mid + 4] = b"\xff\x12\x34\x56"
    path = tmp_path / "m.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"m\.jpg: corrupt JPEG data \(invalid marker"):
        decode(path)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_trailing_bytes_after_the_end_marker_are_accepted_with_a_note(tmp_path, capfd, fmt):
    arr = _texture()
    data = (_png_bytes(arr) if fmt == "png" else _jpeg_bytes(arr)) + b"\x00trailer written by some camera tool" * 3
    path = tmp_path / f"t.{fmt}"
    path.write_bytes(data)
    notes: list[str] = []
    out = decode(path, notes=notes)
    assert out.shape == (96, 96)
    assert any("t." + fmt in n and "bytes after the end" in n for n in notes)
    assert capfd.readouterr() == ("", "")


def test_truncated_and_damaged_png(tmp_path, capfd):
    data = _png_bytes(_texture())
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png: truncated PNG"):
        decode(tmp_path / "cut.png")
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    (tmp_path / "flip.png").write_bytes(bytes(bad))
    with pytest.raises(InputError, match=r"flip\.png: corrupt PNG \(checksum error in the IDAT chunk"):
        decode(tmp_path / "flip.png")
    assert capfd.readouterr() == ("", "")  # no "libpng error: ..." line


def test_another_threads_log_line_during_a_decode_is_not_the_files_damage(tmp_path, capfd, monkeypatch):
    """A Dask worker logged "... WARNING ... CancelledError" while a good PNG was being decoded and
    the PNG was called corrupt. Time-stamped log lines and tracebacks written to stderr meanwhile are
    other threads' output: passed on to stderr, never attributed to the file."""
    import pipeline.data.images as images

    (tmp_path / "good.png").write_bytes(_png_bytes(_texture()))
    real = images.cv2.imdecode
    lines = [b"00:42:06.437 | ERROR   | Task run failed: corrupt state, CancelledError\n",
             b"2026-12-01 00:42:06,427 - distributed.worker - WARNING - Async instruction ended with CancelledError\n",
             b"Traceback (most recent call last): error\n"]

    def noisy_imdecode(buf, flags):
        for line in lines:
            os.write(2, line)
        return real(buf, flags)

    monkeypatch.setattr(images.cv2, "imdecode", noisy_imdecode)
    arr = decode(tmp_path / "good.png")
    assert arr.shape[:2] == _texture().shape[:2]
    err = capfd.readouterr().err
    assert all(line.decode().strip() in err for line in lines)


def test_file_content_must_match_its_extension(tmp_path):
    (tmp_path / "j.png").write_bytes(_jpeg_bytes(_texture()))
    with pytest.raises(InputError, match=r"j\.png: not a PNG file \(looks like JPEG data\)"):
        decode(tmp_path / "j.png")
    (tmp_path / "t.png").write_text("just some notes, not an image\n")
    with pytest.raises(InputError, match=r"t\.png: not an image file \(looks like text\)"):
        decode(tmp_path / "t.png")
    (tmp_path / "p.jpg").write_bytes(_png_bytes(_texture()))
    with pytest.raises(InputError, match=r"p\.jpg: not a JPEG file \(looks like PNG data\)"):
        decode(tmp_path / "p.jpg")


def test_cli_validate_names_every_damaged_file_and_prints_no_unnamed_line(tmp_path):
    good = _jpeg_bytes(_texture())
    root = _set(tmp_path / "s", {
        "good.jpg": good,
        "mid.jpg": _mid_corrupt_jpeg(),
        "tail.jpg": good + b"extra",
        "fake.png": good,
    })
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "validate", str(root)], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert all(ln.startswith(("error:", "note:", "ok:")) for ln in lines), lines
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert any("mid.jpg: corrupt JPEG" in ln for ln in errors)
    assert any("fake.png: not a PNG file (looks like JPEG data)" in ln for ln in errors)
    assert not any("tail.jpg" in ln for ln in errors)
    assert any("tail.jpg" in ln and "bytes after the end" in ln for ln in lines if ln.startswith("note:"))


# --- anti-aliased / resized binary masks -------------------------------------------------------


def _aa_circles() -> np.ndarray:
    m = np.zeros((128, 128), np.uint8)
    cv2.circle(m, (40, 40), 20, 255, -1, lineType=cv2.LINE_AA)
    cv2.circle(m, (90, 84), 25, 255, -1, lineType=cv2.LINE_AA)
    return m


def test_antialiased_binary_mask_is_read_as_binary_with_a_note():
    m = _aa_circles()
    assert len(np.unique(m)) > 20  # read naively it would be >20 instances
    notes: list[str] = []
    inst = to_instance_mask(m, "masks/c.png", notes=notes)
    assert inst.max() == 2
    assert abs(int((inst > 0).sum()) - int((m >= 128).sum())) == 0
    assert len(notes) == 1 and "masks/c.png" in notes[0] and "anti-aliased" in notes[0]


def test_resized_binary_mask_is_read_as_binary():
    b = np.zeros((64, 64), np.uint8)
    b[10:30, 10:30] = 255
    b[40:60, 35:55] = 255
    for interp in (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA):
        r = cv2.resize(b, (100, 100), interpolation=interp)
        assert to_instance_mask(r).max() == 2, interp


def test_validate_reports_the_antialiased_mask(tmp_path):
    root = tmp_path / "aa"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "c.png").write_bytes(_png_bytes(_texture(128, 128)))
    (root / "masks" / "c.png").write_bytes(_png_bytes(_aa_circles()))
    report = validate_set(root)
    assert report.ok, report.errors
    assert report.pairs[0].n_objects == 2
    assert any("c.png" in n and "anti-aliased" in n for n in report.notes)


def test_real_instance_maps_are_not_taken_for_antialiased_masks(tmp_path):
    from pipeline.data.demo import render_demo_set

    render_demo_set(tmp_path / "demo", n_images=12, size=128, seed=0)
    for p in sorted((tmp_path / "demo" / "masks").iterdir()):
        assert antialiased_binary(decode(p)) == 0, p
    # touching instances, one large object with the highest id and small solid ones
    m = np.zeros((64, 64), np.uint16)
    m[5:60, 5:60] = 9
    m[10:16, 10:16] = 3
    m[20:25, 20:26] = 4
    m[40:44, 58:62] = 5
    assert antialiased_binary(m) == 0 and to_instance_mask(m).max() == 4


def test_emps_instance_maps_are_not_flagged(emps_dir):
    for p in sorted((emps_dir / "masks").iterdir())[:120]:
        assert antialiased_binary(decode(p)) == 0, p


# --- set layout ---------------------------------------------------------------------------------


def test_symlinked_folder_out_of_the_set_is_refused_like_a_symlinked_file(tmp_path):
    elsewhere = _set(tmp_path / "elsewhere", {"a.png": _png_bytes(_texture())})
    root = tmp_path / "s"
    root.mkdir()
    os.symlink(elsewhere / "images", root / "images")
    (root / "masks").mkdir()
    (root / "masks" / "a.png").write_bytes((elsewhere / "masks" / "a.png").read_bytes())
    report = validate_set(root)
    assert not report.ok
    assert any(e.startswith(f"{root / 'images'}: symlink points outside the set") for e in report.errors)
    # a folder symlink that stays inside the set is fine
    inside = tmp_path / "t"
    _set(inside / "raw", {"a.png": _png_bytes(_texture())})
    os.symlink("raw/images", inside / "images")
    os.symlink("raw/masks", inside / "masks")
    assert validate_set(inside).ok


def test_duplicate_stem_is_one_error_not_also_an_orphan(tmp_path):
    root = _set(tmp_path / "s", {"a.png": _png_bytes(_texture()), "b.png": _png_bytes(_texture())})
    (root / "images" / "a.bmp").write_bytes(cv2.imencode(".bmp", _texture())[1].tobytes())
    report = validate_set(root)
    assert sum("duplicate stem 'a'" in e for e in report.errors) == 2
    assert not any("without image" in e or "without mask" in e for e in report.errors), report.errors
    assert report.stems == ["b"]


def test_a_damaged_json_file_of_a_run_is_one_line_naming_it(tmp_path):
    """run.json, stages.json, metrics.json...: a hand edit or a full disk must not end every
    command that reads the folder in a traceback."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.errors import InputError
    from pipeline.io import read_json

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "stages.json").write_text('[{"stage": "segmentation real_only",')
    with pytest.raises(InputError, match=r"stages.json: not valid JSON at line 1"):
        read_json(tmp_path / "a" / "stages.json")
    for args in (["compare", str(tmp_path / "a"), str(tmp_path / "a")], ["report", str(tmp_path / "a")]):
        (tmp_path / "a" / "results.csv").write_text("row\n")  # report gets as far as the JSON files
        (tmp_path / "a" / "config.yaml").write_text("{}\n")
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "stages.json: not valid JSON at line 1" in result.output, result.output
