"""`predict` keeps the same pixel limit as validation (config data.max_image_pixels, --max-pixels),
checked from the header; the process keeps Pillow's decompression-bomb guard on."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from fixtures.seg_data import tiny_checkpoint
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export.model_source import resolve_model
from pipeline.io import write_png


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bomb_png(width: int, height: int) -> bytes:
    """A well-formed, tiny PNG whose header announces width x height gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def test_pillow_bomb_guard_stays_on():
    import PIL.Image

    import pipeline.data.images  # noqa: F401  (importing it used to switch the guard off)

    assert PIL.Image.MAX_IMAGE_PIXELS is not None


def test_predict_default_limit_is_the_config_one(checkpoint, tmp_path):
    assert resolve_model(checkpoint).max_image_pixels == 40_000_000
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  max_image_pixels: 5000\n")
    assert resolve_model(checkpoint, config=str(cfg)).max_image_pixels == 5000


def test_predict_skips_images_over_the_limit_on_one_line(checkpoint, tmp_path):
    images = tmp_path / "images"
    write_png(images / "small.png", np.full((64, 64), 90, np.uint8))
    write_png(images / "large.png", np.full((100, 100), 90, np.uint8))
    (images / "bomb.png").write_bytes(_bomb_png(30_000, 30_000))  # 900 MP announced, a few hundred bytes
    out = tmp_path / "pred"
    base = ["predict", str(checkpoint), str(images), str(out), "--tile", "64", "--min-area", "1", "--no-progress",
            "--device", "cpu"]
    res = CliRunner().invoke(app, base)  # default limit: 40 MP, only the bomb is refused
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "DecompressionBomb" not in res.output
    bomb = [ln for ln in res.output.splitlines() if "bomb.png" in ln]
    assert len(bomb) == 1 and "over the limit of 40,000,000" in bomb[0] and bomb[0].startswith("skipped: ")
    assert "1 image(s) skipped" in res.output

    res = CliRunner().invoke(app, [*base, "--max-pixels", "5000"])
    assert res.exit_code == 0, res.output
    large = [ln for ln in res.output.splitlines() if "large.png" in ln]
    assert len(large) == 1 and "100x100 = 10,000 pixels, over the limit of 5,000" in large[0]
    assert "2 image(s) skipped" in res.output

    res = CliRunner().invoke(app, [*base, "--max-pixels", "0"])
    assert res.exit_code != 0 and "--max-pixels 0" in res.output and "Traceback" not in res.output
