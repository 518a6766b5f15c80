"""Predict instance masks for a folder of images and measure every object.

Writes into OUT_DIR (never into the image folder):

* ``masks/<stem>.png``      16-bit instance label map (0 = background, objects 1..N);
* ``overlays/<stem>.png``   the image with each object's contour in its own colour;
* ``objects.csv``           one row per object: area, equivalent diameter, bounding box, centroid
                            (pixels; also physical units when a pixel size is known);
* ``summary.csv``           one row per image: object count, equivalent-diameter mean and p10/p50/p90;
* ``size_distribution.png`` histogram of the equivalent diameters of all objects;
* ``predict.json``          the model and settings used (so a rerun knows whether it may resume).

An image that cannot be read is reported on one line and skipped; the rest of the folder goes on.
A rerun with the same model and settings reuses the masks already written (resume after Ctrl-C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..data.images import IMAGE_EXTS, decode, read_image
from ..data.labeled_set import SET_YAML_NAME, SetInfo
from ..drawing import draw_outlines, to_rgb8
from ..errors import InputError
from ..io import atomic_path, read_json, write_json, write_png
from .model_source import ModelSource

SETTINGS_FILE = "predict.json"
MASK_DIR, OVERLAY_DIR = "masks", "overlays"


@dataclass
class PixelSize:
    size: float
    unit: str
    origin: str


def find_pixel_size(images_dir: Path, pixel_size: float | None, pixel_unit: str | None) -> PixelSize | None:
    """--pixel-size wins; else a set.yaml in the image folder or the folder above it (a labeled set's
    ``images/`` sits inside the set folder) that gives ``pixel_size``."""
    if pixel_size is not None:
        if not pixel_size > 0:
            raise InputError(f"--pixel-size {pixel_size}: must be positive")
        return PixelSize(float(pixel_size), pixel_unit or "unit", "--pixel-size")
    for folder in (images_dir, images_dir.parent):
        f = folder / SET_YAML_NAME
        if f.is_file():
            try:
                info = SetInfo.model_validate(yaml.safe_load(f.read_text()) or {})
            except (OSError, yaml.YAMLError, ValueError) as e:  # pydantic's ValidationError is a ValueError
                raise InputError(f"{f}: cannot read pixel_size ({type(e).__name__})") from None
            if info.pixel_size:
                return PixelSize(info.pixel_size, pixel_unit or info.pixel_unit, str(f))
    return None


def list_images(images_dir: Path) -> tuple[list[Path], list[str]]:
    """Image files of a folder (not recursive), and one problem line per file we will not read."""
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: no such image folder")
    files, problems, stems = [], [], {}
    for p in sorted(images_dir.iterdir()):
        if p.name.startswith(".") or p.is_dir() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        if p.stem in stems:
            problems.append(f"{p}: same name as {stems[p.stem].name} (outputs are named by stem); skipped")
            continue
        stems[p.stem] = p
        files.append(p)
    return files, problems


def measure_objects(labels: np.ndarray, image_name: str, pixel: PixelSize | None) -> pd.DataFrame:
    """One row per object of an instance map; bbox is [x0, x1) x [y0, y1) in pixel indices."""
    from skimage.measure import regionprops_table

    props = regionprops_table(labels, properties=("label", "area", "equivalent_diameter_area", "bbox", "centroid"))
    frame = pd.DataFrame({
        "image": image_name,
        "object_id": props["label"],
        "area_px": props["area"].astype(np.int64),
        "equivalent_diameter_px": props["equivalent_diameter_area"],
        "bbox_x0": props["bbox-1"],
        "bbox_y0": props["bbox-0"],
        "bbox_x1": props["bbox-3"],
        "bbox_y1": props["bbox-2"],
        "centroid_x": props["centroid-1"],  # pixel-index coordinates (pixel centres are integers)
        "centroid_y": props["centroid-0"],
    })
    if pixel is not None:
        frame[f"area_{pixel.unit}2"] = frame["area_px"] * pixel.size**2
        frame[f"equivalent_diameter_{pixel.unit}"] = frame["equivalent_diameter_px"] * pixel.size
    return frame


def summarize_image(objects: pd.DataFrame, image_name: str, height: int, width: int, pixel: PixelSize | None) -> dict:
    row = {"image": image_name, "width": width, "height": height, "n_objects": len(objects)}
    columns = ["equivalent_diameter_px"] + ([f"equivalent_diameter_{pixel.unit}"] if pixel else [])
    for col in columns:
        d = objects[col].to_numpy(float)
        suffix = col.removeprefix("equivalent_diameter_")
        stats = {"mean": d.mean(), "p10": np.percentile(d, 10), "p50": np.percentile(d, 50),
                 "p90": np.percentile(d, 90)} if len(d) else dict.fromkeys(("mean", "p10", "p50", "p90"), math.nan)
        row.update({f"diameter_{k}_{suffix}": float(v) for k, v in stats.items()})
    return row


def draw_contours(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8 image with each object's inner boundary in its own colour (touching objects stay
    distinguishable)."""
    return draw_outlines(to_rgb8(image), labels)


def size_plot(objects: pd.DataFrame, n_images: int, out: Path, pixel: PixelSize | None) -> None:
    """Histogram of equivalent diameters; log-spaced bins when sizes span more than a decade, as
    particle and seed sizes usually do (a linear axis squeezes the small objects into one bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = f"equivalent_diameter_{pixel.unit}" if pixel else "equivalent_diameter_px"
    d = objects[col].to_numpy(float) if len(objects) else np.zeros(0)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if len(d):
        n_bins = min(60, max(10, int(np.sqrt(len(d)))))
        lo, hi = float(d.min()), float(d.max())
        log_axis = lo > 0 and hi / lo > 10
        bins = np.geomspace(lo, hi, n_bins + 1) if log_axis else n_bins
        ax.hist(d, bins=bins, color="#3a7ca5", edgecolor="white", linewidth=0.5)
        if log_axis:
            ax.set_xscale("log")
        med = float(np.median(d))
        ax.axvline(med, color="#d1495b", linestyle="--", linewidth=1.2, label=f"median {med:.3g}")
        ax.legend(frameon=False)
    ax.set_xlabel(f"equivalent diameter ({pixel.unit if pixel else 'px'})")
    ax.set_ylabel("objects")
    ax.set_title(f"{len(d)} objects in {n_images} images")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _settings(source: ModelSource, tile: int) -> dict:
    return {
        "checkpoint": str(Path(source.checkpoint).resolve()),
        "fg_threshold": source.fg_threshold,
        "boundary_threshold": source.boundary_threshold,
        "min_object_area": source.min_object_area,
        "tile": tile,
    }


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def predict_folder(
    source: ModelSource,
    images_dir: Path,
    out_dir: Path,
    device: str = "auto",
    tile: int | None = None,
    pixel: PixelSize | None = None,
    progress: bool = True,
    echo=print,
    max_pixels: int | None = None,
) -> dict:
    """Predict every image of ``images_dir`` into ``out_dir``; returns counts for the final message.

    Images over ``max_pixels`` (default: the config's ``data.max_image_pixels``, as validation
    uses) are skipped from their header, before a pixel is decoded: a decompression bomb or an
    accidental gigapixel scan would otherwise take all memory."""
    import torch
    from tqdm.auto import tqdm

    from ..device import pick_device
    from ..segmentation.postprocess import instances_from_probs
    from ..segmentation.training import TILE, load_segmentation_model, predict_probabilities

    images_dir, out_dir = Path(images_dir), Path(out_dir)
    tile = TILE if tile is None else int(tile)
    max_pixels = source.max_image_pixels if max_pixels is None else int(max_pixels)
    if max_pixels < 1:
        raise InputError(f"--max-pixels {max_pixels}: must be at least 1")
    if tile < 64 or tile % 32:
        raise InputError(f"--tile {tile}: must be a multiple of 32, at least 64")
    if out_dir.resolve() == images_dir.resolve() or out_dir.resolve().is_relative_to(images_dir.resolve()):
        raise InputError(f"{out_dir}: output folder is the image folder or inside it; choose another (inputs are never written to)")
    files, problems = list_images(images_dir)
    if not files:
        raise InputError(f"{images_dir}: no image files ({', '.join(sorted(IMAGE_EXTS))})")
    try:
        dev = pick_device(device)
    except RuntimeError as e:
        raise InputError(str(e)) from None
    model, meta = load_segmentation_model(source.checkpoint, dev)
    channels, kind = int(meta["in_channels"]), meta["target"]

    settings = _settings(source, tile)
    settings_file = out_dir / SETTINGS_FILE
    resume = settings_file.is_file() and {k: read_json(settings_file).get(k) for k in settings} == settings
    write_json(settings_file, {**settings, "model": source.description, "target": kind, "in_channels": channels,
                               "min_area_origin": source.min_area_origin, "images_dir": str(images_dir.resolve()),
                               "pixel_size": asdict(pixel) if pixel else None})
    for line in problems:
        echo(f"skipped: {line}")

    all_objects, summaries, skipped, reused = [], [], len(problems), 0
    for path in tqdm(files, desc="predict", unit="img", disable=not progress):
        mask_path, overlay_path = out_dir / MASK_DIR / f"{path.stem}.png", out_dir / OVERLAY_DIR / f"{path.stem}.png"
        try:
            image = read_image(path, channels, max_pixels)
            if resume and mask_path.is_file() and overlay_path.is_file():
                labels = decode(mask_path).astype(np.int32)  # written by us: ids kept as is
                reused += 1
            else:
                probs = predict_probabilities(model, image, dev, amp=source.amp, tile=tile)
                labels = instances_from_probs(probs, kind, source.fg_threshold, source.boundary_threshold,
                                              source.min_object_area)
                if labels.max() > np.iinfo(np.uint16).max:
                    raise InputError(f"{path}: {int(labels.max())} objects do not fit a 16-bit mask")
                write_png(mask_path, labels.astype(np.uint16))
                write_png(overlay_path, draw_contours(image, labels))
        except InputError as e:
            echo(f"skipped: {e}")
            skipped += 1
            continue
        except torch.OutOfMemoryError:
            echo(f"skipped: {path}: out of device memory; try a smaller --tile or --device cpu")
            skipped += 1
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            continue
        objects = measure_objects(labels, path.name, pixel)
        all_objects.append(objects)
        summaries.append(summarize_image(objects, path.name, image.shape[0], image.shape[1], pixel))

    objects = pd.concat(all_objects, ignore_index=True) if all_objects else measure_objects(
        np.zeros((1, 1), np.int32), "", pixel)
    _write_csv(out_dir / "objects.csv", objects)
    _write_csv(out_dir / "summary.csv", pd.DataFrame(summaries, columns=None if summaries else
                                                      ["image", "width", "height", "n_objects"]))
    size_plot(objects, len(summaries), out_dir / "size_distribution.png", pixel)
    return {"images": len(summaries), "objects": len(objects), "skipped": skipped, "reused": reused}

