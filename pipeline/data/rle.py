"""COCO run-length codes as plain run lengths, and instance maps painted from them.

pycocotools rasterizes polygons and encodes masks, but its only way back is a full-image decode per
object; painting a few hundred objects of a megapixel image that way costs about a second per image,
and the pipeline loads its pairs many times. Reading the run lengths out of the compressed string
(a few microseconds per object) and filling the runs directly costs milliseconds instead. The string
is also checked here before anything trusts it: pycocotools' decoder does not check that the runs
add up to the mask size, and a hand-edited or truncated string would make it write past its buffer.

Run lengths are in column-major (Fortran) order and start with a background run, as in COCO.
"""

from __future__ import annotations

import numpy as np


class RLEError(ValueError):
    """A run-length code that is not a valid mask of the stated size; the message says why."""


def counts_from_string(counts: str | bytes) -> np.ndarray:
    """Run lengths of a compressed COCO RLE ``counts`` string (pycocotools' LEB128-like code:
    6-bit characters offset by 48, 5 payload bits each, bit 0x20 = more to come, 0x10 of the last
    character = negative, and from the fourth run on a value is a difference to the run two back)."""
    data = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p, n = 0, len(data)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise RLEError("compressed counts end in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise RLEError(f"compressed counts hold a character outside the code ({chr(data[p])!r})")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise RLEError("compressed counts decode to a negative run length")
        out.append(x)
    return np.asarray(out, np.int64)


def check_counts(counts, height: int, width: int) -> np.ndarray:
    """Run lengths as int64, refused unless they are non-negative integers adding up to height x width."""
    try:
        arr = np.asarray(counts)
    except (TypeError, ValueError):
        raise RLEError("counts are not a list of numbers") from None
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise RLEError("counts are not a flat list of integers")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise RLEError("counts hold a negative run length")
    total = int(arr.sum())
    if total != height * width:
        raise RLEError(f"runs cover {total:,} pixels, the {width}x{height} image has {height * width:,}")
    return arr


def area(counts: np.ndarray) -> int:
    return int(counts[1::2].sum())


def paint(height: int, width: int, objects: list[np.ndarray], order: list[int]) -> np.ndarray:
    """int32 ``height x width`` map; object ``i`` (run lengths ``objects[i]``) gets value ``i + 1``,
    painted in ``order`` so that later objects cover earlier ones where they overlap."""
    inst_t = np.zeros((width, height), np.int32)  # the transpose: its row-major order is column-major
    flat = inst_t.reshape(-1)
    for i in order:
        counts = objects[i]
        ends = np.cumsum(counts)
        starts = ends - counts
        value = i + 1
        for s, e in zip(starts[1::2].tolist(), ends[1::2].tolist()):
            if e > s:
                flat[s:e] = value
    return np.ascontiguousarray(inst_t.T)
