"""Atomic file writes and safe loads.

Every output of the pipeline goes through these helpers: write to a temporary file in the same
folder, fsync, then ``os.replace``. A killed run therefore leaves either the old file, the new
file or a stray ``*.tmp`` (ignored and overwritten later), never a truncated output.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from .errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _FILE_MODE)  # outputs readable by the team, like any file the user writes
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    """A JSON file of a run or stage folder; a damaged one (a hand edit, a disk that filled up)
    is an InputError naming the file, so every command reports it in one line."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise InputError(f"{path}: not valid JSON{where} ({getattr(e, 'msg', None) or e})") from None


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8/uint16 array (HxW or HxWxC, RGB order) as PNG, atomically."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes(path, buf.tobytes())


def write_parquet(path: str | Path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, map_location: Any = "cpu") -> Any:
    """Load a checkpoint written by :func:`save_torch`; never unpickles arbitrary objects."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def load_user_torch(path: str | Path, what: str) -> Any:
    """Load a torch file the user pointed us at (weights, checkpoints) or fail with one line naming
    the file: missing and unreadable files are input errors, not tracebacks."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found (weights are never downloaded)")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (or, before torch 1.6, a pickle starting with 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise InputError(f"{path}: cannot load {what}: not a PyTorch file")
    try:
        return load_torch(path)
    except Exception as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            # torch's own message asks to retry with weights_only=False, i.e. to run the file's code
            raise InputError(f"{path}: cannot load {what}: it holds Python objects besides tensors "
                             f"(user files are loaded as weights only, never run)") from None
        raise InputError(f"{path}: cannot load {what} ({type(e).__name__})") from None
