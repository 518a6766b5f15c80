"""Copy-paste synthesis: the cheap alternative to a trained generator.

No training; it answers "is a GAN worth it here, or does pasting real objects do as well?". Two
modes (``generation.copypaste_mode``):

* ``object`` (default): each object of a synthetic layout mask is replaced by a REAL object -- one
  of the ``copypaste_match_area_k`` bank objects nearest to it in log-area, cut by its own mask,
  scaled to the synthetic object's area, rotated / flipped, centred on the synthetic object's
  centroid. The output mask is the union of the pasted masks (later pastes occlude earlier ones,
  pieces below min_area dropped, ids 1..N), so image and mask agree pixel for pixel; the layout
  contributes positions, sizes and order only. Edges are feathered (or Poisson-blended).
* ``box``: the original method, kept to reproduce earlier results: the texture of a random real
  object's bounding box, resized to the synthetic object's box and cut by the synthetic shape,
  pasted without blending on an inpainted background; the output mask is the layout itself.

Backgrounds (``copypaste_background``, object mode): ``real`` = a window of a whole real training
image whose objects stay in place and keep their labels (pasted objects on top); ``inpaint`` = an
object-free background made by Telea inpainting. See docs/generators.md for why ``real`` is the
default.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from skimage.measure import regionprops

from ..data.store import MaskStore, PairStore, shard_ranges
from ..errors import InputError
from ..hashing import file_hash
from ..io import write_npz
from .paste import blend_into, place_object, random_window, settle_labels, to_uint8

BANK_FILE = "copypaste_bank.npz"
BANK_FORMAT = 2  # 1: crops + inpainted backgrounds only; 2: + object context, whole images, labels
CONTEXT_PX = 6  # real surroundings kept around each object's mask: the feathered rim blends them in


def build_copypaste_bank(pairs: list[tuple[np.ndarray, np.ndarray]], out_dir: Path, min_area: int = 12) -> Path:
    """Everything both copy-paste modes draw from, as one pickle-free npz.

    Per object (area >= min_area): its box plus CONTEXT_PX of real surroundings (``crop``), its own
    mask in that crop (``mask``), where the box sits in the crop, its area, and whether it touches
    the image border (a cut-off object pasted mid-canvas would show a straight edge). Per image: the
    image, its instance labels and an inpainted object-free background. ``min_area`` is recorded so
    that generation drops the same fragments the bank ignored.
    """
    crops, crop_masks, boxes, areas, interior, images, labels, backgrounds = [], [], [], [], [], [], [], []
    for image, mask in pairs:
        img8 = to_uint8(image)
        mask = np.asarray(mask)
        holes = cv2.dilate((mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
        bg = cv2.inpaint(img8 if img8.shape[2] == 3 else img8[:, :, 0], holes, 5, cv2.INPAINT_TELEA)
        backgrounds.append(bg.reshape(img8.shape))
        images.append(img8)
        labels.append(mask.astype(np.uint16))
        h, w = mask.shape
        for r in regionprops(mask.astype(np.int32)):
            if r.area < min_area:
                continue
            y0, x0, y1, x1 = r.bbox
            cy0, cx0 = max(y0 - CONTEXT_PX, 0), max(x0 - CONTEXT_PX, 0)
            cy1, cx1 = min(y1 + CONTEXT_PX, h), min(x1 + CONTEXT_PX, w)
            crops.append(img8[cy0:cy1, cx0:cx1])
            crop_masks.append((mask[cy0:cy1, cx0:cx1] == r.label).astype(np.uint8))
            boxes.append((y0 - cy0, x0 - cx0, y1 - cy0, x1 - cx0))
            areas.append(r.area)
            interior.append(y0 > 0 and x0 > 0 and y1 < h and x1 < w)
    if not crops:
        raise ValueError("copy-paste bank: the training masks hold no object large enough")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / BANK_FILE
    write_npz(path, **_pack("crop", crops), **_pack("mask", crop_masks), **_pack("bg", backgrounds),
              **_pack("image", images), **_pack("label", labels),
              crop_box=np.array(boxes, np.int64), area=np.array(areas, np.int64),
              interior=np.array(interior, bool), min_area=np.int64(min_area), format=np.int64(BANK_FORMAT))
    return path


def _pack(name: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Ragged arrays as one flat buffer + shapes, so loading needs no pickle."""
    shapes = np.array([a.reshape(a.shape[0], a.shape[1], -1).shape for a in arrays], np.int64)
    return {f"{name}_flat": np.concatenate([a.ravel() for a in arrays]), f"{name}_shapes": shapes}


def _unpack(z, name: str) -> list[np.ndarray]:
    flat, shapes = z[f"{name}_flat"], z[f"{name}_shapes"]
    sizes = np.prod(shapes, axis=1)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [flat[offsets[i] : offsets[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]


class CopyPasteBank:
    def __init__(self, path: Path):
        path = Path(path)
        with np.load(path) as z:
            self.crops, self.masks, self.backgrounds = _unpack(z, "crop"), _unpack(z, "mask"), _unpack(z, "bg")
            self.format = int(z["format"]) if "format" in z else 1
            if self.format >= 2:
                self.images = _unpack(z, "image")
                self.labels = [a[:, :, 0] for a in _unpack(z, "label")]
                self.boxes, self.areas = z["crop_box"], z["area"].astype(np.float64)
                self.min_area = int(z["min_area"])
                interior = z["interior"]
        self.path = path
        self.digest = file_hash(path, 12)
        self.masks = [m[:, :, 0] for m in self.masks]
        if self.format < 2:  # format 1 crops are exactly the objects' boxes
            self.boxes = np.array([(0, 0, m.shape[0], m.shape[1]) for m in self.masks], np.int64)
            return
        # Objects cut by their image's border are pasted only when they are most of the bank (a
        # set of border-crossing defects): otherwise their straight cut edges would appear
        # mid-canvas, an edge no real object has.
        mostly_interior = interior.sum() * 2 >= len(interior)
        self.pool = np.flatnonzero(interior) if mostly_interior else np.arange(len(interior))
        self.pool_log_area = np.log(self.areas[self.pool])

    def require_object_data(self) -> None:
        if self.format < 2:
            raise InputError(f"{self.path}: copy-paste bank of an older format (no object context or whole "
                             "images); delete its folder so the bank is rebuilt")

    def pick_object(self, area: float, k: int, rng: np.random.Generator) -> int:
        """A bank object among the ``k`` nearest in log-area: close sizes keep the rescaling mild,
        so pasted textures keep their native sharpness; k > 1 keeps layouts from repeating one object."""
        gap = np.abs(self.pool_log_area - math.log(max(area, 1.0)))
        near = np.argsort(gap, kind="stable")[: max(1, k)]
        return int(self.pool[near[int(rng.integers(len(near)))]])

    def _inpainted_window(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """Today's background: a window of an object-free (inpainted) real image, maybe mirrored."""
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        if bg.shape[0] < h or bg.shape[1] < w:
            bg = cv2.resize(bg, (max(w, bg.shape[1]), max(h, bg.shape[0])), interpolation=cv2.INTER_LINEAR)
            bg = bg.reshape(bg.shape[0], bg.shape[1], -1)
        y = int(rng.integers(0, bg.shape[0] - h + 1))
        x = int(rng.integers(0, bg.shape[1] - w + 1))
        canvas = bg[y : y + h, x : x + w].copy()
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
        return canvas

    def render(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``box`` mode: one image (float32 HxWxC in [0, 1]) for an instance mask, which stays the label."""
        h, w = mask.shape
        canvas = self._inpainted_window(h, w, rng)
        for r in regionprops(mask):
            y0, x0, y1, x1 = r.bbox
            k = int(rng.integers(len(self.crops)))
            by0, bx0, by1, bx1 = self.boxes[k]
            box = self.crops[k][by0:by1, bx0:bx1]
            tex = cv2.resize(box, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            tex = tex.reshape(y1 - y0, x1 - x0, -1)
            sel = r.image
            canvas[y0:y1, x0:x1][sel] = tex[sel]
        return canvas.astype(np.float32) / 255.0

    def render_objects(self, layout: np.ndarray, rng: np.random.Generator,
                       gen_cfg) -> tuple[np.ndarray, np.ndarray]:
        """``object`` mode: (image float32 HxWxC in [0, 1], instance labels int32 1..N) for a layout.

        Synthetic objects are pasted in label order (so the layout's own stacking order decides
        occlusion); every random draw is made whatever the blend, so switching the blend changes
        pixels near edges only, never which objects are pasted where.
        """
        self.require_object_data()
        h, w = layout.shape
        if gen_cfg.copypaste_background == "real":
            j = int(rng.integers(len(self.images)))
            image, real_labels = random_window(self.images[j], self.labels[j], h, w, rng)
            labels = real_labels.astype(np.int32)
        else:
            image = self._inpainted_window(h, w, rng)
            labels = np.zeros((h, w), np.int32)
        canvas = image.astype(np.float32)
        next_id = int(labels.max()) + 1
        rim = int(gen_cfg.copypaste_feather_px)
        for r in regionprops(layout):
            k = self.pick_object(r.area, gen_cfg.copypaste_match_area_k, rng)
            scale = math.sqrt(r.area / self.areas[k])
            angle = _draw_angle(gen_cfg.copypaste_rotation, rng)
            flip = bool(rng.random() < 0.5)
            placed = place_object(self.crops[k], self.masks[k], r.centroid, scale, angle, flip, (h, w), rim)
            if placed is None:
                continue
            y0, x0, patch, hard = placed
            blend_into(canvas, y0, x0, patch, hard, gen_cfg.copypaste_blend, rim)
            labels[y0 : y0 + hard.shape[0], x0 : x0 + hard.shape[1]][hard] = next_id
            next_id += 1
        image = np.clip(canvas, 0, 255) / 255.0
        return image.astype(np.float32), settle_labels(labels, self.min_area)


def _draw_angle(rotation: str, rng: np.random.Generator) -> float:
    """One draw per object in every mode, so the rotation option never shifts later draws."""
    u = rng.random()
    if rotation == "any":
        return 360.0 * u
    if rotation == "rot90":
        return 90.0 * int(u * 4)
    return 0.0


def generate_copypaste_pairs(bank_path: Path, masks: MaskStore, out_dir: Path, gen_cfg, progress: bool = True) -> PairStore:
    """Same output as the neural generators: a resumable PairStore with provenance.

    Pair ``i`` is drawn from ``np.random.default_rng([seed, mask_index, style])`` alone, so the
    output does not depend on shard size or on which shards a resumed run still had to write.
    """
    from tqdm.auto import tqdm

    bank = CopyPasteBank(bank_path)
    mode = gen_cfg.copypaste_mode
    if mode == "object":
        bank.require_object_data()
    store = PairStore(out_dir)
    done = store.completed_shards()
    frame = masks.manifest
    total = len(frame) * gen_cfg.styles_per_mask
    ranges = shard_ranges(total, gen_cfg.shard_size)
    with tqdm(total=total, desc="copy-paste pairs", disable=not progress, unit="pair") as bar:
        for k, start, stop in ranges:
            if k in done:
                bar.update(stop - start)
                continue
            images, out_masks, rows = [], [], []
            for i in range(start, stop):
                mi, style = divmod(i, gen_cfg.styles_per_mask)
                mask = masks[mi]
                rng = np.random.default_rng([gen_cfg.seed, mi, style])
                if mode == "object":
                    image, out_mask = bank.render_objects(mask, rng, gen_cfg)
                else:
                    image, out_mask = bank.render(mask, rng), mask
                images.append(image)
                out_masks.append(out_mask)
                rows.append({"index": i, "mask_index": mi, "mask_source": str(frame.iloc[mi].get("source", "")),
                             "generator": "copypaste", "checkpoint": f"{bank_path}#{bank.digest}",
                             "seed": gen_cfg.seed, "style": style})
            store.write_shard(k, images, out_masks, rows)
            bar.update(stop - start)
    store.finalize()
    return store
