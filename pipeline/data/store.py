"""Sharded on-disk stores for synthetic masks and synthetic (mask, image) pairs.

Stages hand data to each other through these folders plus a manifest, never through memory.

* :class:`MaskStore` -- ``shard_00000.npz`` (``masks``: uint16 ``N x H x W`` instance maps) and a
  manifest piece ``shard_00000.parquet`` per shard.
* :class:`PairStore` -- ``shard_00000/`` holding ``<index>_image.png`` and ``<index>_mask.png``
  (16-bit instance map), plus ``shard_00000.parquet``.

A shard is complete exactly when its manifest piece exists: the piece is written (atomically) after
the data, so a killed writer leaves an incomplete shard that is rewritten on resume, never read.
``finalize()`` concatenates the pieces into ``manifest.parquet``.
"""

from __future__ import annotations

import re
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import read_json, write_npz, write_parquet, write_png
from .images import decode, to_internal_image

_PIECE = re.compile(r"^shard_(\d{5})\.parquet$")


def check_store_settings(out_dir: str | Path, settings: dict, settings_file: str, what: str = "masks") -> None:
    """Reuse finished shards only when they were made with these very settings (recorded in
    ``out_dir/settings_file`` by the writer).

    Shards are the unit of resume, so a folder written with another count, size, seed or source
    would otherwise be passed off as the requested data (ask for 4 of 64x64, get the 3 of 32x32
    already there). A mismatch is a one-line error: the folder is the user's, it is not deleted."""
    out_dir = Path(out_dir)
    path = out_dir / settings_file
    has_shards = out_dir.is_dir() and any(out_dir.glob("shard_*.parquet"))
    if path.is_file():
        old = read_json(path)
        diff = [f"{k} {old.get(k)} -> {v}" for k, v in settings.items() if old.get(k) != v]
        if diff and has_shards:
            raise InputError(f"{out_dir}: holds {what} made with other settings ({', '.join(diff)}); "
                             f"use another --out or delete that folder")
    elif has_shards:
        raise InputError(f"{out_dir}: holds {what} without a record of their settings ({settings_file}); "
                         f"use another --out or delete that folder")


def shard_name(k: int) -> str:
    return f"shard_{k:05d}"


def shard_ranges(count: int, shard_size: int) -> list[tuple[int, int, int]]:
    """[(shard, start, stop)] covering ``range(count)``."""
    return [(k, s, min(s + shard_size, count)) for k, s in enumerate(range(0, count, shard_size))]


class _Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def completed_shards(self) -> set[int]:
        return {int(m.group(1)) for p in self.root.iterdir() if (m := _PIECE.match(p.name))}

    def finalize(self) -> pd.DataFrame:
        pieces = sorted(p for p in self.root.iterdir() if _PIECE.match(p.name))
        frame = pd.concat([pd.read_parquet(p) for p in pieces], ignore_index=True) if pieces else pd.DataFrame()
        if len(frame):
            frame = frame.sort_values("index").reset_index(drop=True)
        write_parquet(self.root / "manifest.parquet", frame)
        self._manifest = frame
        return frame

    @property
    def manifest(self) -> pd.DataFrame:
        if getattr(self, "_manifest", None) is None:
            path = self.root / "manifest.parquet"
            self._manifest = pd.read_parquet(path) if path.is_file() else self.finalize()
        return self._manifest

    def __len__(self) -> int:
        return len(self.manifest)


class MaskStore(_Store):
    def write_shard(self, k: int, masks: np.ndarray | list[np.ndarray], rows: list[dict]) -> None:
        """``rows[i]`` describes ``masks[i]`` and must hold an ``index`` key."""
        arr = np.stack([np.asarray(m) for m in masks]).astype(np.uint16)
        if len(rows) != len(arr):
            raise ValueError("one manifest row per mask")
        write_npz(self.root / f"{shard_name(k)}.npz", masks=arr)
        frame = pd.DataFrame(rows)
        frame["shard"] = k
        frame["offset"] = np.arange(len(rows))
        write_parquet(self.root / f"{shard_name(k)}.parquet", frame)

    @staticmethod
    @lru_cache(maxsize=4)
    def _load_shard(path: str) -> np.ndarray:
        with np.load(path) as z:
            return z["masks"]

    def __getitem__(self, i: int) -> np.ndarray:
        row = self.manifest.iloc[i]
        arr = self._load_shard(str(self.root / f"{shard_name(int(row['shard']))}.npz"))
        return arr[int(row["offset"])].astype(np.int32)

    def iter_shards(self):
        """Yield (manifest rows, int32 masks) shard by shard: bounded memory for any count."""
        for k, rows in self.manifest.groupby("shard", sort=True):
            arr = self._load_shard(str(self.root / f"{shard_name(int(k))}.npz"))
            yield rows, arr[rows["offset"].to_numpy()].astype(np.int32)


class PairStore(_Store):
    def write_shard(self, k: int, images: list[np.ndarray], masks: list[np.ndarray], rows: list[dict]) -> None:
        """images: float32 HxWxC in [0, 1]; masks: int instance maps; rows hold ``index``."""
        folder = self.root / shard_name(k)
        if folder.exists():  # leftovers of a killed writer: this shard restarts from scratch
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for img, mask, row in zip(images, masks, rows, strict=True):
            i = int(row["index"])
            write_png(folder / f"{i:07d}_image.png", np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
            write_png(folder / f"{i:07d}_mask.png", np.asarray(mask).astype(np.uint16))
        frame = pd.DataFrame(rows)
        frame["shard"] = k
        frame["image"] = [f"{shard_name(k)}/{int(r['index']):07d}_image.png" for r in rows]
        frame["mask"] = [f"{shard_name(k)}/{int(r['index']):07d}_mask.png" for r in rows]
        write_parquet(self.root / f"{shard_name(k)}.parquet", frame)

    def channels(self) -> int:
        img = decode(self.root / self.manifest.iloc[0]["image"])
        return 1 if img.ndim == 2 else img.shape[2]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.manifest.iloc[i]
        raw = decode(self.root / row["image"])
        image = to_internal_image(raw, 1 if raw.ndim == 2 else 3, row["image"])
        mask = decode(self.root / row["mask"]).astype(np.int32)  # written by us: ids kept as is
        return image, mask
