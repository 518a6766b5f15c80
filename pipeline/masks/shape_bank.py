"""The shape bank: every real training object as a binary crop, plus the statistics that tell the
random-placement generator how many objects to draw and which shapes to draw more often.

Two tables come out of the training masks:

* ``shapes``: one row per object (>= ``min_area`` px): area, perimeter, equivalent diameter, aspect
  ratio (major / minor axis), solidity, whether it touches the image border, how many other objects
  it touches (8-adjacent pixels; placement's ``masks.clustering`` copies how often that happens),
  source image, tight bounding box, and a sampling ``weight`` (see :func:`_edge_weights`);
* ``images``: one row per training mask: size, object count, coverage and *density* (objects per
  pixel) -- density, not count, so a canvas of another size gets a proportionate number of objects.

Crops are stored in one npz as a flat boolean buffer with offsets (objects differ in size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import regionprops

from ..config import ShapeBankConfig
from ..errors import InputError
from ..io import read_json, write_json, write_npz, write_parquet
from .stats import touching_neighbour_counts

BANK_FORMAT = 2  # 2: shapes carry touching_neighbours


@dataclass
class ShapeBank:
    shapes: pd.DataFrame  # one row per crop, row i describes crops[i]
    crops: list[np.ndarray]  # bool arrays, tight bounding box of each object
    images: pd.DataFrame  # one row per source mask
    min_area: int

    def __len__(self) -> int:
        return len(self.crops)

    def sampling_probabilities(self) -> np.ndarray:
        w = self.shapes["weight"].to_numpy(np.float64)
        if w.sum() <= 0:
            w = np.ones(len(w))
        return w / w.sum()

    def crop_rates(self, canvas: int) -> np.ndarray:
        """Per source image: the expected number of objects that meet a random ``canvas`` x
        ``canvas`` crop of it (an object meets the crop when its bounding box does). This is the
        count a placement canvas should hold to look like a real crop, border effects included."""
        sh = self.shapes
        p = _axis_meet_probability(sh["bbox_r0"].to_numpy(), sh["bbox_h"].to_numpy(), sh["image_h"].to_numpy(), canvas)
        p *= _axis_meet_probability(sh["bbox_c0"].to_numpy(), sh["bbox_w"].to_numpy(), sh["image_w"].to_numpy(), canvas)
        ids = self.images["image_id"].astype(str).to_numpy()
        per_image = pd.Series(p).groupby(sh["image_id"].astype(str).to_numpy()).sum()
        in_table = sh["image_id"].astype(str).value_counts()
        rates = np.zeros(len(ids))
        for j, i in enumerate(ids):
            if i in per_image.index:  # shapes dropped by max_shapes: scale up to the full count
                rates[j] = per_image[i] * self.images["count"].iloc[j] / in_table[i]
        return rates

    def save(self, out_dir: str | Path) -> Path:
        out_dir = Path(out_dir)
        dims = np.array([c.shape for c in self.crops], np.int32).reshape(-1, 2)
        flat = np.concatenate([c.ravel() for c in self.crops]) if self.crops else np.zeros(0, bool)
        offsets = np.concatenate([[0], np.cumsum(dims[:, 0] * dims[:, 1])]).astype(np.int64)
        write_npz(out_dir / "crops.npz", flat=np.packbits(flat), n_bits=np.int64(flat.size), dims=dims, offsets=offsets)
        write_parquet(out_dir / "shapes.parquet", self.shapes)
        write_parquet(out_dir / "images.parquet", self.images)
        # Written last: its presence means the bank is complete.
        write_json(out_dir / "bank.json", {"format": BANK_FORMAT, "min_area": self.min_area, "shapes": len(self)})
        return out_dir

    @classmethod
    def load(cls, bank_dir: str | Path) -> ShapeBank:
        bank_dir = Path(bank_dir)
        meta_path = bank_dir / "bank.json"
        if not meta_path.is_file():
            raise InputError(f"{bank_dir}: not a shape bank (no bank.json; was it fully written?)")
        meta = read_json(meta_path)
        with np.load(bank_dir / "crops.npz") as z:
            flat = np.unpackbits(z["flat"], count=int(z["n_bits"])).astype(bool)
            dims, offsets = z["dims"], z["offsets"]
        crops = [flat[offsets[i] : offsets[i + 1]].reshape(dims[i]) for i in range(len(dims))]
        if meta.get("format") != BANK_FORMAT:
            raise InputError(f"{bank_dir}: shape bank format {meta.get('format')}, this version reads {BANK_FORMAT}; "
                             "build it again (synth-pretrain shape-bank)")
        return cls(
            shapes=pd.read_parquet(bank_dir / "shapes.parquet"),
            crops=crops,
            images=pd.read_parquet(bank_dir / "images.parquet"),
            min_area=int(meta["min_area"]),
        )


def _axis_meet_probability(start: np.ndarray, extent: np.ndarray, image_side: np.ndarray, canvas: int) -> np.ndarray:
    """P(a crop window of side ``canvas`` at a uniform integer offset meets [start, start+extent))
    along one axis; 1 where the image is not larger than the canvas (the crop is the whole side)."""
    positions = np.maximum(image_side - canvas + 1, 1).astype(np.float64)
    first = np.maximum(0, start - canvas + 1)
    last = np.minimum(image_side - canvas, start + extent - 1)
    p = np.clip(last - first + 1, 0, None) / positions
    return np.where(image_side <= canvas, 1.0, p)


def _edge_weights(
    touches: np.ndarray, bbox_h: np.ndarray, bbox_w: np.ndarray, img_h: np.ndarray, img_w: np.ndarray, cap: float
) -> np.ndarray:
    """Sampling weights that use only whole (non-border) objects yet keep the size distribution fair.

    Objects cut by the border are partial shapes; placing them whole would paint straight cut edges
    in mid-canvas. But dropping them biases the bank toward small objects, since a big object is
    more likely to touch the border. An object with an h x w box lies fully inside an H x W image for
    a fraction (H-h+1)(W-w+1)/(HW) of positions, so weighting whole objects by its inverse
    (the Miles-Lantuejoul edge correction) removes that bias. The weight is capped: a rare whole
    object nearly as large as its image would otherwise dominate the bank. Fallback: all objects,
    equal weight.
    """
    inside = (img_h - bbox_h + 1).clip(1) * (img_w - bbox_w + 1).clip(1)
    w = np.where(touches, 0.0, np.minimum((img_h * img_w) / inside, cap))
    if not np.any(w > 0):
        w = np.ones(len(touches))
    return w


def build_shape_bank(
    masks: list[np.ndarray], cfg: ShapeBankConfig | None = None, image_ids: list[str] | None = None
) -> ShapeBank:
    """Measure every object of the training masks (int instance maps) and keep its crop."""
    cfg = cfg or ShapeBankConfig()
    if image_ids is None:
        image_ids = [str(i) for i in range(len(masks))]
    if len(image_ids) != len(masks):
        raise ValueError("one image id per mask")
    rows: list[dict] = []
    crops: list[np.ndarray] = []
    image_rows: list[dict] = []
    for image_id, mask in zip(image_ids, masks):
        mask = np.asarray(mask)
        h, w = mask.shape
        kept_area = 0
        n = 0
        regions = [r for r in regionprops(mask.astype(np.int32)) if int(r.area) >= cfg.min_area]
        # how many other kept objects touch each one: placement's clustering matches this
        neighbours = touching_neighbour_counts(mask, np.array([r.label for r in regions], np.int64))
        for region, touching in zip(regions, neighbours):
            area = int(region.area)
            r0, c0, r1, c1 = region.bbox
            major, minor = float(region.axis_major_length), float(region.axis_minor_length)
            rows.append(
                {
                    "image_id": image_id,
                    "label": int(region.label),
                    "area": area,
                    "perimeter": float(region.perimeter),
                    "equivalent_diameter": float(region.equivalent_diameter_area),
                    "aspect_ratio": major / max(minor, 1.0),
                    "solidity": float(region.solidity),
                    "touches_border": bool(r0 == 0 or c0 == 0 or r1 == h or c1 == w),
                    "touching_neighbours": int(touching),
                    "bbox_r0": r0,
                    "bbox_c0": c0,
                    "bbox_h": r1 - r0,
                    "bbox_w": c1 - c0,
                    "image_h": h,
                    "image_w": w,
                }
            )
            crops.append(np.ascontiguousarray(region.image, dtype=bool))
            kept_area += area
            n += 1
        image_rows.append(
            {"image_id": image_id, "height": h, "width": w, "count": n, "coverage": kept_area / (h * w), "density": n / (h * w)}
        )
    shapes = pd.DataFrame(rows, columns=[
        "image_id", "label", "area", "perimeter", "equivalent_diameter", "aspect_ratio", "solidity",
        "touches_border", "touching_neighbours", "bbox_r0", "bbox_c0", "bbox_h", "bbox_w", "image_h", "image_w",
    ])
    if len(shapes) > cfg.max_shapes:  # a uniform, fixed subsample keeps the distribution
        keep = np.sort(np.random.default_rng(0).choice(len(shapes), cfg.max_shapes, replace=False))
        shapes = shapes.iloc[keep].reset_index(drop=True)
        crops = [crops[i] for i in keep]
    shapes["weight"] = _edge_weights(
        shapes["touches_border"].to_numpy(bool),
        shapes["bbox_h"].to_numpy(np.float64),
        shapes["bbox_w"].to_numpy(np.float64),
        shapes["image_h"].to_numpy(np.float64),
        shapes["image_w"].to_numpy(np.float64),
        cfg.max_edge_weight,
    )
    return ShapeBank(shapes=shapes, crops=crops, images=pd.DataFrame(image_rows), min_area=cfg.min_area)


def training_masks(set_dir: str | Path, data_cfg) -> tuple[list[str], list[np.ndarray]]:
    """(stems, instance masks) of a labeled set's training split under ``data_cfg`` (a DataConfig).
    The set must be valid: raises ``SetInvalid`` (an InputError listing every problem) otherwise."""
    from ..data.labeled_set import load_mask, require_valid
    from ..data.splits import splits_for

    report = require_valid(set_dir, data_cfg.max_image_pixels, data_cfg.max_instances)
    splits = splits_for(report, data_cfg)
    pairs = {p.stem: p for p in report.pairs}
    stems = splits["train"]
    return stems, [load_mask(pairs[s]) for s in stems]
