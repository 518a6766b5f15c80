"""Labeled-set intake: discovery, validation (every problem at once), loading and splits.

A labeled set is a folder::

    <set>/images/<stem>.<png|jpg|tif|bmp>     required
    <set>/masks/<stem>.<png|tif|bmp>          required, matched to images by stem
    <set>/unlabeled/*                         optional, images without masks
    <set>/set.yaml                            optional: display_name, object_name, notes,
                                              test (list of stems), pixel_size, pixel_unit,
                                              categories (annotation-file sets)

Instead of ``masks/``, the labels may be annotation files (COCO, LabelMe, CVAT XML); see
:mod:`pipeline.data.annotations`, which fills the same report.

The pipeline only reads a set; nothing here opens a file for writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .images import IMAGE_EXTS, MASK_EXTS, InputError, decode, is_gray, to_instance_mask, to_internal_image

SET_YAML_NAME = "set.yaml"


class SetInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = None
    object_name: str = "object"
    notes: str | None = None
    test: list[str] | None = None  # fixed test stems; wins over the random split
    pixel_size: float | None = None  # physical size of one pixel, for object sizes in units
    pixel_unit: str = "px"
    procedural: bool = False  # True for the generated demo set
    categories: list[str] | None = None  # annotation-file sets: categories that count (default all)


@dataclass
class Pair:
    stem: str
    image: Path
    mask: Path
    height: int
    width: int
    n_objects: int
    labels: Any = None  # annotation-file sets: ImageLabels drawing the mask (``mask`` names the label file)


@dataclass
class SetReport:
    """What validation found. ``ok`` is False when there is any error."""

    root: Path
    name: str
    pairs: list[Pair] = field(default_factory=list)
    unlabeled: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    channels: int = 1
    info: SetInfo = field(default_factory=SetInfo)
    label_format: str = "masks/"  # or the annotation format and file(s) the labels came from
    categories: list[str] = field(default_factory=list)  # annotation categories used as objects

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def stems(self) -> list[str]:
        return [p.stem for p in self.pairs]

    def summary(self) -> str:
        n_obj = sum(p.n_objects for p in self.pairs)
        kind = "gray" if self.channels == 1 else "RGB"
        tag = " (procedural demo set)" if self.info.procedural else ""
        return (
            f"{self.name}{tag}: {len(self.pairs)} labeled pairs, {n_obj} objects, {kind}, "
            f"{len(self.unlabeled)} unlabeled images"
            + (f"; labels: {self.label_format}, categories: {', '.join(self.categories)}" if self.categories else "")
        )


class SetInvalid(InputError):
    def __init__(self, report: SetReport):
        self.report = report
        super().__init__("\n".join(report.errors))


def _outside(path: Path, root_resolved: Path) -> Path | None:
    """Where ``path`` really is, when that is outside the set (through a symlink), else None."""
    target = path.resolve()
    return None if target.is_relative_to(root_resolved) else target


def _list_files(folder: Path, exts: set[str], set_root: Path, report: SetReport) -> tuple[dict[str, Path], set[str]]:
    """Files of a set's sub-folder by stem, and the stems refused as ambiguous (same stem,
    different extensions). Refuses symlinks that lead out of the set."""
    by_stem: dict[str, Path] = {}
    ambiguous: set[str] = set()
    root_resolved = set_root.resolve()
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() and (target := _outside(path, root_resolved)) is not None:
            report.errors.append(f"{path}: symlink points outside the set ({target}); refused")
            continue
        if path.is_dir():
            report.notes.append(f"{path}: sub-folder ignored")
            continue
        if path.suffix.lower() not in exts:
            report.notes.append(f"{path}: not a supported image file; ignored")
            continue
        if path.stem in by_stem or path.stem in ambiguous:
            first = by_stem.pop(path.stem, None)
            if first is not None:
                report.errors.append(f"{first}: duplicate stem '{path.stem}' with different extensions; refused")
            report.errors.append(f"{path}: duplicate stem '{path.stem}' with different extensions; refused")
            ambiguous.add(path.stem)
            continue
        by_stem[path.stem] = path
    return by_stem, ambiguous


def _read_set_yaml(path: Path, report: SetReport) -> None:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        report.info = SetInfo.model_validate(raw)
    except yaml.YAMLError as e:
        report.errors.append(f"{path}: not valid YAML ({str(e).splitlines()[0]})")
    except ValidationError as e:
        msgs = "; ".join(
            ("unknown key " if err["type"] == "extra_forbidden" else "") + ".".join(map(str, err["loc"]))
            + ("" if err["type"] == "extra_forbidden" else f": {err['msg']}")
            for err in e.errors()
        )
        report.errors.append(f"{path}: {msgs}")
    except OSError as e:
        report.errors.append(f"{path}: cannot read ({e.strerror or e})")


def validate_set(
    set_dir: str | Path,
    max_pixels: int = 40_000_000,
    max_instances: int = 65_535,
    check_pixels: bool = True,
) -> SetReport:
    """Check a labeled set and report every problem, one line per file.

    ``check_pixels=False`` skips decoding (fast re-checks of a set already validated).
    """
    set_dir = Path(set_dir)
    report = SetReport(root=set_dir, name=set_dir.name)
    if not set_dir.is_dir():
        report.errors.append(f"{set_dir}: no such labeled-set folder")
        return report
    if (set_dir / SET_YAML_NAME).is_file():
        _read_set_yaml(set_dir / SET_YAML_NAME, report)
    img_dir, mask_dir, unl_dir = set_dir / "images", set_dir / "masks", set_dir / "unlabeled"
    # one rule for files and folders: what a set holds must be inside it, also through symlinks
    root_resolved = set_dir.resolve()
    for d in (img_dir, mask_dir, unl_dir, set_dir / SET_YAML_NAME):
        if d.is_symlink() and (target := _outside(d, root_resolved)) is not None:
            report.errors.append(f"{d}: symlink points outside the set ({target}); refused")
    if not report.ok:
        return report
    from .annotations import validate_annotated  # COCO / LabelMe / CVAT labels instead of masks/

    if validate_annotated(report, max_pixels, max_instances, check_pixels):
        return report
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            report.errors.append(
                f"{d}: missing folder (a labeled set needs images/ and masks/, or images/ and "
                "annotations.json / annotations.xml / LabelMe JSON; README 'Bring your labels')"
            )
    if not report.ok:
        return report

    images, ambiguous_images = _list_files(img_dir, IMAGE_EXTS, set_dir, report)
    masks, ambiguous_masks = _list_files(mask_dir, MASK_EXTS | IMAGE_EXTS, set_dir, report)
    # a stem refused as a duplicate on one side is already reported: it is no orphan on the other
    for stem in sorted(set(masks) - set(images) - ambiguous_images):
        report.errors.append(f"{masks[stem]}: mask without image (no images/{stem}.*)")
    for stem in sorted(set(images) - set(masks) - ambiguous_masks):
        report.errors.append(f"{images[stem]}: image without mask (no masks/{stem}.*)")
    for stem in sorted(set(images) & set(masks)):
        if masks[stem].suffix.lower() in (".jpg", ".jpeg"):
            report.errors.append(f"{masks[stem]}: JPEG masks are lossy and corrupt labels; use PNG or TIFF")

    gray_all = True
    for stem in sorted(set(images) & set(masks)):
        ipath, mpath = images[stem], masks[stem]
        if mpath.suffix.lower() in (".jpg", ".jpeg"):
            continue
        if not check_pixels:
            report.pairs.append(Pair(stem, ipath, mpath, 0, 0, 0))
            continue
        bad = False
        try:
            img = decode(ipath, max_pixels, report.notes)
            gray_all = gray_all and is_gray(img)
            to_internal_image(img, 1 if is_gray(img) else 3, ipath)
        except InputError as e:
            report.errors.append(str(e))
            bad = True
        try:
            inst = to_instance_mask(decode(mpath, max_pixels, report.notes), mpath, max_instances, report.notes)
        except InputError as e:
            report.errors.append(str(e))
            continue
        if bad:
            continue
        if img.shape[:2] != inst.shape[:2]:
            report.errors.append(
                f"{mpath}: size {inst.shape[1]}x{inst.shape[0]} does not match image {ipath.name} "
                f"({img.shape[1]}x{img.shape[0]})"
            )
            continue
        report.pairs.append(Pair(stem, ipath, mpath, img.shape[0], img.shape[1], int(inst.max())))
    report.channels = 1 if gray_all else 3

    if unl_dir.is_dir():
        for stem, path in _list_files(unl_dir, IMAGE_EXTS, set_dir, report)[0].items():
            if check_pixels:
                try:
                    decode(path, max_pixels, report.notes)
                except InputError as e:
                    report.errors.append(str(e))
                    continue
            report.unlabeled.append(path)

    if not images and not masks:
        report.errors.append(f"{set_dir}: empty set (no images in images/ and no masks in masks/)")
    elif report.ok and not report.pairs:
        report.errors.append(f"{set_dir}: no usable image/mask pairs")
    if report.info.test:
        missing = sorted(set(report.info.test) - set(images))
        if missing:
            report.errors.append(
                f"{set_dir / SET_YAML_NAME}: test list names stems with no image: {', '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else "")
            )
    return report


def require_valid(set_dir: str | Path, max_pixels: int = 40_000_000, max_instances: int = 65_535) -> SetReport:
    report = validate_set(set_dir, max_pixels, max_instances)
    if not report.ok:
        raise SetInvalid(report)
    return report


def load_pair(report: SetReport, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 HxWxC, instance mask int32 HxW) for one stem of a validated set."""
    pair = next(p for p in report.pairs if p.stem == stem)
    image = to_internal_image(decode(pair.image), report.channels, pair.image)
    return image, load_mask(pair)


def load_mask(pair: Pair) -> np.ndarray:
    """int32 instance mask of one validated pair: drawn from its annotations, or read from its mask file."""
    if pair.labels is not None:
        return pair.labels.instance_map()
    return to_instance_mask(decode(pair.mask), pair.mask)


def load_pairs(report: SetReport, stems: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [load_pair(report, s) for s in stems]


def load_unlabeled(report: SetReport, path: Path) -> np.ndarray:
    return to_internal_image(decode(path), report.channels, path)


def make_splits(
    stems: list[str], n_train: int, n_val: int, n_test: int | None, seed: int, fixed_test: list[str] | None = None
) -> dict[str, list[str]]:
    """Deterministic train/val/test split by seed. A fixed test list wins; train and val are drawn
    from what is left, and shrink (val first keeps at least one) when the set is small."""
    stems = sorted(stems)
    rng = np.random.default_rng(seed)
    if fixed_test:
        test = sorted(set(fixed_test) & set(stems))
        rest = [s for s in stems if s not in set(test)]
        rest = [rest[i] for i in rng.permutation(len(rest))]
    else:
        perm = [stems[i] for i in rng.permutation(len(stems))]
        if n_test is None:
            n_test = max(1, len(perm) - n_train - n_val)
        n_test = min(n_test, max(1, len(perm) // 5)) if len(perm) < n_train + n_val + n_test else n_test
        test, rest = sorted(perm[:n_test]), perm[n_test:]
    n_val_eff = min(n_val, max(1, len(rest) // 5)) if len(rest) < n_train + n_val else n_val
    val = sorted(rest[:n_val_eff])
    train = sorted(rest[n_val_eff : n_val_eff + n_train])
    return {"train": train, "val": val, "test": test}
