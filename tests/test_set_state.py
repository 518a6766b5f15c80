"""Run-state bookkeeping and the set hash: never written into a set, follows the set's content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from pipeline import context
from pipeline.config import load_config
from pipeline.data.sets import set_content_hash


def _small_set(root: Path, n: int = 2) -> Path:
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = (np.arange(24 * 20).reshape(24, 20) * (i + 1) % 251).astype(np.uint8)
        mask = np.zeros((24, 20), np.uint8)
        mask[3 + i : 9 + i, 4:10] = 255
        assert cv2.imwrite(str(root / "images" / f"s{i}.png"), img)
        assert cv2.imwrite(str(root / "masks" / f"s{i}.png"), mask)
    (root / "set.yaml").write_text("display_name: small\n")
    return root


def _snapshot(root: Path) -> dict:
    """Everything a user could notice: names, sizes, contents and modification times."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else None, st.st_mtime_ns, digest)
    out["."] = (None, root.stat().st_mtime_ns, None)
    return out


def test_last_finished_state_lives_under_runs_not_in_the_set(tmp_path):
    set_dir = _small_set(tmp_path / "user" / "myset").resolve()
    runs = tmp_path / "runs"
    cfg = load_config("smoke", [f"data.set={set_dir}", f"runtime.runs_dir={runs}"])
    before = _snapshot(set_dir)
    assert context.set_changed(cfg)
    context.remember_set(cfg)
    assert not context.set_changed(cfg)
    assert _snapshot(set_dir) == before
    state = [p for p in runs.rglob("*") if p.is_file()]
    assert state and all(p.resolve().is_relative_to(runs.resolve()) for p in state)
    assert not list(set_dir.rglob("last_finished.json"))


def test_same_name_other_folder_is_a_changed_set(tmp_path):
    a = _small_set(tmp_path / "a" / "s").resolve()
    b = _small_set(tmp_path / "b" / "s", n=1).resolve()
    runs = f"runtime.runs_dir={tmp_path / 'runs'}"
    context.remember_set(load_config("smoke", [f"data.set={a}", runs]))
    assert context.set_changed(load_config("smoke", [f"data.set={b}", runs]))
    assert not context.set_changed(load_config("smoke", [f"data.set={a}", runs]))


def test_set_hash_ignores_os_and_editor_files(tmp_path):
    root = _small_set(tmp_path / "s")
    h = set_content_hash(root)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "images" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "masks" / "Thumbs.db").write_bytes(b"thumbs")
    (root / "masks" / "s0.png~").write_bytes(b"backup")
    (root / "images" / ".s0.png.swp").write_bytes(b"swap")
    (root / "images" / "notes.txt").write_text("not read by the pipeline")
    (root / "images" / "old").mkdir()
    (root / "images" / "old" / "x.png").write_bytes(b"sub-folders are ignored")
    assert set_content_hash(root) == h


def test_set_hash_follows_content_not_size_and_mtime(tmp_path):
    root = _small_set(tmp_path / "s")
    h = set_content_hash(root)
    mask = root / "masks" / "s1.png"
    st = mask.stat()
    data = bytearray(mask.read_bytes())
    data[-20] ^= 0x01  # same size, one byte differs
    mask.write_bytes(bytes(data))
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mask.stat().st_size == st.st_size and mask.stat().st_mtime_ns == st.st_mtime_ns
    assert set_content_hash(root) != h


def test_set_hash_follows_renames_and_set_yaml(tmp_path):
    root = _small_set(tmp_path / "s")
    h = set_content_hash(root)
    (root / "images" / "s1.png").rename(root / "images" / "s9.png")
    h2 = set_content_hash(root)
    assert h2 != h
    (root / "set.yaml").write_text("display_name: other\n")
    assert set_content_hash(root) != h2
