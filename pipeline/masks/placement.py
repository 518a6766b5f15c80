"""Random-placement masks: real object shapes from the shape bank, dropped onto empty canvases.

Mask ``i`` depends only on ``(seed, i)`` (its own ``np.random.default_rng([seed, i])``), so any
shard layout, worker count or resume gives the same masks. Per mask:

1. object count ~ Poisson, its mean from the object density of a random real training image, so
   a canvas gets as many objects per pixel as real images have; at least ``masks.min_objects``
   (a shape that would only graze the canvas is then placed again instead of dropped);
2. each object: a bank shape (edge-corrected weights, see ``shape_bank``), random flip, rotation
   by any angle and scale ``(masks.scale or 1) * (1 +- scale_jitter)``: a cv2.warpAffine of the
   small crop only;
3. border truncation on: the shape's box lands anywhere it still meets the canvas and is cut by
   the border, as objects are in a crop of a larger real image (count = objects meeting a random
   real crop of the canvas size; shapes drawn size-biased, see ``from_bank``); off: the whole
   shape must fit in the canvas (count = real density x canvas area);
4. the ``masks.overlap`` policy is checked on the shape's bounding box only: ``none`` keeps a 1 px
   gap, ``touch`` forbids shared pixels, ``any`` lets a new shape cover at most ``max_overlap`` of
   itself and of every earlier shape it hides (later shapes occlude earlier ones). A shape that
   does not fit is retried at a new place a few times, then skipped;
   with ``masks.clustering`` (placement with clusters), each shape after the first is, with
   probability ``attach`` of its canvas's pool, put against a placed object instead: from that
   object's centre it slides out along a random direction, one pixel at a time, to the first place
   the policy allows, which touches the object (or a neighbour on the way). ``auto`` sets ``attach``
   so that the fraction of objects touching another matches the real pool's (measured on a few
   canvases, see :func:`calibrated_attach`); a shape that finds no place along its ray falls back to random places;
5. leftovers smaller than ``shape_bank.min_area`` (cut or hidden) are dropped; labels are 1..N.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config import MasksConfig
from ..data.labelmaps import drop_small_and_renumber
from ..data.store import MaskStore, shard_ranges
from ..data.store import check_store_settings as store_check
from ..errors import InputError
from ..hashing import arrays_hash, json_hash
from ..io import write_json
from .shape_bank import ShapeBank

log = logging.getLogger("synth_pretrain.masks")

PLACE_ATTEMPTS = 6  # new positions tried for a shape before it is skipped
_KERNEL3 = np.ones((3, 3), np.uint8)


@dataclass
class PlacementSampler:
    """Everything a worker needs to draw masks; small enough to send to each process once."""

    crops: list[np.ndarray]  # uint8 0/255 crops
    box_areas: np.ndarray  # crop box areas, to place large shapes first
    rates: np.ndarray  # per real training image: expected objects meeting one canvas
    pools: list[np.ndarray]  # per real image: the shape indices a mask with its density draws from
    pool_cdfs: list[np.ndarray]  # per real image: cumulative sampling probabilities over its pool
    size: int
    overlap: str
    max_overlap: float
    scale: float
    scale_jitter: float
    border_truncation: bool
    min_area: int
    min_objects: int = 0
    attach: np.ndarray | None = None  # per real image: probability that a shape is put against a placed one

    @classmethod
    def from_bank(cls, bank: ShapeBank, cfg: MasksConfig) -> PlacementSampler:
        if len(bank) == 0:
            raise InputError("shape bank is empty: the training masks hold no object of at least min_area px")
        pools, probs = _shape_pools(bank, cfg.shape_pool_images)
        scale = cfg.scale if cfg.scale is not None else 1.0
        side = np.maximum(bank.shapes["bbox_h"], bank.shapes["bbox_w"]).to_numpy(np.float64)
        imgs = bank.images
        crop_rates = bank.crop_rates(cfg.size)
        rates, cdfs = [], []
        for j, (pool, p) in enumerate(zip(pools, probs)):
            if cfg.border_truncation:
                # The count is what a random real crop of this size holds (objects cut by the crop
                # border included). Shapes are drawn size-biased by (S + s*d)^2: their box lands
                # anywhere it still meets the canvas, so large shapes reach in from further out.
                rates.append(crop_rates[j])
                q = p * (cfg.size + scale * side[pool]) ** 2
                cdfs.append(np.cumsum(q / q.sum()))
            else:
                rates.append(imgs["density"].iloc[j] * cfg.size**2)
                cdfs.append(np.cumsum(p))
        sampler = cls(
            crops=[c.astype(np.uint8) * 255 for c in bank.crops],
            box_areas=np.array([c.size for c in bank.crops], np.int64),
            rates=np.array(rates),
            pools=pools,
            pool_cdfs=cdfs,
            size=cfg.size,
            overlap=cfg.overlap,
            max_overlap=cfg.max_overlap,
            scale=cfg.scale if cfg.scale is not None else 1.0,
            scale_jitter=cfg.scale_jitter,
            border_truncation=cfg.border_truncation,
            min_area=bank.min_area,
            min_objects=cfg.min_objects,
        )
        if cfg.clustering != 0 and cfg.overlap != "none":
            if cfg.clustering == "auto":
                touching = bank.shapes["touching_neighbours"].to_numpy() > 0
                targets = np.array([float(np.dot(p, touching[pool])) for pool, p in zip(pools, probs)])
                sampler.attach = calibrated_attach(sampler, targets)
            else:
                sampler.attach = np.full(len(pools), float(cfg.clustering))
        return sampler

    @staticmethod
    def _affine(crop: np.ndarray, flip: bool, angle: float, s: float) -> tuple[np.ndarray, int, int]:
        """Matrix taking the crop to its flipped / rotated / scaled box, and that box's size
        (with a 1 px empty margin all round, so a 3x3 dilation of the result stays inside)."""
        h, w = crop.shape
        rad = math.radians(angle)
        cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
        out_w = int(math.ceil(s * (w * cos + h * sin))) + 2
        out_h = int(math.ceil(s * (w * sin + h * cos))) + 2
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, s)
        if flip:  # x -> w-1-x before the rotation, folded into the same matrix
            m[:, 2] += m[:, 0] * (w - 1)
            m[:, 0] = -m[:, 0]
        m[0, 2] += (out_w - 1) / 2.0 - (w - 1) / 2.0
        m[1, 2] += (out_h - 1) / 2.0 - (h - 1) / 2.0
        return m, out_h, out_w

    @staticmethod
    def _warp(crop: np.ndarray, m: np.ndarray, dy: int, dx: int, out_h: int, out_w: int) -> np.ndarray:
        """The part of the transformed box starting at (dy, dx), of size out_h x out_w, as bool."""
        if dy or dx:
            m = m.copy()
            m[0, 2] -= dx
            m[1, 2] -= dy
        return cv2.warpAffine(crop, m, (out_w, out_h), flags=cv2.INTER_LINEAR) >= 128

    def draw(self, seed: int, index: int) -> np.ndarray:
        """Mask ``index`` of stream ``seed``: int32 instance map, labels 1..N."""
        rng = np.random.default_rng([seed, index])
        size = self.size
        source = int(rng.integers(len(self.rates)))
        pool, cdf = self.pools[source], self.pool_cdfs[source]
        n_objects = max(int(rng.poisson(self.rates[source])), self.min_objects)
        labels = np.zeros((size, size), np.int32)
        blocked = np.zeros((size, size), bool) if self.overlap == "none" else None
        areas = [0]  # placed area per label; index = label
        centres = [(0.0, 0.0)]  # centroid per label, where an attached shape starts sliding out
        attach = 0.0 if self.attach is None else float(self.attach[source])
        draws = rng.random((n_objects, 4))
        picks = pool[np.minimum(np.searchsorted(cdf, draws[:, 0], side="right"), len(pool) - 1)]
        # Largest first: big shapes need free room, small ones fill the gaps left between them.
        order = np.argsort(-self.box_areas[picks], kind="stable")
        for pick, u in zip(picks[order], draws[order]):
            shape = self.crops[pick]
            scale = self.scale * (1.0 + self.scale_jitter * (2.0 * u[3] - 1.0))
            m, oh, ow = self._affine(shape, u[1] < 0.5, u[2] * 360.0, scale)
            # Boxes larger than the canvas are warped per attempt, only where they meet the
            # canvas; smaller ones once, then sliced.
            whole = None if oh * ow > size * size else self._warp(shape, m, 0, 0, oh, ow)
            # Boxes larger than the canvas are never attached (they cover it anyway).
            if attach > 0 and len(areas) > 1 and whole is not None:
                attach_u, angle = rng.random(2)
                if attach_u < attach and self._attach(labels, blocked, areas, centres, whole, rng, angle):
                    continue
            for _attempt in range(PLACE_ATTEMPTS):
                if self.border_truncation:
                    # centre anywhere the box still meets the canvas
                    y0 = int(math.floor(rng.random() * (size + oh - 1))) - oh + 1
                    x0 = int(math.floor(rng.random() * (size + ow - 1))) - ow + 1
                else:
                    if oh > size or ow > size:
                        break
                    y0, x0 = (rng.random(2) * (size - np.array([oh, ow]) + 1)).astype(int)
                ya, xa = max(y0, 0), max(x0, 0)
                yb, xb = min(y0 + oh, size), min(x0 + ow, size)
                short = len(areas) - 1 < self.min_objects  # the floor is not reached yet: try again
                if ya >= yb or xa >= xb:
                    if short:
                        continue
                    break  # landed outside the canvas: this object is not in the crop
                if whole is None:
                    piece = self._warp(shape, m, ya - y0, xa - x0, yb - ya, xb - xa)
                else:
                    piece = whole[ya - y0 : yb - y0, xa - x0 : xb - x0]
                piece_area = int(np.count_nonzero(piece))
                if short and piece_area < self.min_area:
                    continue  # a sliver would be dropped later and leave the floor unmet
                if piece_area == 0:
                    break
                if not self._fits(labels, blocked, areas, piece, piece_area, ya, xa, yb, xb):
                    continue
                self._put(labels, blocked, areas, centres, piece, piece_area, ya, xa, yb, xb)
                break
        if self.overlap != "any" and min(areas[1:], default=self.min_area) >= self.min_area:
            return labels  # nothing was hidden and nothing is too small: labels are already 1..N
        return drop_small_and_renumber(labels, self.min_area)

    def _fits(self, labels, blocked, areas, piece, piece_area, ya, xa, yb, xb) -> bool:
        """Whether ``piece`` may go at ``[ya:yb, xa:xb]`` under the overlap policy."""
        region = labels[ya:yb, xa:xb]
        if self.overlap == "none":
            return not blocked[ya:yb, xa:xb][piece].any()
        if self.overlap == "touch":
            return not region[piece].any()
        under = region[piece]
        under = under[under > 0]
        if under.size:
            if under.size > self.max_overlap * piece_area:
                return False
            hidden = np.bincount(under, minlength=len(areas))
            if np.any(hidden[1:] > self.max_overlap * np.asarray(areas[1:])):
                return False
        return True

    @staticmethod
    def _put(labels, blocked, areas, centres, piece, piece_area, ya, xa, yb, xb) -> None:
        region = labels[ya:yb, xa:xb]
        region[piece] = len(areas)
        areas.append(piece_area)
        ys, xs = np.nonzero(piece)
        centres.append((ya + float(ys.mean()), xa + float(xs.mean())))
        if blocked is not None:
            # The window is the box cut by the canvas: the box keeps an empty margin, so
            # dilating the window equals cutting the dilated box.
            blocked[ya:yb, xa:xb] |= cv2.dilate(piece.view(np.uint8), _KERNEL3).astype(bool)

    def _attach(self, labels, blocked, areas, centres, whole, rng, angle: float) -> bool:
        """Put ``whole`` (the warped shape's box) against a random placed object: start with its
        box centred on that object's centroid and step one pixel at a time along ``angle`` (a
        fraction of a turn) to the first place that fits. False when the ray leaves the canvas
        (or only grazes it) first."""
        size = self.size
        oh, ow = whole.shape
        if np.count_nonzero(whole) < self.min_area:
            return False
        anchor = int(rng.integers(1, len(areas)))
        cy, cx = centres[anchor]
        dy, dx = math.sin(2 * math.pi * angle), math.cos(2 * math.pi * angle)
        for r in range(2 * size):
            y0 = int(round(cy + r * dy - oh / 2.0))
            x0 = int(round(cx + r * dx - ow / 2.0))
            ya, xa = max(y0, 0), max(x0, 0)
            yb, xb = min(y0 + oh, size), min(x0 + ow, size)
            if ya >= yb or xa >= xb:
                return False
            piece = whole[ya - y0 : yb - y0, xa - x0 : xb - x0]
            piece_area = int(np.count_nonzero(piece))
            if piece_area < self.min_area:
                if ya == 0 or xa == 0 or yb == size or xb == size:
                    return False  # sliding off the canvas: what is left would be dropped
                continue
            if self._fits(labels, blocked, areas, piece, piece_area, ya, xa, yb, xb):
                if not self.border_truncation and (y0 < 0 or x0 < 0 or y0 + oh > size or x0 + ow > size):
                    return False
                self._put(labels, blocked, areas, centres, piece, piece_area, ya, xa, yb, xb)
                return True
        return False

    def draw_range(self, seed: int, start: int, stop: int) -> list[np.ndarray]:
        return [self.draw(seed, i) for i in range(start, stop)]


CALIBRATION_ATTACH = (0.0, 0.25, 0.5, 0.75, 1.0)
CALIBRATION_CANVASES = 64  # per attach value: ~0.5 s in all at 128 px
CALIBRATION_SEED = 7_919  # a stream of its own: the calibration never depends on masks.seed


def touching_fraction(masks: list[np.ndarray]) -> float:
    """Fraction of all objects of ``masks`` that touch another object (8-adjacency)."""
    from .stats import touching_neighbour_counts

    touching = total = 0
    for m in masks:
        labels = np.unique(m)
        labels = labels[labels > 0]
        touching += int(np.count_nonzero(touching_neighbour_counts(m, labels)))
        total += len(labels)
    return touching / total if total else 0.0


def calibrated_attach(sampler: PlacementSampler, targets: np.ndarray) -> np.ndarray:
    """Per real image: the attach probability at which placement canvases hold the same fraction
    of touching objects as the real objects of that image's shape pool (``targets``).

    How attaching turns into touching depends on the set (a canvas of two objects can only show
    one contact, shapes cut by the border lose theirs, chance contacts add some), so the mapping
    is measured, not derived: a few canvases at each of ``CALIBRATION_ATTACH`` from a fixed stream,
    then linear interpolation of the (made monotone) curve. Targets above what attaching every
    shape reaches get 1."""
    measured = []
    for p in CALIBRATION_ATTACH:
        sampler.attach = np.full(len(sampler.rates), p)
        measured.append(touching_fraction(sampler.draw_range(CALIBRATION_SEED, 0, CALIBRATION_CANVASES)))
    sampler.attach = None
    curve = np.maximum.accumulate(np.array(measured))
    if curve[-1] <= curve[0]:  # attaching changes nothing here (shapes never fit side by side)
        return np.zeros(len(targets))
    return np.interp(targets, curve, np.array(CALIBRATION_ATTACH), left=0.0, right=1.0)


def _shape_pools(bank: ShapeBank, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each real image: its ``k`` nearest images in log object density (itself first) that
    have shapes, and the edge-corrected sampling probabilities over their shapes."""
    ids = bank.images["image_id"].astype(str).to_numpy()
    log_density = np.log(bank.images["density"].to_numpy(np.float64) + 1e-12)
    shape_image = bank.shapes["image_id"].astype(str).to_numpy()
    weights = bank.sampling_probabilities()
    by_image = {i: np.flatnonzero(shape_image == i) for i in ids}
    has_shapes = np.array([by_image[i].size > 0 for i in ids])
    everything = np.arange(len(bank.crops))
    pools, probs = [], []
    for j in range(len(ids)):
        candidates = np.flatnonzero(has_shapes)
        near = candidates[np.argsort(np.abs(log_density[candidates] - log_density[j]), kind="stable")[:k]]
        pool = np.concatenate([by_image[ids[n]] for n in near]) if near.size else everything
        w = weights[pool]
        w = w / w.sum() if w.sum() > 0 else np.full(len(pool), 1.0 / len(pool))
        pools.append(pool)
        probs.append(w)
    return pools, probs


def generate_placement_masks(bank: ShapeBank, cfg: MasksConfig, seed: int, indices) -> list[np.ndarray]:
    """Masks for the given indices in this process (no files)."""
    sampler = PlacementSampler.from_bank(bank, cfg)
    return [sampler.draw(seed, int(i)) for i in indices]


# --- writing a MaskStore, sharded, resumable, optionally over a process pool ----------------------

_WORKER_SAMPLER: PlacementSampler | None = None


def _init_worker(sampler: PlacementSampler) -> None:
    global _WORKER_SAMPLER
    cv2.setNumThreads(1)
    _WORKER_SAMPLER = sampler


def _write_shard(sampler: PlacementSampler, out_dir: str, k: int, start: int, stop: int, seed: int) -> int:
    masks = sampler.draw_range(seed, start, stop)
    rows = [
        {"index": i, "source": "placement", "seed": seed, "n_objects": int(m.max())}
        for i, m in zip(range(start, stop), masks)
    ]
    MaskStore(out_dir).write_shard(k, masks, rows)
    return k


def _write_shard_in_worker(out_dir: str, k: int, start: int, stop: int, seed: int) -> int:
    return _write_shard(_WORKER_SAMPLER, out_dir, k, start, stop, seed)


def _draw_count_in_worker(seed: int, start: int, stop: int) -> int:
    """Generation only (benchmarks): draw masks and return how many objects, writing nothing."""
    return sum(int(m.max()) for m in _WORKER_SAMPLER.draw_range(seed, start, stop))


def worker_pool(sampler: PlacementSampler, workers: int) -> ProcessPoolExecutor:
    """A pool whose workers each receive the sampler once (not once per shard). Fork-server
    workers: safe even when the parent runs threads (prefect, torch), unlike plain fork."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pipeline.masks.placement"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(sampler,))


SETTINGS_FILE = "placement.json"


def _bank_fingerprint(bank: ShapeBank) -> str:
    """Short hash of the shapes and their statistics: masks from another bank are other masks."""
    crops = arrays_hash(np.asarray(crop, bool) for crop in bank.crops)
    return json_hash([crops, bank.shapes.to_csv(index=False), bank.images.to_csv(index=False)])


def store_settings(bank: ShapeBank, cfg: MasksConfig, count: int, seed: int, shard_size: int) -> dict:
    """Everything the masks of a store depend on (worker count and the other sources do not)."""
    drop = {"count", "seed", "workers", "sources", "segmodel_min_score", "progan_steps"}
    return {"count": int(count), "seed": int(seed), "shard_size": int(shard_size),
            **cfg.model_dump(mode="json", exclude=drop), "shape_bank": _bank_fingerprint(bank)}


def check_store_settings(out_dir: str | Path, settings: dict) -> None:
    store_check(out_dir, settings, SETTINGS_FILE)


def write_placement_masks(
    bank: ShapeBank,
    out_dir: str | Path,
    cfg: MasksConfig,
    count: int,
    seed: int,
    shard_size: int = 500,
    workers: int | None = None,
    progress: bool = True,
) -> MaskStore:
    """Write ``count`` placement masks into a MaskStore at ``out_dir``. Shards whose manifest piece
    exists are skipped, so a killed run resumes where it stopped; a half-written shard is redone.
    A folder holding masks of other settings (``placement.json``) is refused, not reused."""
    from tqdm.auto import tqdm

    workers = cfg.workers if workers is None else workers
    sampler = PlacementSampler.from_bank(bank, cfg)
    settings = store_settings(bank, cfg, count, seed, shard_size)
    check_store_settings(out_dir, settings)
    store = MaskStore(out_dir)
    write_json(store.root / SETTINGS_FILE, settings)
    done = store.completed_shards()
    todo = [r for r in shard_ranges(count, shard_size) if r[0] not in done]
    bar = tqdm(total=count, initial=count - sum(b - a for _, a, b in todo), disable=not progress, desc="placement masks", unit="mask")
    if workers > 1 and multiprocessing.current_process().daemon:
        # a daemonic process (a Dask worker, a pool worker) may not start children: draw here.
        # On a Dask cluster the parallelism is the cluster's; shards are independent either way.
        log.info(f"placement masks: in a daemonic process (e.g. a Dask worker); {len(todo)} shard(s) in-process "
                 f"instead of {workers} worker processes")
        workers = 1
    if workers <= 1 or len(todo) <= 1:
        for k, start, stop in todo:
            _write_shard(sampler, str(store.root), k, start, stop, seed)
            bar.update(stop - start)
    else:
        with worker_pool(sampler, min(workers, len(todo))) as pool:
            futures = {
                pool.submit(_write_shard_in_worker, str(store.root), k, start, stop, seed): stop - start
                for k, start, stop in todo
            }
            for fut in as_completed(futures):
                fut.result()
                bar.update(futures[fut])
    bar.close()
    store.finalize()
    return store
