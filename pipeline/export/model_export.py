"""Export a segmentation checkpoint as ONNX or TorchScript, with a ``model.json`` that says how to use it.

The exported graph takes the internal image form directly (float32 ``N x C x H x W`` in [0, 1]; H and W
multiples of 32) and returns sigmoid probabilities: the input normalization and the sigmoid are part
of the graph, so a consumer cannot get them wrong. What stays outside (padding, tiling, turning
probabilities into instances) is written to ``model.json`` with the exact parameters the pipeline
uses. After writing, the file is loaded back with its runtime and compared with PyTorch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..io import atomic_path, write_json
from ..segmentation.training import (
    INPUT_MEAN,
    INPUT_STD,
    TILE,
    TILE_OVERLAP,
    load_segmentation_model,
    normalize,
)
from .model_source import ModelSource

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
OPSET = 18
SIZE_MULTIPLE = 32
CHECK_SIZES = ((1, 64, 64), (2, 96, 128))  # (batch, H, W): two shapes, so a graph fixed to one fails
CHANNEL_MEANING = {
    "boundary": ["object interior probability", "object boundary probability"],
    "binary": ["object (foreground) probability"],
}
POSTPROCESS_TEXT = {
    "boundary": (
        "seeds = 4-connected components of (p0 > fg_threshold) & (p1 < boundary_threshold); "
        "watershed on -p0 from the seeds, restricted to (p0 > fg_threshold) | (p1 > boundary_threshold) "
        "| seeds, 4-connectivity; drop objects with area < min_object_area; relabel 1..N"
    ),
    "binary": "4-connected components of p0 > fg_threshold; drop objects with area < min_object_area; relabel 1..N",
}


class ProbabilityModel(nn.Module):
    """[0, 1] image -> probabilities: the network with its fixed input scaling and sigmoid."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(normalize(image)))


def output_path(model_arg: Path, fmt: str, out: Path | None) -> Path:
    """``--out`` as a file (``*.onnx``/``*.ts``) or a folder (gets ``model.<ext>``); default: an
    ``export/`` folder beside the checkpoint, or inside the run folder."""
    ext = FORMATS[fmt]
    if out is None:
        base = model_arg if model_arg.is_dir() else model_arg.parent
        return base / "export" / f"model{ext}"
    if out.suffix.lower() in (".onnx", ".ts", ".pt", ".pth"):
        return out
    return out / f"model{ext}"


def _export_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path) -> str:
    """ONNX with dynamic batch, height and width (height/width as 32 * k); returns the exporter used."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    shapes = {"image": {0: batch, 2: SIZE_MULTIPLE * Dim("height_div32", min=1, max=2048),
                        3: SIZE_MULTIPLE * Dim("width_div32", min=1, max=2048)}}
    with atomic_path(path) as tmp:
        try:
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=True, dynamic_shapes=shapes, opset_version=OPSET,
                              input_names=["image"], output_names=["probabilities"], verbose=False,
                              external_data=False)
            exporter = "torch.export (dynamo)"
        except Exception as e:  # noqa: BLE001 -- some architectures do not trace with torch.export yet
            warnings.warn(f"torch.export-based ONNX export failed ({type(e).__name__}); using the TorchScript exporter")
            axes = {"image": {0: "batch", 2: "height", 3: "width"}, "probabilities": {0: "batch", 2: "height", 3: "width"}}
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, dynamic_axes=axes, opset_version=OPSET,
                              input_names=["image"], output_names=["probabilities"])
            exporter = "torchscript (legacy)"
    import onnx

    onnx.checker.check_model(str(path))
    return exporter


def _export_torchscript(wrapper: nn.Module, example: torch.Tensor, path: Path) -> str:
    traced = torch.jit.trace(wrapper, example, check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return "torch.jit.trace"


def _check_parity(wrapper: nn.Module, path: Path, fmt: str, channels: int) -> dict:
    """Largest |exported - PyTorch| over random inputs of two shapes, run by the file's own runtime."""
    gen = torch.Generator().manual_seed(0)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"image": x.numpy()})[0]
        runtime = f"onnxruntime {ort.__version__}"
    else:
        loaded = torch.jit.load(str(path), map_location="cpu")
        run = lambda x: loaded(x).numpy()
        runtime = f"torch.jit {torch.__version__}"
    worst = 0.0
    with torch.inference_mode():
        for n, h, w in CHECK_SIZES:
            x = torch.rand(n, channels, h, w, generator=gen)
            worst = max(worst, float(np.abs(run(x) - wrapper(x).numpy()).max()))
    return {"runtime": runtime, "shapes": [[n, channels, h, w] for n, h, w in CHECK_SIZES], "max_abs_diff": worst}


def _refuse_clobbering_other_export(path: Path) -> None:
    """``model.onnx`` and ``model.ts`` in one folder would share ``model.json``; re-exporting the same
    file is fine, describing another one is refused."""
    info_file = path.with_suffix(".json")
    if info_file.is_file():
        try:
            described = json.loads(info_file.read_text()).get("file")
        except (ValueError, AttributeError):
            described = None
        if described and described != path.name and (path.parent / described).exists():
            raise InputError(f"{info_file}: already describes {described}; export into another --out folder")


def export_model(source: ModelSource, fmt: str, path: Path, tolerance: float = 1e-4) -> dict:
    """Write the model file and ``<name>.json`` beside it; returns the JSON content."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    net, meta = load_segmentation_model(source.checkpoint, "cpu", channels_last=False)
    wrapper = ProbabilityModel(net).eval()
    channels, kind = int(meta["in_channels"]), meta["target"]
    example = torch.rand(1, channels, 64, 64, generator=torch.Generator().manual_seed(0))
    path = Path(path)
    _refuse_clobbering_other_export(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit deprecation notices
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            exporter = _export_onnx(wrapper, example, path) if fmt == "onnx" else _export_torchscript(wrapper, example, path)
        parity = _check_parity(wrapper, path, fmt, channels)
    if not parity["max_abs_diff"] <= tolerance:
        raise InputError(f"{path}: exported model differs from PyTorch by {parity['max_abs_diff']:.2e} (> {tolerance:g})")
    info = {
        "format": fmt,
        "file": path.name,
        "exporter": exporter,
        "opset": OPSET if fmt == "onnx" else None,
        "torch": torch.__version__,
        "source": source.description,
        "architecture": {k: meta[k] for k in ("arch", "encoder", "in_channels", "classes")},
        "input": {
            "name": "image",
            "dtype": "float32",
            "layout": "NCHW",
            "shape": ["batch", channels, "height", "width"],
            "value_range": [0.0, 1.0],
            "channels": "1 = gray, 3 = RGB (in that order)",
            "scaling": "8-bit images / 255, 16-bit images / 65535; colour images to gray with "
                       "0.299 R + 0.587 G + 0.114 B when the model takes 1 channel",
            "height_width_multiple_of": SIZE_MULTIPLE,
            "padding": "reflect-pad bottom and right to a multiple of 32, crop the outputs back",
        },
        "normalization": {
            "inside_model": True,
            "formula": f"(x - {INPUT_MEAN}) / {INPUT_STD}",
            "mean": INPUT_MEAN,
            "std": INPUT_STD,
        },
        "output": {
            "name": "probabilities",
            "shape": ["batch", int(meta["classes"]), "height", "width"],
            "activation": "sigmoid, inside the model",
            "channels": CHANNEL_MEANING.get(kind, []),
        },
        "dynamic_axes": {
            "batch": "any >= 1",
            "height": f"any multiple of {SIZE_MULTIPLE}",
            "width": f"any multiple of {SIZE_MULTIPLE}",
        },
        "tiling": {
            "tile": TILE,
            "overlap": TILE_OVERLAP,
            "rule": f"images larger than {TILE} px on a side are cut into {TILE} px tiles overlapping by "
                    f"{TILE_OVERLAP} px (last tile flush with the edge); probabilities are blended with weights "
                    "rising linearly over the overlap",
        },
        "postprocess": {
            "target": kind,
            "fg_threshold": source.fg_threshold,
            "boundary_threshold": source.boundary_threshold,
            "min_object_area": source.min_object_area,
            "min_object_area_origin": source.min_area_origin,
            "algorithm": POSTPROCESS_TEXT.get(kind, ""),
        },
        "verified": {**parity, "tolerance": tolerance},
    }
    write_json(path.with_suffix(".json"), info)
    return info
