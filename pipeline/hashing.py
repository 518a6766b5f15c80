"""The pipeline's hash recipes, in one place.

Cache keys, checkpoint fingerprints and code fingerprints must be computed the same way everywhere:
two recipes for "the same" key would silently miss the cache (or, worse, hit a stale one). Every
digest is SHA-256 in hex, cut to a short prefix where it only names a cache entry.

The recipes reproduce, byte for byte, the ones they replace, so existing cache keys stay valid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

KEY_LENGTH = 16  # hex digits of a cache key: 64 bits, no collisions at the pipeline's scale


def json_hash(obj: Any, length: int = KEY_LENGTH) -> str:
    """Hash of a JSON-able value (config sections, stage inputs): sorted keys, so dict order does
    not matter; values JSON cannot write (paths, numpy scalars) are hashed as their ``str``."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def arrays_hash(arrays: Iterable, length: int = KEY_LENGTH) -> str:
    """Hash of a sequence of arrays (real masks, real pairs a synthesis draws from): each array's
    shape, dtype and bytes, so equal values in another dtype or layout hash differently; callers
    normalise the dtype first when it must not matter."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}|{a.dtype.str}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:length]


def file_hash(path: str | Path, length: int | None = None) -> str:
    """Hash of one file's bytes (checkpoints, banks), read in 1 MiB chunks so multi-GB checkpoints
    do not have to fit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def files_hash(root: str | Path, files: Iterable[str | Path], length: int = 12) -> str:
    """Hash of several files' names (relative to ``root``) and bytes, in the order given: a code
    fingerprint, so that editing a stage's source invalidates its cached outputs. Including the
    names means that renaming or moving a file changes the hash too."""
    root = Path(root)
    h = hashlib.sha256()
    for f in files:
        f = Path(f)
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:length]
