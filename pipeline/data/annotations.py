"""Labeled sets whose labels are annotation files (COCO, LabelMe, CVAT XML) instead of ``masks/``.

Engineers label in CVAT, Label Studio, LabelMe or Roboflow, and those tools export outlines, not
instance masks. This module turns such a set into the same :class:`SetReport` a raster set gives:
one :class:`Pair` per labeled image whose ``labels`` draw the ``int32`` instance map on demand, so
``load_pair`` and every stage after it see exactly what a ``masks/`` set gives them.

The conversion happens in memory only: outlines are rasterized once at validation into COCO run
lengths kept on the pair, and painted when a pair is loaded. Nothing is written, into the set folder
or anywhere else (the set must stay byte-identical, and a cache would be one more thing to go stale).

Rules (README 'Bring your labels'):

* every annotation is one object; COCO polygons with several parts, and LabelMe shapes sharing a
  label and a ``group_id``, are one object; ``iscrowd`` RLE is one object too (CVAT writes its brush
  masks that way);
* overlaps: the smaller object is on top (painted last), as most tools show a small object drawn
  over a large one; equal areas keep file order, the later on top; an object covered entirely is
  dropped with a note;
* categories: all merged into one foreground class, unless ``set.yaml`` lists ``categories``;
  annotations of other categories are ignored (their pixels are background);
* an image with an entry but no (selected) annotations is an empty (negative) image; an image file
  with no entry is unlabeled and goes to the unlabeled images;
* coordinates may overshoot the image by up to ``EDGE_TOLERANCE`` pixels (tools let a click land
  on the border); further out is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import rle as rle_codes
from .images import IMAGE_EXTS, InputError, decode, is_gray, to_internal_image
from .label_formats import Parsed, RawImage, RawObject, find_sources, parse

EDGE_TOLERANCE = 1.0  # pixels an outline may reach past the image border before it is an error
NEGATIVE_SHARE_NOTE = 0.2  # above this share of empty images, a note asks whether they are unlabeled


@dataclass
class ImageLabels:
    """One image's objects as run lengths (COCO column-major order), drawn into an instance map on
    demand. Small (a few hundred numbers per object) and picklable, so a report can go to workers."""

    height: int
    width: int
    objects: list[np.ndarray] = field(default_factory=list)  # run lengths per object, file order
    refs: list[str] = field(default_factory=list)  # how the label file names each object
    categories: list[str] = field(default_factory=list)

    def areas(self) -> list[int]:
        return [rle_codes.area(c) for c in self.objects]

    def paint_order(self) -> list[int]:
        """Largest first, so smaller objects end on top; stable, so equal areas keep file order."""
        areas = self.areas()
        return sorted(range(len(self.objects)), key=lambda i: -areas[i])

    def instance_map(self) -> np.ndarray:
        """int32 H x W: 0 background, objects 1..N in file order (ids of fully covered objects are
        closed up, so the map is sequential like a raster set's)."""
        inst = rle_codes.paint(self.height, self.width, self.objects, self.paint_order())
        present = np.unique(inst)
        if len(present) - 1 < len(self.objects):
            lut = np.zeros(len(self.objects) + 1, np.int32)
            lut[present] = np.arange(len(present), dtype=np.int32)
            inst = lut[inst]
        return inst

    def hidden(self) -> list[str]:
        """Refs of objects no pixel of which survives the overlap rule."""
        inst = rle_codes.paint(self.height, self.width, self.objects, self.paint_order())
        present = set(np.unique(inst).tolist())
        return [self.refs[i] for i in range(len(self.objects)) if i + 1 not in present]


# ------------------------------------------------------------------------------------ rasterizing


def _outside(xs: np.ndarray, ys: np.ndarray, width: int, height: int) -> str | None:
    t = EDGE_TOLERANCE
    bad = (xs < -t) | (xs > width + t) | (ys < -t) | (ys > height + t)
    if bad.any():
        i = int(np.argmax(bad))
        return f"point ({xs[i]:g}, {ys[i]:g}) is outside the {width}x{height} image"
    return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _object_rle(obj: RawObject, height: int, width: int) -> dict | str:
    """pycocotools RLE (compressed) of one object on a height x width image, or the problem."""
    from pycocotools import mask as mask_util

    if obj.polygons is not None:
        parts = []
        for poly in obj.polygons:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                return "polygon coordinates are not numbers"
            if not all(math.isfinite(v) for v in poly):
                return "polygon has a non-finite coordinate"
            if len(poly) % 2:
                return f"polygon has an odd number of coordinates ({len(poly)})"
            if len(poly) < 6:
                return f"polygon with {len(poly) // 2} point(s); needs at least 3"
            xy = np.asarray(poly, np.float64).reshape(-1, 2)
            out = _outside(xy[:, 0], xy[:, 1], width, height)
            if out:
                return f"polygon {out}"
            parts.append([float(v) for v in poly])
        if not parts:
            return "empty polygon list"
        rles = mask_util.frPyObjects(parts, height, width)
        return rles[0] if len(rles) == 1 else mask_util.merge(rles)
    if obj.rle is not None:
        size = obj.rle["size"]
        if [int(v) if isinstance(v, (int, float)) else v for v in size] != [height, width]:
            return f"RLE size {size} ([height, width]) does not match the {width}x{height} image"
        counts = obj.rle["counts"]
        try:
            if isinstance(counts, (str, bytes)):
                runs = rle_codes.check_counts(rle_codes.counts_from_string(counts), height, width)
                raw = counts.encode("ascii") if isinstance(counts, str) else counts
                return {"size": [height, width], "counts": raw, "_runs": runs}
            runs = rle_codes.check_counts(counts, height, width)
        except rle_codes.RLEError as e:
            return f"RLE {e}"
        return {"size": [height, width], "_runs": runs}
    if obj.crop is not None:
        top, left, crop = obj.crop
        h, w = crop.shape
        if top < 0 or left < 0 or top + h > height or left + w > width:
            return f"mask rectangle ({left}, {top}) {w}x{h} reaches outside the {width}x{height} image"
        full = np.zeros((height, width), np.uint8, order="F")
        full[top : top + h, left : left + w] = crop
        return mask_util.encode(full)
    return obj.problem or "nothing to draw"


def _runs(rle: dict) -> np.ndarray:
    if "_runs" in rle:
        return rle["_runs"]
    return rle_codes.counts_from_string(rle["counts"])


def _merge(rles: list[dict], height: int, width: int) -> dict:
    from pycocotools import mask as mask_util

    if len(rles) == 1:
        return rles[0]
    compressed = []
    for r in rles:
        if "counts" in r:
            compressed.append({"size": [height, width], "counts": r["counts"]})
        else:  # uncompressed runs: let pycocotools compress them
            rle = {"size": [height, width], "counts": r["_runs"].tolist()}
            compressed.append(mask_util.frPyObjects(rle, height, width))
    return mask_util.merge(compressed)


def build_labels(
    raw: RawImage, height: int, width: int, chosen: set[str] | None, errors: list[str], notes: list[str]
) -> ImageLabels:
    """Check and rasterize one image's objects; problems go to ``errors``/``notes`` one line each,
    naming the label file and the annotation."""
    labels = ImageLabels(height, width)
    groups: dict[tuple, int] = {}
    pending: list[list[dict]] = []
    for obj in raw.objects:
        if chosen is not None and obj.category not in chosen:
            continue
        if obj.skip_note:
            notes.append(f"{raw.source}: {obj.ref}: {obj.skip_note}")
            continue
        if obj.box is not None:
            x, y, w, h = obj.box
            out = _outside(np.array([x, x + w]), np.array([y, y + h]), width, height)
            if out or w < 0 or h < 0:
                errors.append(f"{raw.source}: {obj.ref}: bbox {obj.box} is outside the {width}x{height} image")
                continue
        got = _object_rle(obj, height, width) if obj.problem is None else obj.problem
        if isinstance(got, str):
            errors.append(f"{raw.source}: {obj.ref}: {got}")
            continue
        key = (obj.category, obj.group)
        if obj.group is not None and key in groups:
            pending[groups[key]].append(got)
            continue
        if obj.group is not None:
            groups[key] = len(pending)
        pending.append([got])
        labels.refs.append(obj.ref)
        labels.categories.append(obj.category)
    kept = ImageLabels(height, width)
    for parts, ref, category in zip(pending, labels.refs, labels.categories):
        runs = _runs(_merge(parts, height, width))
        if rle_codes.area(runs) == 0:  # a sliver or a degenerate outline: nothing to learn from
            notes.append(f"{raw.source}: {ref}: covers no pixel; ignored")
            continue
        kept.objects.append(runs)
        kept.refs.append(ref)
        kept.categories.append(category)
    return kept


# ---------------------------------------------------------------------------------- set validation


def _list_images(folder: Path, set_dir: Path, report, skip: set[Path]) -> dict[str, Path]:
    """Image files of a folder by stem, with labeled_set's symlink / duplicate-stem rules; label
    files living among the images (LabelMe, Roboflow) are not reported as ignored files."""
    from .labeled_set import SetReport, _list_files

    scratch = SetReport(root=set_dir, name=set_dir.name)
    found = _list_files(folder, IMAGE_EXTS, set_dir, scratch)[0]
    report.errors.extend(scratch.errors)
    report.notes.extend(n for n in scratch.notes if not any(n.startswith(f"{p}:") for p in skip)
                        and not n.endswith(".json: not a supported image file; ignored"))
    return found


def validate_annotated(report, max_pixels: int, max_instances: int, check_pixels: bool) -> bool:
    """Fill ``report`` for a set labeled by annotation files; False when the set has none (the
    caller then validates ``masks/`` as before). True means the report is complete, errors included."""
    from .labeled_set import SET_YAML_NAME, Pair

    set_dir = report.root
    sources = find_sources(set_dir)
    if not sources:
        return False
    if (set_dir / "masks").is_dir():
        report.errors.append(
            f"{set_dir}: both masks/ and {sources[0].path.relative_to(set_dir)}; keep one label source"
        )
        return True
    if len({(s.fmt, s.tool) for s in sources}) > 1:
        names = ", ".join(str(s.path.relative_to(set_dir)) for s in sources)
        report.errors.append(f"{set_dir}: several label sources ({names}); keep one")
        return True
    parsed = Parsed()
    for source in sources:
        parse(source, parsed)
    report.errors.extend(parsed.errors)
    report.notes.extend(parsed.notes)
    report.label_format = f"{sources[0].tool} ({', '.join(str(s.path.relative_to(set_dir)) for s in sources)})"

    chosen = None
    if report.info.categories:
        chosen = set(report.info.categories)
        unknown = sorted(chosen - parsed.categories)
        if unknown:
            report.errors.append(
                f"{set_dir / SET_YAML_NAME}: categories {', '.join(unknown)} not in the labels "
                f"(they have: {', '.join(sorted(parsed.categories)) or 'none'})"
            )

    # image files, per folder the sources point at
    files: dict[str, Path] = {}
    for folder in dict.fromkeys(s.image_dir for s in sources):
        if not folder.is_dir():
            report.errors.append(f"{folder}: missing folder (the images of {sources[0].path.name})")
            continue
        skip = {s.path for s in sources} | {set_dir / SET_YAML_NAME, set_dir / "unlabeled"}
        for stem, path in _list_images(folder, set_dir, report, skip).items():
            if stem in files:
                report.errors.append(f"{path}: duplicate stem '{stem}' (also {files[stem]}); refused")
                continue
            files[stem] = path

    # label entries by stem
    entries: dict[str, RawImage] = {}
    for raw in parsed.images:
        if raw.stem in entries:
            report.errors.append(
                f"{raw.source}: {raw.ref}: a second entry for image '{raw.stem}' (also {entries[raw.stem].ref}); refused"
            )
            continue
        entries[raw.stem] = raw

    gray_all, n_crowd, negatives = True, 0, []
    for stem in sorted(entries):
        raw = entries[stem]
        ipath = files.get(stem)
        if ipath is None:
            report.errors.append(
                f"{raw.source}: {raw.ref}: no image file '{stem}.*' in {raw.image_dir} "
                "(annotation for an image that is not there)"
            )
            continue
        height, width = raw.height, raw.width
        if check_pixels or height is None:
            try:
                img = decode(ipath, max_pixels)
                gray_all = gray_all and is_gray(img)
                to_internal_image(img, 1 if is_gray(img) else 3, ipath)
            except InputError as e:
                report.errors.append(str(e))
                continue
            ih, iw = img.shape[:2]
            if height is not None and (ih, iw) != (height, width):
                report.errors.append(
                    f"{ipath}: image is {iw}x{ih}, {raw.source.name} {raw.ref} says {width}x{height}"
                )
                continue
            height, width = ih, iw
        n_err = len(report.errors)
        labels = build_labels(raw, height, width, chosen, report.errors, report.notes)
        if len(report.errors) > n_err:
            continue
        if len(labels.objects) > max_instances:
            report.errors.append(
                f"{raw.source}: {raw.ref}: {len(labels.objects)} objects, over the limit of {max_instances}"
            )
            continue
        n_crowd += sum(o.crowd for o in raw.objects if chosen is None or o.category in chosen)
        n_objects = len(labels.objects)
        if check_pixels:
            for ref in labels.hidden():
                report.notes.append(f"{raw.source}: {ref}: entirely covered by smaller objects; dropped")
            n_objects = int(labels.instance_map().max())
        if not labels.objects:
            negatives.append(stem)
            which = " of the chosen categories" if chosen else ""
            report.notes.append(f"{ipath}: {raw.negative_rule}{which}; used as an empty (negative) image")
        report.pairs.append(Pair(stem, ipath, raw.source, height, width, n_objects, labels=labels))
    if check_pixels:
        report.channels = 1 if gray_all else 3

    for stem in sorted(set(files) - set(entries)):
        report.notes.append(
            f"{files[stem]}: no entry in the label file(s); treated as unlabeled (goes to the unlabeled images)"
        )
        report.unlabeled.append(files[stem])
    if n_crowd:
        report.notes.append(
            f"{n_crowd} iscrowd annotation(s) read as one object each (CVAT writes its brush masks this way)"
        )
    if report.pairs and len(negatives) > NEGATIVE_SHARE_NOTE * len(report.pairs):
        report.notes.append(
            f"{len(negatives)} of {len(report.pairs)} labeled images have no annotations and count as empty (negative) "
            "images; if they are only not labeled yet, remove their entries (they then go to the unlabeled images)"
        )

    unl_dir = set_dir / "unlabeled"
    if unl_dir.is_dir():
        for path in _list_images(unl_dir, set_dir, report, set()).values():
            if check_pixels:
                try:
                    decode(path, max_pixels)
                except InputError as e:
                    report.errors.append(str(e))
                    continue
            report.unlabeled.append(path)

    used = sorted({c for p in report.pairs for c in p.labels.categories})
    report.categories = used
    if "object_name" not in report.info.model_fields_set and len(used) == 1:
        report.info.object_name = used[0]  # one category: its name is what the objects are called
    if not files and not parsed.images:
        report.errors.append(f"{set_dir}: empty set (no images and no label entries)")
    elif report.ok and not report.pairs:
        report.errors.append(f"{set_dir}: no usable labeled images")
    if report.info.test:
        missing = sorted(set(report.info.test) - {p.stem for p in report.pairs})
        if missing and report.ok:
            report.errors.append(
                f"{set_dir / SET_YAML_NAME}: test list names stems with no labeled image: {', '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else "")
            )
    return True
