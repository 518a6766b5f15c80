"""Run-state bookkeeping and the set hash: never written into a set, follows the set's content."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from pipeline import stages
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
    assert stages.set_changed(cfg)
    stages.remember_set(cfg)
    assert not stages.set_changed(cfg)
    assert _snapshot(set_dir) == before
    state = [p for p in runs.rglob("*") if p.is_file()]
    assert state and all(p.resolve().is_relative_to(runs.resolve()) for p in state)
    assert not list(set_dir.rglob("last_finished.json"))


def test_same_name_other_folder_is_a_changed_set(tmp_path):
    a = _small_set(tmp_path / "a" / "s").resolve()
    b = _small_set(tmp_path / "b" / "s", n=1).resolve()
    runs = f"runtime.runs_dir={tmp_path / 'runs'}"
    stages.remember_set(load_config("smoke", [f"data.set={a}", runs]))
    assert stages.set_changed(load_config("smoke", [f"data.set={b}", runs]))
    assert not stages.set_changed(load_config("smoke", [f"data.set={a}", runs]))
