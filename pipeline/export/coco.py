"""Export a labeled set or a synthetic pair store as a COCO instance-segmentation dataset.

Writes ``OUT_DIR/annotations.json`` and ``OUT_DIR/images/<name>.png``. Each instance becomes one
annotation with an uncompressed-size RLE (pycocotools' compressed ``counts`` string), its area and
its bounding box, ``iscrowd`` 0 and one category (set.yaml ``object_name``, else ``object``). So
other tools (detectron2, mmdetection, ultralytics converters) can train on the real or the
synthetic pairs. The source is only read. The output is itself a labeled set (images/ +
annotations.json): validating or exporting it again gives back the same instance maps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..data.images import decode
from ..data.label_formats import find_sources
from ..errors import InputError
from ..io import write_bytes, write_json, write_png


def _is_pair_store(source: Path) -> bool:
    return (source / "manifest.parquet").is_file() or any(source.glob("shard_*.parquet"))


def _png_bytes_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.suffix.lower() == ".png" else None


def _labeled_set_items(source: Path) -> tuple[str, Iterator[tuple[str, Path, np.ndarray]]]:
    from ..data.labeled_set import load_mask, require_valid

    report = require_valid(source)

    def items():
        for pair in report.pairs:
            yield pair.stem, pair.image, load_mask(pair)

    return report.info.object_name, items()


def _pair_store_items(source: Path) -> tuple[str, Iterator[tuple[str, Path, np.ndarray]]]:
    manifest = _read_manifest(source)

    def items():
        for _, row in manifest.iterrows():
            mask = decode(source / row["mask"]).astype(np.int32)  # written by the pipeline: ids kept
            yield f"{int(row['index']):07d}", source / row["image"], mask

    return "object", items()


def _read_manifest(source: Path):
    """The store's manifest; from its shard pieces when unfinished (PairStore would write
    manifest.parquet into the source, which must stay untouched)."""
    import pandas as pd

    if (source / "manifest.parquet").is_file():
        return pd.read_parquet(source / "manifest.parquet")
    pieces = sorted(source.glob("shard_*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in pieces], ignore_index=True).sort_values("index")


def instance_annotations(mask: np.ndarray) -> list[dict]:
    """One COCO annotation body (segmentation RLE, area, bbox) per instance id of ``mask``."""
    from pycocotools import mask as mask_util

    out = []
    for k in np.unique(mask):
        if k == 0:
            continue
        rle = mask_util.encode(np.asfortranarray((mask == k).astype(np.uint8)))
        area = int(mask_util.area(rle))
        bbox = [float(v) for v in mask_util.toBbox(rle)]
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0})
    return out


def export_coco(source: Path, out_dir: Path, category: str | None = None, progress: bool = True) -> dict:
    """Write the COCO dataset; returns counts for the final message."""
    from tqdm.auto import tqdm

    source, out_dir = Path(source), Path(out_dir)
    if not source.is_dir():
        raise InputError(f"{source}: no such folder (expected a labeled set or a synthetic pair store)")
    if out_dir.resolve() == source.resolve() or out_dir.resolve().is_relative_to(source.resolve()):
        raise InputError(f"{out_dir}: output folder is inside the source; choose another (the source is never written to)")
    if _is_pair_store(source):
        kind, (name, items) = "synthetic pair store", _pair_store_items(source)
    elif ((source / "images").is_dir() and (source / "masks").is_dir()) or find_sources(source):
        kind, (name, items) = "labeled set", _labeled_set_items(source)
    else:
        raise InputError(f"{source}: neither a labeled set (images/ + masks/ or annotation files) nor a synthetic pair store (manifest.parquet)")
    name = category or name
    images, annotations = [], []
    for image_id, (stem, image_path, mask) in enumerate(tqdm(items, desc="export-coco", unit="img", disable=not progress), 1):
        file_name = f"{stem}.png"
        data = _png_bytes_or_none(image_path)
        if data is not None:
            write_bytes(out_dir / "images" / file_name, data)  # PNG already: copied bit for bit
        else:
            raw = decode(image_path)
            write_png(out_dir / "images" / file_name, raw[:, :, :3] if raw.ndim == 3 and raw.shape[2] == 4 else raw)
        h, w = mask.shape
        images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for body in instance_annotations(mask):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, **body})
    if not images:
        raise InputError(f"{source}: no image/mask pairs to export")
    coco = {
        "info": {"description": f"{source.name} ({kind}) exported by synth-pretrain",
                 "date_created": time.strftime("%Y-%m-%d %H:%M:%S")},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": name, "supercategory": name}],
    }
    write_json(out_dir / "annotations.json", coco)
    return {"kind": kind, "images": len(images), "annotations": len(annotations), "category": name}

