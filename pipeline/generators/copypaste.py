"""Copy-paste synthesis: the cheap alternative to a trained generator.

Synthetic masks are filled with real pixels: the background comes from a random window of a real
training image whose objects were removed by inpainting, and every synthetic object gets the
texture of a random real object, resized to the synthetic object's box and cut by its shape. No
training; it answers "is a GAN worth it here, or does pasting real objects do as well?".
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage.measure import regionprops

from ..data.store import MaskStore, PairStore, shard_ranges
from ..hashing import file_hash
from ..io import write_npz

BANK_FILE = "copypaste_bank.npz"


def build_copypaste_bank(pairs: list[tuple[np.ndarray, np.ndarray]], out_dir: Path, min_area: int = 12) -> Path:
    """Object textures (crop + its mask) and object-free backgrounds from the real training pairs."""
    crops, crop_masks, backgrounds = [], [], []
    for image, mask in pairs:
        img8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        holes = cv2.dilate((mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
        bg = cv2.inpaint(img8 if img8.shape[2] == 3 else img8[:, :, 0], holes, 5, cv2.INPAINT_TELEA)
        backgrounds.append(bg.reshape(img8.shape))
        for r in regionprops(mask):
            if r.area < min_area:
                continue
            y0, x0, y1, x1 = r.bbox
            crops.append(img8[y0:y1, x0:x1])
            crop_masks.append(r.image.astype(np.uint8))
    if not crops:
        raise ValueError("copy-paste bank: the training masks hold no object large enough")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / BANK_FILE
    write_npz(path, **_pack("crop", crops), **_pack("mask", crop_masks), **_pack("bg", backgrounds))
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
        with np.load(path) as z:
            self.crops, self.masks, self.backgrounds = _unpack(z, "crop"), _unpack(z, "mask"), _unpack(z, "bg")
        self.digest = file_hash(path, 12)

    def render(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One image (float32 HxWxC in [0, 1]) for an instance mask."""
        h, w = mask.shape
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        if bg.shape[0] < h or bg.shape[1] < w:
            bg = cv2.resize(bg, (max(w, bg.shape[1]), max(h, bg.shape[0])), interpolation=cv2.INTER_LINEAR)
            bg = bg.reshape(bg.shape[0], bg.shape[1], -1)
        y = int(rng.integers(0, bg.shape[0] - h + 1))
        x = int(rng.integers(0, bg.shape[1] - w + 1))
        canvas = bg[y : y + h, x : x + w].copy()
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
        for r in regionprops(mask):
            y0, x0, y1, x1 = r.bbox
            k = int(rng.integers(len(self.crops)))
            tex = cv2.resize(self.crops[k], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            tex = tex.reshape(y1 - y0, x1 - x0, -1)
            sel = r.image
            canvas[y0:y1, x0:x1][sel] = tex[sel]
        return canvas.astype(np.float32) / 255.0


def generate_copypaste_pairs(bank_path: Path, masks: MaskStore, out_dir: Path, gen_cfg, progress: bool = True) -> PairStore:
    """Same output as the neural generators: a resumable PairStore with provenance."""
    from tqdm.auto import tqdm

    bank = CopyPasteBank(bank_path)
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
                images.append(bank.render(mask, rng))
                out_masks.append(mask)
                rows.append({"index": i, "mask_index": mi, "mask_source": str(frame.iloc[mi].get("source", "")),
                             "generator": "copypaste", "checkpoint": f"{bank_path}#{bank.digest}",
                             "seed": gen_cfg.seed, "style": style})
            store.write_shard(k, images, out_masks, rows)
            bar.update(stop - start)
    store.finalize()
    return store
