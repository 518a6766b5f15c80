"""The process-wide random generators (Python, NumPy, torch, CUDA): seeding, and a snapshot a
checkpoint can hold, so that a killed training resumes exactly where it left off.

One format for every training loop (segmentation, generators): tensors, ints and lists only, so
the checkpoint loads with ``torch.load(..., weights_only=True)``. Stage code draws from its own
seeded ``np.random.Generator`` where it can; these global generators are what torch's weight
initialisation, dropout and the C++ kernels use.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture() -> dict:
    """A snapshot of every global generator."""
    version, py_state, _ = random.getstate()
    _, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "python_version": int(version),
        "python": list(py_state),
        "numpy_keys": torch.from_numpy(np.asarray(keys, np.int64)),
        "numpy_pos": int(pos),
        "numpy_gauss": [int(has_gauss), float(cached_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore(state: dict) -> None:
    """Put every global generator back as :func:`capture` found it."""
    random.setstate((state["python_version"], tuple(state["python"]), None))
    has_gauss, cached_gauss = state.get("numpy_gauss", [0, 0.0])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
                         int(has_gauss), float(cached_gauss)))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
