"""Training batches from ~100 real pairs: random native-resolution crops + flips + rot90.

No resizing: synthetic masks hold objects at the real images' pixel scale, so the generator must
learn textures at that scale too. Images smaller than the crop are reflect-padded (mask padding is
reflected identically, so padded objects stay consistent with their pixels).

Sampling runs in the main process from one ``numpy.random.Generator`` whose state is checkpointed,
which makes resumed training draw exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from .base import mask_to_input


def _pad_to(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return arr
    pad = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (arr.ndim - 2)
    # reflect needs pad < side; very small images fall back to symmetric-repeat via wrap
    mode = "reflect" if ph < h and pw < w else "symmetric"
    out = np.pad(arr, pad, mode=mode)
    return _pad_to(out, size) if min(out.shape[:2]) < size else out


class CropSampler:
    """Random augmented crops. ``paired=False`` draws masks and images independently (U-GAT-IT)."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], size: int, seed: int, paired: bool = True):
        if not pairs:
            raise ValueError("no training pairs")
        self.images = [_pad_to(np.asarray(img, np.float32), size) for img, _ in pairs]
        self.masks = [_pad_to(np.asarray(m, np.int32), size) for _, m in pairs]
        self.size = size
        self.paired = paired
        self.rng = np.random.default_rng(seed)

    def _crop(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        h, w = arrays[0].shape[:2]
        y = int(self.rng.integers(0, h - self.size + 1))
        x = int(self.rng.integers(0, w - self.size + 1))
        out = [a[y : y + self.size, x : x + self.size] for a in arrays]
        if self.rng.random() < 0.5:
            out = [a[:, ::-1] for a in out]
        if self.rng.random() < 0.5:
            out = [a[::-1] for a in out]
        k = int(self.rng.integers(0, 4))
        return [np.ascontiguousarray(np.rot90(a, k)) for a in out]

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """{'mask': B x 2 x S x S float (0/1), 'image': B x C x S x S in [-1, 1], 'instances': B x S x S}."""
        images, masks = [], []
        n = len(self.images)
        for _ in range(batch_size):
            i = int(self.rng.integers(0, n))
            if self.paired:
                img, m = self._crop([self.images[i], self.masks[i]])
            else:
                (img,) = self._crop([self.images[i]])
                (m,) = self._crop([self.masks[int(self.rng.integers(0, n))]])
            images.append(img)
            masks.append(m)
        inst = torch.from_numpy(np.stack(masks)).long()
        image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) * 2 - 1
        return {"mask": mask_to_input(inst), "image": image.contiguous(), "instances": inst}

    def fixed_batch(self, count: int) -> dict[str, torch.Tensor]:
        """Centre crops of the first ``count`` pairs (paired): the sample grid's rows, always the same."""
        images, masks = [], []
        for img, m in list(zip(self.images, self.masks))[:count]:
            h, w = img.shape[:2]
            y, x = (h - self.size) // 2, (w - self.size) // 2
            images.append(img[y : y + self.size, x : x + self.size])
            masks.append(m[y : y + self.size, x : x + self.size])
        inst = torch.from_numpy(np.stack(masks)).long()
        image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) * 2 - 1
        return {"mask": mask_to_input(inst), "image": image.contiguous(), "instances": inst}

    def get_state(self) -> str:
        return json.dumps(self.rng.bit_generator.state)

    def set_state(self, state: str) -> None:
        self.rng.bit_generator.state = json.loads(state)
