"""Readers for the annotation files labeling tools export: COCO (CVAT, Label Studio, Roboflow, our
own export-coco), LabelMe per-image JSON, CVAT for images 1.1 XML.

Each reader only parses: it turns a file into :class:`RawImage` entries holding :class:`RawObject`
outlines in whole-image pixel coordinates, and reports what it cannot parse as one line naming the
file and the entry. Checking geometry against the image and drawing instance maps is the same for
every format and lives in :mod:`pipeline.data.annotations`, so a rule (points needed, edge
tolerance, overlap order) cannot differ between formats.

Nothing here writes anywhere.
"""

from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_LABEL_FILE_BYTES = 512 * 1024 * 1024  # a label file larger than this is refused, not parsed
ELLIPSE_VERTICES = 64  # circles / ellipses are drawn as polygons with this many corners


@dataclass
class RawObject:
    """One object outline as a file states it. Exactly one of polygons / rle / crop is set."""

    ref: str  # how messages name it: "annotation 17", "shape 3 (polygon)", "<polygon> #2"
    category: str
    polygons: list[list[float]] | None = None  # flat x0, y0, x1, y1, ... per part, pixel coordinates
    rle: dict | None = None  # COCO RLE: {"size": [h, w], "counts": list | str}
    crop: tuple[int, int, np.ndarray] | None = None  # (top, left, bool mask) of a bitmap object
    box: list[float] | None = None  # COCO bbox [x, y, w, h], checked against the image only
    group: Any = None  # objects of one image with equal (category, group) are one object (LabelMe group_id)
    crowd: bool = False
    problem: str | None = None  # set when the entry cannot be drawn (box only, not an area, ...)
    skip_note: str | None = None  # set for entries that are no objects (polylines, points): a note, not an error


@dataclass
class RawImage:
    """One image as a label file describes it."""

    source: Path  # the label file, for messages
    ref: str  # "image entry 3 'a.png'", "image 'a.png'"
    file_name: str  # as the file names the image (may carry folders, Windows separators)
    image_dir: Path  # where its image file must be
    height: int | None
    width: int | None
    objects: list[RawObject] = field(default_factory=list)
    negative_rule: str = ""  # what an entry with no objects means, for the note

    @property
    def stem(self) -> str:
        return Path(self.file_name.replace("\\", "/")).stem


@dataclass
class LabelSource:
    """A label file (or, for LabelMe, a folder of them) and the folder its images are in."""

    fmt: str  # "COCO" | "LabelMe" | "CVAT XML"
    path: Path  # the file (LabelMe: the images folder holding the JSON files)
    image_dir: Path
    tool: str = ""  # which tool's layout it was recognised as, for the summary


@dataclass
class Parsed:
    images: list[RawImage] = field(default_factory=list)
    categories: set[str] = field(default_factory=set)  # every category the files define
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- detect

COCO_NAMES = {"annotations.json": "COCO", "result.json": "Label Studio COCO"}
ROBOFLOW_NAME = "_annotations.coco.json"
CVAT_XML_NAME = "annotations.xml"


def find_sources(set_dir: Path) -> list[LabelSource]:
    """Every label file layout present in a set folder (see README 'Bring your labels').

    LabelMe JSON files inside ``images/`` count only when there is no ``masks/`` folder, so a raster
    set with stray JSON files beside its images keeps working as before.
    """
    out: list[LabelSource] = []
    images = set_dir / "images"
    for name, tool in COCO_NAMES.items():
        if (set_dir / name).is_file():
            out.append(LabelSource("COCO", set_dir / name, images, tool))
    ann_dir = set_dir / "annotations"
    if ann_dir.is_dir():  # CVAT / Datumaro COCO export: annotations/instances_<subset>.json
        for path in sorted(ann_dir.glob("instances_*.json")):
            subset = path.stem[len("instances_"):]
            folder = images / subset if (images / subset).is_dir() else images
            out.append(LabelSource("COCO", path, folder, "CVAT COCO"))
    if (set_dir / ROBOFLOW_NAME).is_file():  # Roboflow: one split folder, images beside the file
        out.append(LabelSource("COCO", set_dir / ROBOFLOW_NAME, set_dir, "Roboflow COCO"))
    subs = sorted(p for p in set_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) if set_dir.is_dir() else []
    for sub in subs:
        if (sub / ROBOFLOW_NAME).is_file():  # Roboflow: train/ valid/ test/ split folders
            out.append(LabelSource("COCO", sub / ROBOFLOW_NAME, sub, "Roboflow COCO"))
    if (set_dir / CVAT_XML_NAME).is_file():
        out.append(LabelSource("CVAT XML", set_dir / CVAT_XML_NAME, images, "CVAT for images 1.1"))
    if images.is_dir() and not (set_dir / "masks").is_dir() and any(
        p.suffix.lower() == ".json" and not p.name.startswith(".") for p in images.iterdir()
    ):
        out.append(LabelSource("LabelMe", images, images, "LabelMe"))
    return out


def parse(source: LabelSource, out: Parsed) -> None:
    if source.fmt == "COCO":
        parse_coco(source, out)
    elif source.fmt == "CVAT XML":
        parse_cvat_xml(source, out)
    else:
        parse_labelme_folder(source, out)


def _read_limited(path: Path, out: Parsed) -> bytes | None:
    try:
        size = path.stat().st_size
        if size > MAX_LABEL_FILE_BYTES:
            out.errors.append(
                f"{path}: {size:,} bytes, over the {MAX_LABEL_FILE_BYTES:,}-byte limit for a label file"
            )
            return None
        return path.read_bytes()
    except OSError as e:
        out.errors.append(f"{path}: cannot read ({e.strerror or e})")
        return None


def _load_json(path: Path, out: Parsed) -> Any:
    data = _read_limited(path, out)
    if data is None:
        return None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        out.errors.append(f"{path}: not valid JSON{where} ({getattr(e, 'msg', None) or e})")
        return None


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pos_int(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 and float(v).is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().isdigit() and int(v) > 0:
        return int(v)
    return None


# ------------------------------------------------------------------------------------------- COCO


def parse_coco(source: LabelSource, out: Parsed) -> None:
    """COCO instances file: images[], annotations[] (polygons, RLE, iscrowd), categories[]."""
    path = source.path
    coco = _load_json(path, out)
    if coco is None:
        return
    if not (isinstance(coco, dict) and isinstance(coco.get("images"), list) and isinstance(coco.get("annotations"), list)):
        out.errors.append(f"{path}: not a COCO instances file (needs 'images' and 'annotations' lists)")
        return
    cats: dict[Any, str] = {}
    for c in coco.get("categories") or []:
        if isinstance(c, dict) and "id" in c:
            cats[c["id"]] = str(c.get("name", c["id"]))
    out.categories.update(cats.values())

    by_id: dict[Any, RawImage] = {}
    for k, entry in enumerate(coco["images"]):
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            out.errors.append(f"{path}: image entry #{k + 1} has no id or file_name")
            continue
        ref = f"image entry {entry['id']} '{entry['file_name']}'"
        if entry["id"] in by_id:
            out.errors.append(f"{path}: {ref}: image id {entry['id']} appears twice")
            continue
        h, w = _pos_int(entry.get("height")), _pos_int(entry.get("width"))
        if h is None or w is None:
            out.errors.append(f"{path}: {ref}: width/height missing or not positive integers")
            continue
        by_id[entry["id"]] = RawImage(path, ref, entry["file_name"], source.image_dir, h, w,
                                      negative_rule="COCO image entry with no annotations")
        out.images.append(by_id[entry["id"]])

    for k, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            out.errors.append(f"{path}: annotation #{k + 1} is not an object")
            continue
        ref = f"annotation {ann['id']}" if "id" in ann else f"annotation #{k + 1}"
        image = by_id.get(ann.get("image_id"))
        if image is None:
            out.errors.append(
                f"{path}: {ref}: image_id {ann.get('image_id')!r} has no image entry "
                "(annotation for an image that is not there)"
            )
            continue
        ref = f"{ref} (image '{image.file_name}')"
        if ann.get("category_id") not in cats:
            out.errors.append(f"{path}: {ref}: category_id {ann.get('category_id')!r} is not in 'categories'")
            continue
        obj = RawObject(ref, cats[ann["category_id"]], crowd=bool(ann.get("iscrowd")))
        box = ann.get("bbox")
        if isinstance(box, list) and len(box) == 4 and all(_num(v) for v in box):
            obj.box = [float(v) for v in box]
        seg = ann.get("segmentation")
        if isinstance(seg, dict):
            if "counts" not in seg or not isinstance(seg.get("size"), list) or len(seg["size"]) != 2:
                obj.problem = "RLE segmentation without 'counts' and a [height, width] 'size'"
            else:
                obj.rle = seg
        elif isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
            obj.polygons = seg
        elif isinstance(seg, list) and seg and all(_num(v) for v in seg):
            obj.polygons = [seg]  # some tools write one polygon unnested
        elif not seg:
            obj.problem = "no segmentation (a box only); boxes are not object outlines, draw polygons or masks"
        else:
            obj.problem = "segmentation is neither polygons nor RLE"
        image.objects.append(obj)


# ---------------------------------------------------------------------------------------- LabelMe


def parse_labelme_folder(source: LabelSource, out: Parsed) -> None:
    for path in sorted(source.path.iterdir()):
        if path.suffix.lower() == ".json" and not path.name.startswith(".") and path.is_file():
            parse_labelme(path, source.image_dir, out)


def _labelme_mask(shape: dict, pts: list) -> tuple[int, int, np.ndarray] | str:
    """LabelMe >= 5.3 'mask' shape: a base64 PNG covering the rectangle of its two points."""
    import cv2

    try:
        png = base64.b64decode(shape.get("mask") or "")
        arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE) if png else None
    except (ValueError, TypeError):
        arr = None
    if arr is None:
        return "mask shape without a readable base64 PNG 'mask'"
    (x1, y1), (x2, y2) = pts[0], pts[1]
    top, left = int(round(min(y1, y2))), int(round(min(x1, x2)))
    want = (int(round(abs(y2 - y1))) + 1, int(round(abs(x2 - x1))) + 1)
    if arr.shape != want:
        return f"mask PNG is {arr.shape[1]}x{arr.shape[0]}, its points span {want[1]}x{want[0]}"
    return top, left, arr > 0


def parse_labelme(path: Path, image_dir: Path, out: Parsed) -> None:
    """One LabelMe JSON (saved beside its image, same stem): shapes[] of polygon, circle, mask;
    shapes sharing a label and a group_id are one object."""
    doc = _load_json(path, out)
    if doc is None:
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        out.errors.append(f"{path}: not a LabelMe file (no 'shapes' list)")
        return
    image = RawImage(path, f"image '{path.stem}'", path.name, image_dir, _pos_int(doc.get("imageHeight")),
                     _pos_int(doc.get("imageWidth")), negative_rule="LabelMe file with no shapes")
    for k, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict):
            out.errors.append(f"{path}: shape {k + 1} is not an object")
            continue
        kind = shape.get("shape_type") or "polygon"
        label = str(shape.get("label", ""))
        group = shape.get("group_id")
        group = group if group is None or isinstance(group, (int, str)) else json.dumps(group)
        obj = RawObject(f"shape {k + 1} ({kind}, label '{label}')", label, group=group)
        pts = shape.get("points")
        if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 and all(map(_num, p)) for p in pts):
            obj.problem = "points are not a list of [x, y] number pairs"
        elif kind == "polygon":
            obj.polygons = [[float(v) for p in pts for v in p]]
        elif kind == "circle" and len(pts) == 2:
            (cx, cy), (px, py) = pts
            r = math.hypot(px - cx, py - cy)
            obj.polygons = [_ellipse(cx, cy, r, r, 0.0)]
        elif kind == "mask" and len(pts) == 2:
            got = _labelme_mask(shape, pts)
            if isinstance(got, str):
                obj.problem = got
            else:
                obj.crop = got
        elif kind == "rectangle":
            obj.problem = "a rectangle is a box, not an object outline; draw polygons or masks"
        elif kind in ("point", "points", "line", "linestrip"):
            obj.skip_note = f"a {kind} is not an area; ignored"
        else:
            obj.problem = f"shape type '{kind}' is not supported (use polygon, circle or mask)"
        image.objects.append(obj)
    out.categories.update(o.category for o in image.objects)
    out.images.append(image)


def _ellipse(cx: float, cy: float, rx: float, ry: float, rotation_deg: float) -> list[float]:
    t = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
    a = math.radians(rotation_deg)
    x = cx + rx * np.cos(t) * math.cos(a) - ry * np.sin(t) * math.sin(a)
    y = cy + rx * np.cos(t) * math.sin(a) + ry * np.sin(t) * math.cos(a)
    return np.stack([x, y], 1).ravel().tolist()


# --------------------------------------------------------------------------------------- CVAT XML

_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def parse_cvat_xml(source: LabelSource, out: Parsed) -> None:
    """CVAT for images 1.1: <image name width height> holding <polygon>, <mask>, <ellipse>, ...

    The stdlib parser is used (defusedxml is not a dependency), so the file is size-limited and any
    DTD is refused before parsing: CVAT never writes one, and entity declarations are how XML bombs
    and external-entity reads work.
    """
    path = source.path
    data = _read_limited(path, out)
    if data is None:
        return
    if _DTD.search(data):
        out.errors.append(f"{path}: contains a DTD (<!DOCTYPE/<!ENTITY); refused (CVAT never writes one)")
        return
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        out.errors.append(f"{path}: not valid XML ({e})")
        return
    if root.tag != "annotations":
        out.errors.append(f"{path}: not a CVAT XML file (root element <{root.tag}>, expected <annotations>)")
        return
    if root.find("track") is not None:
        out.errors.append(f"{path}: 'CVAT for video' (holds <track>); export the task as 'CVAT for images 1.1'")
        return
    for label in root.iterfind("meta/*/labels/label/name"):
        if label.text:
            out.categories.add(label.text.strip())
    for k, elem in enumerate(root.iterfind("image")):
        name = elem.get("name")
        if not name:
            out.errors.append(f"{path}: <image> #{k + 1} has no name")
            continue
        image = RawImage(path, f"image '{name}'", name, source.image_dir, _pos_int(elem.get("height")),
                         _pos_int(elem.get("width")), negative_rule="CVAT <image> with no shapes")
        if image.height is None or image.width is None:
            out.errors.append(f"{path}: image '{name}': width/height missing or not positive integers")
            continue
        counters: dict[str, int] = {}
        for shape in elem:
            if shape.tag == "tag":
                continue
            counters[shape.tag] = counters.get(shape.tag, 0) + 1
            label = shape.get("label", "")
            obj = RawObject(f"image '{name}' <{shape.tag}> #{counters[shape.tag]} (label '{label}')", label)
            try:
                _cvat_shape(shape, obj)
            except (ValueError, TypeError):
                obj.problem = f"<{shape.tag}> attributes are not numbers where numbers belong"
            image.objects.append(obj)
            out.categories.add(label)
        out.images.append(image)


def _cvat_shape(shape: ET.Element, obj: RawObject) -> None:
    tag = shape.tag
    if tag == "polygon":
        pairs = [pair for pair in (shape.get("points") or "").split(";") if pair.strip()]
        pts = [float(v) for pair in pairs for v in pair.split(",")]
        if any(not math.isfinite(v) for v in pts):
            raise ValueError
        obj.polygons = [pts]
    elif tag == "mask":
        rle = [int(v) for v in (shape.get("rle") or "").replace(" ", "").split(",") if v]
        left, top = int(float(shape.get("left"))), int(float(shape.get("top")))
        width, height = int(float(shape.get("width"))), int(float(shape.get("height")))
        if width <= 0 or height <= 0 or any(v < 0 for v in rle) or sum(rle) != width * height:
            n = max(width, 0) * max(height, 0)
            obj.problem = f"<mask> rle covers {sum(rle):,} pixels, its {width}x{height} rectangle has {n:,}"
            return
        # CVAT's mask code: run lengths over the rectangle in row-major order, background first
        values = np.arange(len(rle)) % 2 == 1
        crop = np.repeat(values, rle).reshape(height, width)
        obj.crop = (top, left, crop)
    elif tag == "ellipse":
        cx, cy, rx, ry = (float(shape.get(a)) for a in ("cx", "cy", "rx", "ry"))
        obj.polygons = [_ellipse(cx, cy, rx, ry, float(shape.get("rotation") or 0))]
    elif tag == "box":
        obj.problem = "a box is not an object outline; draw polygons or masks"
    elif tag in ("polyline", "points", "skeleton", "cuboid"):
        obj.skip_note = f"<{tag}> is not an area; ignored"
    else:
        obj.problem = f"<{tag}> is not a supported shape (polygon, mask, ellipse)"
