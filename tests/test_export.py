"""Model export: ONNX and TorchScript files agree with PyTorch on inputs of several sizes, model.json
says how to use them, and bad input gives a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures.seg_data import tiny_checkpoint
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.segmentation.training import load_segmentation_model, normalize

SIZES = [(1, 64, 64), (2, 96, 128)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", in_channels=1, target="boundary")


def reference(checkpoint, x: torch.Tensor) -> np.ndarray:
    """What the pipeline computes: sigmoid(network(normalize(x)))."""
    model, _ = load_segmentation_model(checkpoint, "cpu")
    with torch.inference_mode():
        return torch.sigmoid(model(normalize(x))).numpy()


def random_inputs():
    gen = torch.Generator().manual_seed(123)
    return [torch.rand(n, 1, h, w, generator=gen) for n, h, w in SIZES]


@pytest.mark.slow  # ~30 s on the 2-core CPU: ONNX export + onnxruntime parity
def test_onnx_export_matches_pytorch(checkpoint, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "exported"
    res = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--min-area", "17"])
    assert res.exit_code == 0, res.output
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    dims = session.get_inputs()[0].shape
    assert isinstance(dims[0], str) and isinstance(dims[2], str) and isinstance(dims[3], str)  # dynamic N, H, W
    for x in random_inputs():
        got = session.run(None, {"image": x.numpy()})[0]
        want = reference(checkpoint, x)
        assert got.shape == want.shape == (x.shape[0], 2, x.shape[2], x.shape[3])
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)

    info = json.loads((out / "model.json").read_text())
    assert info["normalization"] == {"inside_model": True, "formula": "(x - 0.5) / 0.25", "mean": 0.5, "std": 0.25}
    assert info["input"]["value_range"] == [0.0, 1.0] and info["input"]["height_width_multiple_of"] == 32
    assert info["architecture"] == {"arch": "Linknet", "encoder": "tu-mobilenetv3_small_050", "in_channels": 1, "classes": 2}
    assert info["postprocess"]["target"] == "boundary" and info["postprocess"]["min_object_area"] == 17
    assert len(info["output"]["channels"]) == 2 and info["opset"] >= 17
    assert info["tiling"]["tile"] == 1024 and info["tiling"]["overlap"] == 128
    assert info["verified"]["max_abs_diff"] <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_matches_pytorch(checkpoint, tmp_path):
    path = tmp_path / "net.ts"
    res = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "torchscript", "--out", str(path)])
    assert res.exit_code == 0, res.output
    loaded = torch.jit.load(str(path))
    for x in random_inputs():
        with torch.inference_mode():
            got = loaded(x).numpy()
        np.testing.assert_allclose(got, reference(checkpoint, x), atol=1e-4, rtol=0)
    info = json.loads((tmp_path / "net.json").read_text())
    assert info["format"] == "torchscript" and info["file"] == "net.ts"
    assert info["postprocess"]["min_object_area"] == 8  # bare checkpoint, "auto" config: the fallback


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "{tmp}/missing.pt"], "no such checkpoint file or run folder"),
        (["export", "{tmp}/garbage.pt"], "cannot load segmentation checkpoint"),
        (["export", "{tmp}/garbage.pt", "--format", "tflite"], "--format tflite"),
        (["export", "{tmp}", "--format", "onnx"], "not a run folder"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, args, message):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_second_format_into_same_folder_is_refused(checkpoint, tmp_path):
    (tmp_path / "model.ts").write_bytes(b"x")
    (tmp_path / "model.json").write_text('{"file": "model.ts"}')
    res = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "already describes model.ts" in res.output and not (tmp_path / "model.onnx").exists()
