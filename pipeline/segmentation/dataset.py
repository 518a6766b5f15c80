"""Training samples for the segmentation model: random native-resolution crops plus augmentation.

Every sample is a pure function of ``(seed, k)`` where ``k`` is the running sample number, so a
run is reproducible with any number of DataLoader workers and resumes exactly: after ``step``
steps the :class:`InfiniteSampler` simply starts at ``step * batch_size``. Training is counted in
steps, not epochs; each pass over the items uses a fresh permutation.

Augmentation (albumentations) moves image and instance mask together (mask with nearest
neighbour), and the training target is computed from the augmented instance mask, so boundaries
are always exact for the pixels the network sees.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.images import InputError, to_internal_image
from .targets import make_target


class InfiniteSampler(Sampler[int]):
    """Yields sample numbers ``start, start + 1, ...`` forever."""

    def __init__(self, start: int = 0):
        self.start = int(start)

    def __iter__(self):
        k = self.start
        while True:
            yield k
            k += 1


def build_augmentation() -> A.Compose:
    """Geometric flips/rotations, light photometric change and a small affine warp."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
            A.Affine(
                scale=(0.9, 1.1),
                rotate=(-15, 15),
                shear=(-5, 5),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            ),
        ]
    )


def _pad_to(image: np.ndarray, mask: np.ndarray, size: int):
    """Reflect-pad images smaller than the crop (the mask too, so mirrored objects stay labelled)."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(image, pads + ((0, 0),), mode="reflect" if min(h, w) > 1 else "edge")
        mask = np.pad(mask, pads, mode="reflect" if min(h, w) > 1 else "edge")
    return image, mask


def random_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    """A ``size x size`` window at native resolution; smaller images are reflect-padded first."""
    image, mask = _pad_to(image, mask, size)
    h, w = mask.shape
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def foreground_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    """A window that holds a random object pixel, anywhere in the window (random if no object)."""
    image, mask = _pad_to(image, mask, size)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return random_crop(image, mask, size, rng)
    h, w = mask.shape
    j = int(rng.integers(len(ys)))
    y = int(np.clip(ys[j] - rng.integers(0, size), 0, h - size))
    x = int(np.clip(xs[j] - rng.integers(0, size), 0, w - size))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def crop_size_advice(masks: list[np.ndarray], size: int, quantile: float = 0.9) -> str | None:
    """A warning when many training objects are wider than the training crops, else None.

    The CPU default trains on 96 px crops: cheap, and on the demo set (objects up to 61 px at the
    90th percentile) as good as 128 px (docs/RESULTS.md section 18). An object wider than the crop is
    never seen whole in training, so its boundary with its neighbours is learnt in pieces; EMPS (115
    px at the 90th percentile) ran its studies at 128. Object extent = its bounding box's longer side."""
    from scipy import ndimage

    extents = [max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
               for m in masks for sl in ndimage.find_objects(np.asarray(m)) if sl is not None]
    if not extents:
        return None
    wide = float(np.quantile(extents, quantile))
    if wide <= size:
        return None
    suggest = int(np.ceil(wide / 32) * 32)
    return (f"{1 - quantile:.0%} of the training objects are {wide:.0f} px or wider, wider than the {size} px "
            f"training crops, so the model never sees them whole: consider segmentation.image_size={suggest}")


class CropDataset(Dataset):
    """Base class: subclasses implement ``__len__`` (number of items) and ``load(i)``.

    ``foreground``: the fraction of samples whose crop is forced to hold an object pixel (nnU-Net
    oversamples a third of its patches this way). Those samples draw their item from the items
    with objects (``object_items``, when a subclass knows them), so rare-object sets (a defect in
    a few images) still show the network objects. 0 keeps plain random crops.
    """

    channels: int
    object_items: list[int] | None = None

    def __init__(self, image_size: int, target: str, augment: bool = True, seed: int = 0, foreground: float = 0.0,
                 stream: int = 0):
        self.stream = int(stream)  # a separate random stream (the joint arm's synthetic samples)
        self.foreground = float(foreground)
        self.image_size = int(image_size)
        self.target = target
        self.augment = augment
        self.seed = int(seed)
        self._transform = build_augmentation() if augment else None
        self._perm_epoch, self._perm = -1, None

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def item_for(self, k: int) -> int:
        """Item used by sample ``k``: a fresh permutation of the items in each pass."""
        n = len(self)
        epoch = k // n
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[k % n])

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 HxWxC, instance mask int32 HxW) of sample ``k`` after crop + augmentation."""
        rng = np.random.default_rng([self.seed, k] if self.stream == 0 else [self.seed, k, self.stream])
        forced = self.foreground > 0 and rng.random() < self.foreground  # no draw at 0: plain crops unchanged
        items = self.object_items if forced else None
        image, mask = self.load(int(items[rng.integers(len(items))]) if items else self.item_for(k))
        crop = foreground_crop if forced else random_crop
        image, mask = crop(image, mask.astype(np.int32, copy=False), self.image_size, rng)
        if self._transform is not None:
            for transform, s in zip(self._transform.transforms, rng.integers(0, 2**31 - 1, len(self._transform.transforms))):
                transform.set_random_seed(int(s))  # independent stream per transform
            out = self._transform(image=np.ascontiguousarray(image), mask=np.ascontiguousarray(mask))
            image, mask = out["image"], out["mask"]
            if image.ndim == 2:
                image = image[:, :, None]
            image = np.clip(image, 0.0, 1.0)
        return image.astype(np.float32, copy=False), mask.astype(np.int32, copy=False)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.sample(int(k))
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        y = torch.from_numpy(make_target(mask, self.target))
        return x, y


class RealPairsDataset(CropDataset):
    """Real (image, instance mask) pairs held in memory, used at native resolution."""

    def __init__(self, pairs, image_size: int, target: str, augment: bool = True, seed: int = 0, foreground: float = 0.0,
                 stream: int = 0):
        super().__init__(image_size, target, augment, seed, foreground, stream)
        if not pairs:
            raise InputError("no training pairs given")
        self.pairs = [(np.asarray(img, np.float32), np.asarray(m, np.int32)) for img, m in pairs]
        self.object_items = [i for i, (_, m) in enumerate(self.pairs) if m.any()]
        chans = {img.shape[2] for img, _ in self.pairs}
        if len(chans) != 1:
            raise InputError(f"training images mix channel counts {sorted(chans)}")
        self.channels = chans.pop()

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int):
        return self.pairs[i]


class SyntheticPairsDataset(CropDataset):
    """Synthetic pairs from a :class:`PairStore` folder, converted to ``channels`` channels."""

    def __init__(
        self, store, channels: int, image_size: int, target: str, augment: bool = True, seed: int = 0,
        foreground: float = 0.0, stream: int = 0,
    ):
        from ..data.store import PairStore

        super().__init__(image_size, target, augment, seed, foreground, stream)
        if isinstance(store, (str, Path)):
            root = Path(store)
            if not (root / "manifest.parquet").is_file() and not any(root.glob("shard_*.parquet")):
                raise InputError(f"{root}: not a synthetic pair store (no manifest.parquet)")
            store = PairStore(root)
        self.store = store
        if len(store) == 0:
            raise InputError(f"{store.root}: synthetic pair store is empty")
        self.channels = int(channels)

    def __len__(self) -> int:
        return len(self.store)

    def load(self, i: int):
        image, mask = self.store[i]
        return to_internal_image(image, self.channels, self.store.root), mask


class ConcatPairStore:
    """Several pair stores read as one (e.g. placement- and segmodel-mask pairs)."""

    def __init__(self, dirs: list[Path]):
        from ..data.store import PairStore

        self.stores = [PairStore(d) for d in dirs]
        self.root = Path(dirs[0]) if dirs else Path(".")
        self.offsets = np.cumsum([0] + [len(s) for s in self.stores])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.stores[k][i - int(self.offsets[k])]


class JointDataset(Dataset):
    """Batches of ``n_real`` real samples followed by ``n_synthetic`` synthetic ones.

    Read with batch size ``n_real + n_synthetic`` from sample number ``step * (n_real + n_synthetic)``:
    position j of step s is real sample ``s * n_real + j`` (exactly the samples the real-only arm
    sees at that step) or synthetic sample ``s * n_synthetic + j - n_real``. Synthetic samples never
    take a real sample's place, so adding them cannot reduce real exposure.
    """

    def __init__(self, real: CropDataset, synthetic: CropDataset, n_real: int, n_synthetic: int):
        if real.channels != synthetic.channels:
            raise InputError(f"cannot mix {real.channels}- and {synthetic.channels}-channel datasets")
        self.real, self.synthetic = real, synthetic
        self.n_real, self.n_synthetic = int(n_real), int(n_synthetic)
        self.channels = real.channels

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic)

    def __getitem__(self, k: int):
        step, j = divmod(int(k), self.n_real + self.n_synthetic)
        if j < self.n_real:
            return self.real[step * self.n_real + j]
        return self.synthetic[step * self.n_synthetic + j - self.n_real]
