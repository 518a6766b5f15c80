"""Output folders are reused only for what they hold: `masks --out` and `generate --out` refuse a
folder made with other settings (one line, nothing replaced), and `generate` refuses a file that
is no checkpoint on one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_generators_base import toy_pairs
from test_generators_training import make_cfg
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import GenerationConfig
from pipeline.data.images import InputError
from pipeline.data.store import MaskStore
from pipeline.generators.generate import generate_pairs
from pipeline.generators.training_loop import train_generator

torch.set_num_threads(1)


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert "Traceback" not in output and "weights_only" not in output, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_masks_out_refuses_a_folder_of_other_masks(tmp_path):
    from pipeline.data.demo import render_demo_set

    demo = render_demo_set(tmp_path / "demo", n_images=8, size=64, seed=0)
    out = tmp_path / "masks"
    base = ["masks", "--set", str(demo), "--out", str(out), "--workers", "1", "--config", "smoke",
            "-o", "runtime.progress=false"]
    res = CliRunner().invoke(app, [*base, "--count", "3", "--size", "32", "--seed", "0"])
    assert res.exit_code == 0, res.output
    before = _tree(out)
    for extra, what in ((["--count", "4", "--size", "32", "--seed", "0"], "count 3 -> 4"),
                        (["--count", "3", "--size", "64", "--seed", "0"], "size 32 -> 64"),
                        (["--count", "3", "--size", "32", "--seed", "1"], "seed 0 -> 1")):
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code != 0
        line = _one_error_line(res.output)
        assert str(out) in line and what in line and "another --out" in line
        assert _tree(out) == before  # nothing replaced, the shape bank included
    res = CliRunner().invoke(app, [*base, "--count", "3", "--size", "32", "--seed", "0"])
    assert res.exit_code == 0 and "3 masks of 32x32" in res.output
    assert len(MaskStore(out)) == 3 and MaskStore(out)[0].shape == (32, 32)


@pytest.fixture(scope="module")
def ckpt_and_masks(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    ckpt = train_generator(make_cfg(steps=2), toy_pairs(4, 40, 40), d / "run", progress=False)
    store = MaskStore(d / "masks")
    store.write_shard(0, [m for _, m in toy_pairs(3, 40, 40, seed=3)], [{"index": i, "source": "placement"} for i in range(3)])
    store.finalize()
    return ckpt, store


def test_generate_reuse_check_includes_count(ckpt_and_masks, tmp_path):
    ckpt, masks = ckpt_and_masks
    cfg = GenerationConfig(count=4, styles_per_mask=1, shard_size=8, batch_size=4, seed=0)
    out = tmp_path / "pairs"
    assert len(generate_pairs(ckpt, masks, out, cfg, progress=False)) == 4
    with pytest.raises(InputError, match=r"other settings \(count 4 -> 6\)"):
        generate_pairs(ckpt, masks, out, cfg.model_copy(update={"count": 6}), progress=False)
    assert len(generate_pairs(ckpt, masks, out, cfg, progress=False)) == 4  # same settings: reused


def test_generate_refuses_files_that_are_no_checkpoint_on_one_line(ckpt_and_masks, tmp_path):
    _, masks = ckpt_and_masks
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all\n" * 10)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": Path("/somewhere"), "cfg": GenerationConfig()}, pickled)  # needs full unpickling
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    for bad, why in ((garbage, "not a PyTorch file"), (pickled, "Python objects besides tensors"),
                     (plain, "not a generator checkpoint")):
        out = tmp_path / f"out_{bad.stem}"
        res = CliRunner().invoke(app, ["generate", "--checkpoint", str(bad), "--masks", str(masks.root), "--out", str(out),
                                       "--count", "2", "--config", "smoke", "runtime.progress=false", "runtime.device=cpu"])
        assert res.exit_code != 0
        line = _one_error_line(res.output)
        assert str(bad) in line and why in line
        assert not out.exists()  # refused before anything was written
