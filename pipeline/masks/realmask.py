"""Real-mask layouts: the real training instance masks themselves, augmented, as synthetic masks.

Shape-bank placement drops objects one by one onto an empty canvas, so its layouts are sparser
than real crops and almost never hold touching objects (EMPS: coverage KS 0.43, mean coverage
about half the real one). Object F1 on particle sets is decided at the boundaries between touching
objects, so this source keeps the real arrangement instead: every canvas is cut from a real mask,
with its density, clusters and shared boundaries, and augmentation makes the ~100 real layouts
into many distinct ones.

Mask ``i`` depends only on ``(seed, i)`` (its own ``np.random.default_rng([seed, i])``), so any
shard layout or resume gives the same masks. Per mask:

1. with probability ``masks.realmask_mosaic`` the canvas is a 2x2 mosaic of four independent
   half-size crops (ids offset so they stay unique; a 1 px background gutter along the seams so
   that objects of different real masks never touch along a straight line), otherwise one crop of
   the full size;
2. a crop: a uniformly chosen real mask, scale ``(masks.scale or 1) * (1 +- realmask_scale_jitter)``,
   a window placed uniformly over the scaled mask (when the mask is smaller than the window, the
   mask lands uniformly inside it and the rest is background), a smooth random displacement of up
   to ``masks.realmask_elastic`` px, all in one nearest-neighbour ``cv2.remap`` that reads only the
   window's pixels; then a random flip and rot90 of the crop (equivalent to flipping the real mask
   first, and 128^2 pixels instead of the whole real image);
3. pieces (8-connected parts of an object) smaller than ``shape_bank.min_area``, such as slivers cut
   by the window border, are dropped; labels are renumbered 1..N (int32, as placement's);
4. with ``masks.min_objects`` > 0 (rare-object sets: a defect in a few images), crops come only from
   real masks that hold an object, and a canvas with fewer than ``min_objects`` objects is drawn
   again from the same stream, up to ``MIN_OBJECTS_REDRAWS`` times (the fullest draw is kept).
   Without it, 90 % of magnetic-tile layouts were empty: the floor placement already had.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage.measure import label as connected_pieces

from ..config import MasksConfig
from ..data.labelmaps import renumber
from ..data.store import MaskStore, shard_ranges
from ..data.store import check_store_settings as store_check
from ..errors import InputError
from ..hashing import arrays_hash
from ..io import write_json

SOURCE = "realmask"
SETTINGS_FILE = "realmask.json"
# Spacing (output px) of the random control points of the elastic warp: a few per canvas gives a
# gentle bend of the layout, not a per-object wobble; with the default 3 px amplitude the field's
# slope stays ~0.2, far from folding the label map over itself.
ELASTIC_SPACING = 32
MIN_OBJECTS_REDRAWS = 50  # draws per canvas before one short of masks.min_objects is kept


def _remappable(mask: np.ndarray) -> np.ndarray:
    """The label map in a dtype cv2.remap accepts (uint8/uint16; float32 holds ids exactly up to
    2^24 beyond that), contiguous. Returns the mask itself when it already is."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"realmask: a real mask has shape {mask.shape}; instance masks are 2-D label maps")
    if mask.dtype in (np.uint8, np.uint16) and mask.flags.c_contiguous:
        return mask
    if mask.size and (mask.min() < 0):
        raise InputError("realmask: a real mask holds negative labels; instance ids are 0 (background) "
                         "or positive")
    dtype = np.uint16 if mask.max(initial=0) <= np.iinfo(np.uint16).max else np.float32
    return np.ascontiguousarray(mask, dtype=dtype)


def _elastic_field(
    rng: np.random.Generator, h: int, w: int, amplitude: float
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth displacement (dy, dx) in output pixels, |d| <= ~amplitude: random values on a coarse
    grid, upsampled bicubically (one small resize per axis, cheap at any canvas size)."""
    gh, gw = max(2, round(h / ELASTIC_SPACING) + 1), max(2, round(w / ELASTIC_SPACING) + 1)
    coarse = rng.uniform(-amplitude, amplitude, size=(2, gh, gw)).astype(np.float32)
    dy = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dx = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    return dy, dx


def _draw_crop(
    real: list[np.ndarray], out_h: int, out_w: int, rng: np.random.Generator, cfg: MasksConfig
) -> np.ndarray:
    """One augmented ``out_h`` x ``out_w`` window of a random real mask, as int32 (ids as in the
    real mask, slivers not yet removed)."""
    source = _remappable(real[int(rng.integers(len(real)))])
    quarter_turns = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)
    # Drawn before the rotation: an odd number of quarter turns swaps the window's sides.
    h, w = (out_w, out_h) if quarter_turns % 2 else (out_h, out_w)
    base = cfg.scale if cfg.scale is not None else 1.0
    scale = base * (1.0 + cfg.realmask_scale_jitter * (2.0 * rng.random() - 1.0))
    src_h, src_w = source.shape
    # Window offset in scaled pixels. u * (scaled side - window) is uniform over positions inside
    # the mask when it is larger, and over placements of the mask inside the window when smaller.
    oy = rng.random() * (src_h * scale - h)
    ox = rng.random() * (src_w * scale - w)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    if cfg.realmask_elastic > 0:
        dy, dx = _elastic_field(rng, h, w, cfg.realmask_elastic)
    else:
        dy = dx = np.float32(0)
    # output pixel centre -> source pixel centre: (out + 0.5 + offset) / scale - 0.5
    map_y = ((ys + dy + np.float32(0.5 + oy)) / np.float32(scale) - np.float32(0.5)).astype(np.float32)
    map_x = ((xs + dx + np.float32(0.5 + ox)) / np.float32(scale) - np.float32(0.5)).astype(np.float32)
    map_y, map_x = np.broadcast_to(map_y, (h, w)), np.broadcast_to(map_x, (h, w))
    crop = cv2.remap(source, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    crop = crop.astype(np.int32)
    if flip:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(np.rot90(crop, quarter_turns))


def _drop_small_pieces_and_relabel(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Remove every 8-connected piece of an object smaller than ``min_area`` (slivers cut by the
    window or mosaic border, fragments the warp split off), then number the objects 1..N in order
    of their old ids. An object left in several large pieces stays one object, as in a real crop."""
    if labels.max(initial=0) == 0:
        return labels
    pieces = connected_pieces(labels, background=0, connectivity=2)
    piece_area = np.bincount(pieces.ravel())
    too_small = piece_area < min_area
    too_small[0] = False
    if too_small.any():
        labels = np.where(too_small[pieces], 0, labels)
    return renumber(labels)


def _draw(
    real: list[np.ndarray], size: int, seed: int, index: int, cfg: MasksConfig, min_area: int
) -> tuple[np.ndarray, bool]:
    """(mask ``index`` of stream ``seed``, whether it is a mosaic)."""
    if not len(real):
        raise InputError("realmask: no real training masks to build layouts from")
    rng = np.random.default_rng([seed, index])
    if cfg.min_objects <= 0:
        return _draw_once(real, size, rng, cfg, min_area)
    best = None
    for _ in range(MIN_OBJECTS_REDRAWS):
        labels, mosaic = _draw_once(real, size, rng, cfg, min_area)
        if best is None or labels.max(initial=0) > best[0].max(initial=0):
            best = (labels, mosaic)
        if labels.max(initial=0) >= cfg.min_objects:
            break
    return best


def _draw_once(
    real: list[np.ndarray], size: int, rng: np.random.Generator, cfg: MasksConfig, min_area: int
) -> tuple[np.ndarray, bool]:
    mosaic = bool(rng.random() < cfg.realmask_mosaic)
    if not mosaic:
        return _drop_small_pieces_and_relabel(_draw_crop(real, size, size, rng, cfg), min_area), False
    labels = np.zeros((size, size), np.int32)
    half = size // 2
    offset = 0
    for y0, y1 in ((0, half), (half, size)):
        for x0, x1 in ((0, half), (half, size)):
            quadrant = _draw_crop(real, y1 - y0, x1 - x0, rng, cfg)
            # this quadrant's ids start above every earlier quadrant's: unique over the canvas
            labels[y0:y1, x0:x1] = np.where(quadrant > 0, quadrant + offset, 0)
            offset += int(quadrant.max(initial=0))
    # A 1 px background gutter along the seams: objects of different real masks would otherwise
    # meet on a straight line, a touching boundary no real image holds (and the touching
    # statistic would count it). Objects cut by the seam lose one row, as at a canvas border.
    labels[half, :] = 0
    labels[:, half] = 0
    return _drop_small_pieces_and_relabel(labels, min_area), True


def layout_sources(real_masks: list[np.ndarray], cfg: MasksConfig) -> list[np.ndarray]:
    """The real masks crops are cut from: all of them, or with ``masks.min_objects`` only those
    holding an object (all of them when none does: the canvases are then empty, as the set is)."""
    real = [_remappable(m) for m in real_masks]
    if cfg.min_objects > 0:
        with_objects = [m for m in real if m.max(initial=0) > 0]
        real = with_objects or real
    return real


def draw_realmask(
    real_masks: list[np.ndarray], size: int, seed: int, index: int, cfg: MasksConfig, min_area: int
) -> np.ndarray:
    """Mask ``index`` of stream ``seed``: a ``size`` x ``size`` int32 instance map, labels 1..N,
    every 8-connected piece at least ``min_area`` px. Depends only on (real masks, size, seed,
    index, the realmask/scale fields of ``cfg``, min_area)."""
    return _draw(real_masks, size, seed, index, cfg, min_area)[0]


def generate_realmask_masks(
    real_masks: list[np.ndarray], cfg: MasksConfig, seed: int, indices, min_area: int
) -> list[np.ndarray]:
    """Masks of ``cfg.size`` for the given indices, in this process (no files)."""
    real = layout_sources(real_masks, cfg)
    return [draw_realmask(real, cfg.size, seed, int(i), cfg, min_area) for i in indices]


# --- writing a MaskStore, sharded, resumable ------------------------------------------------------

def _real_fingerprint(real_masks: list[np.ndarray]) -> str:
    """Short hash of the real masks' shapes and labels (dtype-independent): layouts cut from other
    real masks are other masks."""
    return arrays_hash(np.asarray(m).astype("<u4") for m in real_masks)


def store_settings(
    real_masks: list[np.ndarray], cfg: MasksConfig, count: int, seed: int, min_area: int, shard_size: int
) -> dict:
    """Everything the masks of a store depend on, and nothing else: options of the other sources
    (overlap, placement's scale jitter, workers ...) do not change a realmask layout."""
    return {"count": int(count), "seed": int(seed), "shard_size": int(shard_size), "size": cfg.size,
            "scale": cfg.scale, "min_area": int(min_area), "realmask_scale_jitter": cfg.realmask_scale_jitter,
            "realmask_elastic": cfg.realmask_elastic, "realmask_mosaic": cfg.realmask_mosaic,
            "min_objects": cfg.min_objects, "real_masks": _real_fingerprint(real_masks)}


def check_store_settings(out_dir: str | Path, settings: dict) -> None:
    store_check(out_dir, settings, SETTINGS_FILE, "realmask masks")


def write_realmask_masks(
    real_masks: list[np.ndarray],
    out_dir: str | Path,
    cfg: MasksConfig,
    count: int,
    seed: int,
    min_area: int,
    shard_size: int = 500,
    progress: bool = True,
) -> MaskStore:
    """Write ``count`` realmask masks of ``cfg.size`` into a MaskStore at ``out_dir``; manifest rows
    ``index, source="realmask", seed, n_objects, mosaic``. Shards whose manifest piece exists are
    skipped, so a killed run resumes where it stopped; a half-written shard is redone. A folder
    holding masks of other settings (``realmask.json``) is refused, not reused.

    In-process on purpose: a mask costs one small remap and a connected-components pass (well under
    a millisecond at 128^2), so compressing the shard dominates and a process pool would mostly
    ship the real masks around."""
    from tqdm.auto import tqdm

    real = layout_sources(real_masks, cfg)
    if not real:
        raise InputError("realmask: no real training masks to build layouts from")
    settings = store_settings(real, cfg, count, seed, min_area, shard_size)
    check_store_settings(out_dir, settings)
    store = MaskStore(out_dir)
    write_json(store.root / SETTINGS_FILE, settings)
    done = store.completed_shards()
    todo = [r for r in shard_ranges(count, shard_size) if r[0] not in done]
    bar = tqdm(total=count, initial=count - sum(b - a for _, a, b in todo), disable=not progress,
               desc="realmask masks", unit="mask")
    for k, start, stop in todo:
        drawn = [_draw(real, cfg.size, seed, i, cfg, min_area) for i in range(start, stop)]
        rows = [{"index": i, "source": SOURCE, "seed": seed, "n_objects": int(m.max(initial=0)),
                 "mosaic": mosaic}
                for i, (m, mosaic) in zip(range(start, stop), drawn)]
        store.write_shard(k, [m for m, _ in drawn], rows)
        bar.update(stop - start)
    bar.close()
    store.finalize()
    return store
