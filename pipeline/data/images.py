"""Reading images and masks into the one internal form every stage uses.

Internal form (documented in the README):

* image: ``float32`` array ``H x W x C`` with values in ``[0, 1]``; ``C`` is 1 for gray sets and 3
  for colour sets (RGBA loses alpha, 16-bit is divided by 65535, 8-bit by 255);
* mask: ``int32`` instance label map ``H x W``; 0 is background, objects are 1..N.

Binary masks (0/1, 0/255, or any single foreground value) become instances by 8-connected
components; masks with more than one foreground value are instance label maps and are relabelled
1..N in order of first appearance of their values. Colour-coded masks (RGB with differing channels)
get one instance per distinct colour.

Every problem raises :class:`InputError` whose message names the file and the problem on one line.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.measure import label as cc_label
from skimage.segmentation import relabel_sequential

from ..errors import InputError  # re-exported: callers import it from here too

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
MASK_EXTS = {".png", ".tif", ".tiff", ".bmp"}

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # we report problems ourselves
Image.MAX_IMAGE_PIXELS = None  # the size limit is ours (config), not Pillow's bomb check


def _check_not_truncated(path: Path, data: bytes) -> None:
    suffix = path.suffix.lower()
    if suffix == ".png" and b"IEND" not in data[-32:]:
        raise InputError(f"{path}: truncated PNG (no IEND chunk at the end)")
    if suffix in (".jpg", ".jpeg") and b"\xff\xd9" not in data[-64:]:
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker)")


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
        return h, w
    except Exception:
        arr = decode(path)
        return arr.shape[0], arr.shape[1]


def decode(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode any supported file to a raw numpy array (channels in RGB order), unchanged depth."""
    path = Path(path)
    if max_pixels is not None:
        try:
            with Image.open(path) as im:
                w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"{path}: image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}")
        except InputError:
            raise
        except Exception:
            pass  # Pillow can't read the header (e.g. some TIFFs); OpenCV decides below
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read file ({e.strerror or e})") from None
    if not data:
        raise InputError(f"{path}: empty file")
    _check_not_truncated(path, data)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None and path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            arr = tifffile.imread(path)
        except Exception:
            arr = None
    if arr is None or arr.size == 0:
        raise InputError(f"{path}: unreadable or corrupt image file")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    if max_pixels is not None and arr.shape[0] * arr.shape[1] > max_pixels:
        raise InputError(
            f"{path}: image is {arr.shape[1]}x{arr.shape[0]} pixels, over the limit of {max_pixels:,}"
        )
    return arr


def is_gray(arr: np.ndarray) -> bool:
    """True for 1-channel images and for RGB(A) images whose colour channels are all equal."""
    if arr.ndim == 2 or arr.shape[2] == 1:
        return True
    rgb = arr[:, :, :3]
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]))


def to_internal_image(arr: np.ndarray, channels: int, path: str | Path = "<array>") -> np.ndarray:
    """Raw decoded array -> float32 HxWxC in [0, 1] with the set's channel count."""
    if arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        img = arr.astype(np.float32)
        if img.size and (np.nanmin(img) < 0 or np.nanmax(img) > 1):
            raise InputError(f"{path}: floating-point image with values outside [0, 1]")
    else:
        raise InputError(f"{path}: unsupported image sample type {arr.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] == 2:  # gray + alpha
        img = img[:, :, :1]
    if channels == 1 and img.shape[2] == 3:
        img = img[:, :, :1] if is_gray(img) else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def read_image(path: str | Path, channels: int, max_pixels: int | None = None) -> np.ndarray:
    return to_internal_image(decode(path, max_pixels), channels, path)


def to_instance_mask(arr: np.ndarray, path: str | Path = "<array>", max_instances: int | None = None) -> np.ndarray:
    """Raw decoded mask -> int32 instance label map (see module docstring for the rules)."""
    if np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: mask holds floating-point values; expected integer labels")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and arr.min() < 0:
        raise InputError(f"{path}: mask holds negative values")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if arr.shape[2] == 1 or (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            arr = arr[:, :, 0]
        else:  # colour-coded instances: one id per distinct colour, black is background
            flat = arr.reshape(-1, arr.shape[2]).astype(np.int64)
            key = (flat[:, 0] << 32) | (flat[:, 1] << 16) | flat[:, 2]
            _, inv = np.unique(key, return_inverse=True)
            ids = inv.reshape(arr.shape[:2]).astype(np.int64)
            bg = ids[np.all(arr == 0, axis=2)]
            arr = ids + 1
            if bg.size:
                arr[ids == bg[0]] = 0
    values = np.unique(arr)
    fg = values[values != 0]
    if fg.size == 0:
        inst = np.zeros(arr.shape, np.int32)
    elif fg.size == 1:  # binary mask: objects are connected components
        inst = cc_label(arr != 0, connectivity=2).astype(np.int32)
    else:
        inst = relabel_sequential(arr.astype(np.int64))[0].astype(np.int32)
    n = int(inst.max())
    if max_instances is not None and n > max_instances:
        raise InputError(f"{path}: {n} instances, over the limit of {max_instances}")
    return inst


def read_mask(path: str | Path, max_pixels: int | None = None, max_instances: int | None = None) -> np.ndarray:
    return to_instance_mask(decode(path, max_pixels), path, max_instances)
