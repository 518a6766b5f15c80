"""Reading images and masks into the one internal form every stage uses.

Internal form (documented in the README):

* image: ``float32`` array ``H x W x C`` with values in ``[0, 1]``; ``C`` is 1 for gray sets and 3
  for colour sets (RGBA loses alpha, 16-bit is divided by 65535, 8-bit by 255);
* mask: ``int32`` instance label map ``H x W``; 0 is background, objects are 1..N.

Binary masks (0/1, 0/255, or any single foreground value) become instances by 8-connected
components; masks with more than one foreground value are instance label maps and are relabelled
1..N in order of first appearance of their values. Colour-coded masks (RGB with differing channels)
get one instance per distinct colour. A binary mask whose edges were anti-aliased or interpolated
(one dominant value plus a thin fringe of grey levels) is read as binary, with a note.

A file is judged by its whole content, not its name or its last bytes: its format must match its
extension, PNG and JPEG structure is walked, and every warning of the C decoders (libjpeg, libpng)
is attributed to the file instead of reaching the terminal as an unnamed line.

Every problem raises :class:`InputError` whose message names the file and the problem on one line.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image
from skimage.measure import label as cc_label
from skimage.segmentation import relabel_sequential

from ..errors import InputError  # re-exported: callers import it from here too

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
MASK_EXTS = {".png", ".tif", ".tiff", ".bmp"}

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # we report problems ourselves
# Pillow's decompression-bomb guard stays on for the whole process; our own limit (config
# data.max_image_pixels) is checked from the file header before any pixel is decoded.


# ---------------------------------------------------------------------------------------------
# What a file is: magic bytes, and the structure of PNG and JPEG files
# ---------------------------------------------------------------------------------------------

_SUFFIX_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes hold (PNG, JPEG, TIFF, BMP, ...), or None when it is no image
    format we know. Decided by magic bytes, never by the file name."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF/AVIF"
    if data.startswith(b"\x00\x00\x00\x0cjP  ") or data.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG 2000"
    return None


def _describe_non_image(data: bytes) -> str:
    head = data[:512].lstrip()
    if head.startswith(b"%PDF"):
        return "PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    if head[:1] in (b"<",) and (b"html" in head[:200].lower() or b"<svg" in head[:200].lower() or head.startswith(b"<?xml")):
        return "HTML/XML text"
    if head.startswith(b"version https://git-lfs"):
        return "Git LFS pointer, not the file itself; run git lfs pull"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary data"


def _check_format(path: Path, data: bytes) -> str:
    """The format of ``data``; refuses a file whose content is not what its extension says, with
    what it is instead (a JPEG renamed .png is lossy, a text file is no image at all)."""
    expected = _SUFFIX_FORMAT.get(path.suffix.lower())
    found = sniff_format(data)
    if expected is None or found == expected:
        return found or ""
    if found is not None:
        return _raise(path, f"not a {expected} file (looks like {found} data); save it as {expected} "
                            f"or give it the matching extension")
    return _raise(path, f"not an image file (looks like {_describe_non_image(data)})")


def _raise(path: Path, problem: str):
    raise InputError(f"{path}: {problem}")


def _png_structure(path: Path, data: bytes, notes: list[str] | None) -> tuple[int, int]:
    """Walk a PNG's chunks: (width, height) from IHDR. Refuses a file that ends before IEND or
    whose critical chunk fails its CRC; bytes after IEND are ignored with a note."""
    if len(data) < 33 or data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        _raise(path, "unreadable or corrupt PNG (no IHDR header chunk)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    pos = 8
    while True:
        if pos + 12 > len(data):
            _raise(path, "truncated PNG (the file ends before the IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        if not ctype.isalpha():
            _raise(path, f"corrupt PNG (garbage where a chunk should start, at byte {pos})")
        name = ctype.decode("ascii")
        end = pos + 12 + length
        if end > len(data):
            _raise(path, f"truncated PNG (the file ends inside the {name} chunk at byte {pos})")
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            if name[0].isupper():  # critical chunk: the pixels or their layout are damaged
                _raise(path, f"corrupt PNG (checksum error in the {name} chunk at byte {pos})")
            if notes is not None:
                notes.append(f"{path}: checksum error in the ancillary {name} chunk; chunk ignored")
        if name == "IEND":
            if end < len(data) and notes is not None:
                notes.append(f"{path}: {len(data) - end} bytes after the end of the PNG data; ignored")
            return width, height
        pos = end


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker inside entropy-coded data
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers that may follow a scan: tables, restart interval, next scan, comments, application data, end
_JPEG_AFTER_SCAN = {0xC4, 0xCC, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFE, *range(0xE0, 0xF0)}


def _jpeg_structure(path: Path, data: bytes, notes: list[str] | None) -> tuple[int, int]:
    """Walk a JPEG's segments and scans: (width, height) from the frame header. Refuses a file that
    ends before its end-of-image marker, or whose compressed data holds a byte pair no encoder
    writes; bytes after the end marker are ignored with a note. Damage that keeps the marker
    structure intact is left to the decoder (its warnings become errors)."""
    size: tuple[int, int] | None = None
    pos, n, in_scans = 2, len(data), False

    def broken(at: int, what: str):
        if data.find(b"\xff\xd9", at) < 0:
            _raise(path, "truncated JPEG (no end-of-image marker)")
        _raise(path, f"corrupt JPEG data ({what} at byte {at})")

    while True:
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 2 > n:
            _raise(path, "truncated JPEG (no end-of-image marker)")
        if data[pos] != 0xFF:
            broken(pos, "garbage where a marker should be")
        marker = data[pos + 1]
        if in_scans and marker not in _JPEG_AFTER_SCAN:
            broken(pos, f"invalid marker 0x{marker:02X} in the compressed data")
        if marker == 0xD9:
            if size is None:
                _raise(path, "corrupt JPEG (no frame header before the end-of-image marker)")
            end = pos + 2
            if end < n and notes is not None:
                notes.append(f"{path}: {n - end} bytes after the end of the JPEG data; ignored")
            return size
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            _raise(path, "truncated JPEG (no end-of-image marker)")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > n:
            broken(pos, f"segment 0x{marker:02X} runs past the end of the file")
        if marker in _JPEG_SOF and length >= 7:
            size = (int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(data[pos + 5 : pos + 7], "big"))
        pos += 2 + length
        if marker == 0xDA:  # start of scan: compressed data runs to the next marker
            in_scans = True
            m = _JPEG_MARKER.search(data, pos)
            if m is None:
                _raise(path, "truncated JPEG (no end-of-image marker)")
            pos = m.start()


def _header_size(path: Path, data: bytes, fmt: str, notes: list[str] | None) -> tuple[int, int] | None:
    """(width, height) without decoding pixels; None when the header cannot tell."""
    if fmt == "PNG":
        return _png_structure(path, data, notes)
    if fmt == "JPEG":
        return _jpeg_structure(path, data, notes)
    if fmt == "TIFF":
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        except Exception:
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Exception:  # Pillow's bomb error included: our limit, not Pillow's, decides
        return None


# ---------------------------------------------------------------------------------------------
# Decoding, with what the C decoders print attributed to the file
# ---------------------------------------------------------------------------------------------

_stderr_lock = threading.Lock()
# Lines of libjpeg / libpng / libtiff that mean the pixels are damaged (the rest are notes).
_DAMAGE = re.compile(r"corrupt|premature|error|invalid|bogus|bad |truncat|incomplete|not enough|unexpected", re.I)
_DECODER_LINE = re.compile(r"jpeg|png|tiff|corrupt|premature|marker|huffman|warn|error|bogus|invalid|incomplete|"
                           r"extraneous|data segment|scan|chunk|crc|tag|directory", re.I)
# Another thread's log line (Prefect "00:42:06.437 | ERROR | ...", logging / Dask "2026-12-01
# 00:42:06,427 - ... WARNING ...") or a Python traceback written while a decoder's output is being
# captured. No C decoder starts a message with a time stamp; without this, a Dask worker's
# "CancelledError" warning made a good PNG "corrupt" and failed a whole training arm.
_OTHER_THREAD = re.compile(r"^\s*(\d{4}-\d{2}-\d{2}[ T])?\d{1,2}:\d{2}:\d{2}([.,]\d+)?\b|^\s*(Traceback |File \")")


@contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Collect what C code prints on file descriptor 2 meanwhile (libjpeg and libpng print their
    warnings there, without the file's name). Lines that do not look like a decoder's (another
    thread's output) are passed on to the real stderr unchanged."""
    lines: list[str] = []
    with _stderr_lock:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to capture (closed descriptor): nothing can leak either
            yield lines
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
        for line in text.splitlines():
            if not line.strip():
                continue
            if _DECODER_LINE.search(line) and not _OTHER_THREAD.search(line):
                lines.append(line.strip())
            else:
                os.write(2, (line + "\n").encode())


def _cv2_decode(path: Path, data: bytes, notes: list[str] | None) -> np.ndarray | None:
    """cv2.imdecode whose decoder messages become an error (damaged pixels) or a note, both naming
    the file, instead of unnamed lines on the terminal."""
    with _native_stderr() as said:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    damage = [line for line in said if _DAMAGE.search(line)]
    if damage:
        fmt = _SUFFIX_FORMAT.get(path.suffix.lower(), "image")
        _raise(path, f"corrupt {fmt} file (decoder: {'; '.join(dict.fromkeys(damage))})")
    if said and notes is not None:
        notes.append(f"{path}: decoder said: {'; '.join(dict.fromkeys(said))}")
    return arr


def _check_pixels(path: Path, size: tuple[int, int] | None, max_pixels: int | None) -> None:
    if max_pixels is not None and size is not None and size[0] * size[1] > max_pixels:
        w, h = size
        _raise(path, f"image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}")


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding pixels."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read file ({e.strerror or e})") from None
    size = _header_size(path, data, _check_format(path, data), None)
    if size is None:
        arr = decode(path)
        return arr.shape[0], arr.shape[1]
    return size[1], size[0]


def decode(path: str | Path, max_pixels: int | None = None, notes: list[str] | None = None) -> np.ndarray:
    """Decode any supported file to a raw numpy array (channels in RGB order), unchanged depth.

    The whole file is checked, not only its last bytes: the content must be the format its
    extension names, PNG and JPEG structure is walked (truncation is an error, bytes after the end
    marker a note), and every warning of the C decoders is attributed to the file (damaged data
    is an error). ``notes`` collects the harmless findings; ``max_pixels`` is checked from the
    header before any pixel is decoded."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read file ({e.strerror or e})") from None
    if not data:
        raise InputError(f"{path}: empty file")
    fmt = _check_format(path, data)
    _check_pixels(path, _header_size(path, data, fmt, notes), max_pixels)
    arr = _cv2_decode(path, data, notes)
    if arr is None and fmt == "TIFF":
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
    _check_pixels(path, (arr.shape[1], arr.shape[0]), max_pixels)
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


def _interior(arr: np.ndarray) -> np.ndarray:
    """Pixels whose 8 neighbours all hold the same value as they do (image border: not interior)."""
    inner = np.zeros(arr.shape, bool)
    c = arr[1:-1, 1:-1]
    same = np.ones(c.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                same &= arr[dy : dy + c.shape[0], dx : dx + c.shape[1]] == c
    inner[1:-1, 1:-1] = same
    return inner


def antialiased_binary(arr: np.ndarray) -> int:
    """Number of grey edge values when a 2-D mask is a binary mask drawn with anti-aliasing or
    resized with interpolation, else 0.

    Such a mask holds one dominant foreground value (the maximum) plus a fringe of in-between
    values only along the objects' edges. Read as an instance map, every fringe value would become
    an "object" (two anti-aliased circles turn into ~40 sliver instances). A real instance map
    differs: its ids are solid regions with an inside, and no single id holds most of the
    foreground while all others are one or two pixels thin."""
    if arr.ndim != 2 or arr.size == 0:
        return 0
    values, counts = np.unique(arr, return_counts=True)
    keep = values != 0
    values, counts = values[keep], counts[keep]
    if values.size < 3:  # the maximum and at least two fringe values
        return 0
    top, n_fg = values[-1], int(counts.sum())
    if counts[-1] < 0.5 * n_fg:
        return 0
    fringe = (arr != 0) & (arr != top)
    n_fringe = int(fringe.sum())
    if (_interior(arr) & fringe).sum() > 0.05 * n_fringe:
        return 0  # in-between values with an inside: objects, not an edge fringe
    near_top = cv2.dilate((arr == top).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if (fringe & near_top).sum() < 0.9 * n_fringe:
        return 0
    return int(values.size - 1)


def to_instance_mask(
    arr: np.ndarray, path: str | Path = "<array>", max_instances: int | None = None, notes: list[str] | None = None
) -> np.ndarray:
    """Raw decoded mask -> int32 instance label map (see module docstring for the rules).

    A binary mask with an anti-aliased or interpolated edge (see :func:`antialiased_binary`) is
    read as binary at half its maximum, with a note: the alternative, one instance per grey
    level, silently trains on sliver objects."""
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
    fringe = antialiased_binary(arr)
    if fringe:
        top = int(arr.max())
        arr = (arr.astype(np.int64) * 2 >= top).astype(np.uint8)
        if notes is not None:
            notes.append(
                f"{path}: binary mask with {fringe} grey edge values (anti-aliased or resized with "
                f"interpolation); read as binary at {(top + 1) // 2}. Save masks without anti-aliasing "
                f"(nearest-neighbour resizing) to silence this"
            )
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
