"""The shared hash recipes: stable, order-independent where they should be, and unchanged from the
recipes they replaced (so existing cached stage outputs stay valid)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.hashing import file_hash, files_hash, json_hash


def test_json_hash_ignores_key_order_and_matches_the_old_cache_key_recipe():
    a, b = {"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}
    assert json_hash(a) == json_hash(b) and len(json_hash(a)) == 16
    old = hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()[:16]
    assert json_hash(a) == old
    assert json_hash({"p": Path("a/b")}) == json_hash({"p": "a/b"})  # paths hash as their text


def test_file_hash_streams_and_matches_sha256(tmp_path):
    f = tmp_path / "ckpt.pt"
    data = bytes(range(256)) * 9000  # > 1 MiB chunk
    f.write_bytes(data)
    assert file_hash(f) == hashlib.sha256(data).hexdigest()
    assert file_hash(f, 12) == hashlib.sha256(data).hexdigest()[:12]


def test_files_hash_changes_with_content_and_names(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    h = files_hash(tmp_path, [tmp_path / "a.py"])
    (tmp_path / "a.py").write_text("x = 2\n")
    assert files_hash(tmp_path, [tmp_path / "a.py"]) != h
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    (tmp_path / "a.py").write_text("x = 1\n")
    assert files_hash(tmp_path, [tmp_path / "a.py"]) == h
    assert files_hash(tmp_path, [tmp_path / "b.py"]) != files_hash(tmp_path, [tmp_path / "a.py"])
