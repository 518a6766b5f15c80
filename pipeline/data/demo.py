"""The procedural demo set: ore-like fragments on a conveyor belt, with exact instance masks.

It exists so the whole pipeline runs (and is tested) without any real data. Scenes look like a
plant camera above a belt: many irregular, rough-edged rocks of varied size that touch and occlude
each other, on a textured belt with stripes, wear and uneven lighting, plus sensor noise and a slight
blur. The instance map is the label map *after* occlusion, and the image is painted from that very
map, so every labeled pixel is a fragment pixel and vice versa (blur only softens the edges).

Each image depends only on ``(seed, index)``: rendering any subset gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from ..io import write_png, write_text

DISPLAY_NAME = "Procedural demo set (conveyor fragments)"

# Ore-like base colours (RGB in [0, 1]): iron-brown, grey rock, reddish, pale quartz, dark slag.
_ORE_COLOURS = np.array(
    [
        [0.55, 0.38, 0.24],
        [0.58, 0.56, 0.52],
        [0.62, 0.34, 0.22],
        [0.78, 0.74, 0.66],
        [0.44, 0.40, 0.36],
        [0.66, 0.52, 0.34],
    ],
    np.float32,
)
_BELT_COLOUR = np.array([0.16, 0.17, 0.19], np.float32)  # dark rubber


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in about [-1, 1] with features ~size/cells px: a small random grid upscaled."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / 1.5


def _belt(rng: np.random.Generator, size: int) -> np.ndarray:
    """Belt texture: rubber colour, running stripes, worn patches, fine grain, lighting gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vertical = rng.random() < 0.5  # belt runs along x or y
    across = xx if vertical else yy
    stripes = 0.04 * np.sin(2 * np.pi * (across * rng.uniform(6, 18) + rng.random()))
    scratches = 0.05 * np.abs(_smooth_noise(rng, size, 48)) * (np.sin(2 * np.pi * across * rng.uniform(40, 80)) > 0.8)
    wear = 0.06 * _smooth_noise(rng, size, 6) + 0.03 * _smooth_noise(rng, size, 20)
    grain = 0.015 * rng.standard_normal((size, size)).astype(np.float32)
    shade = 1.0 + stripes + scratches + wear + grain
    belt = _BELT_COLOUR[None, None, :] * (1.0 + rng.uniform(-0.15, 0.15)) * shade[:, :, None]
    return belt.astype(np.float32)


def _fragment_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    """A rock outline: an irregular angular polygon (few corners, uneven radii, elongated) whose
    edges are subdivided and jittered a little for a rough, chipped rim."""
    n = int(rng.integers(7, 13))
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.35, 0.35, n) * (2 * np.pi / n)
    r = radius * rng.uniform(0.8, 1.15, n)
    corners = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    m = max(2, int(radius / 4))  # points per edge
    t = np.arange(m, dtype=np.float64)[None, :, None] / m
    nxt = np.roll(corners, -1, axis=0)
    pts = (corners[:, None, :] * (1 - t) + nxt[:, None, :] * t).reshape(-1, 2)
    pts += rng.normal(0, 0.025 * radius + 0.3, pts.shape)
    elong = rng.uniform(1.0, 1.4)
    phi = rng.uniform(0, np.pi)
    x, y = pts[:, 0] * elong, pts[:, 1] / elong
    xr = x * np.cos(phi) - y * np.sin(phi)
    yr = x * np.sin(phi) + y * np.cos(phi)
    return np.stack([cx + xr, cy + yr], axis=1)


def render_demo_image(seed: int, index: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB HxWx3, int32 instance map HxW). Depends only on (seed, index, size)."""
    rng = np.random.default_rng([seed, index])
    belt = _belt(rng, size)

    # Fragments, drawn back to front so later ones occlude earlier ones. Sizes follow a rough
    # crusher-product spread (many small, some large); the count fills ~45-80% of the belt.
    scale = size / 256.0
    target_cover = rng.uniform(0.45, 0.8)
    labels = np.zeros((size, size), np.int32)
    params = []  # (cx, cy, radius, colour, texture amplitude, light dx, light dy)
    sub = 4  # fillPoly sub-pixel precision bits
    filled = 0
    light_angle = rng.uniform(0, 2 * np.pi)
    for _attempt in range(2000):
        if filled >= target_cover * size * size or len(params) >= 400:
            break
        radius = float(np.exp(rng.uniform(np.log(8), np.log(34)))) * scale
        cx, cy = rng.uniform(-radius * 0.5, size + radius * 0.5, 2)
        ix, iy = int(np.clip(cx, 0, size - 1)), int(np.clip(cy, 0, size - 1))
        if labels[iy, ix] and rng.random() < 0.8:
            continue  # mostly rest beside others (touching, partly occluding), not on top of them
        poly = _fragment_polygon(rng, cx, cy, radius)
        k = len(params) + 1
        cv2.fillPoly(labels, [np.rint(poly * (1 << sub)).astype(np.int32)], k, lineType=cv2.LINE_8, shift=sub)
        colour = _ORE_COLOURS[rng.integers(len(_ORE_COLOURS))] * rng.uniform(0.75, 1.2) + rng.normal(0, 0.03, 3)
        la = light_angle + rng.normal(0, 0.3)
        params.append((cx, cy, radius, colour, rng.uniform(0.05, 0.18), np.cos(la), np.sin(la)))
        if len(params) % 4 == 0:
            filled = int(np.count_nonzero(labels))

    # Remove fragments that ended up fully hidden or as tiny slivers, then relabel 1..N.
    n_drawn = len(params)
    areas = np.bincount(labels.ravel(), minlength=n_drawn + 1)
    keep = np.flatnonzero(areas[1:] >= max(6, int(6 * scale * scale))) + 1
    lut = np.zeros(n_drawn + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1)
    labels = lut[labels]

    # One per-label table (row 0 = belt) makes shading fully vectorised: relief is a per-label
    # linear ramp u = a*x + b*y + c along the light direction, normalised by the fragment radius.
    table = np.zeros((len(keep) + 1, 7), np.float32)
    for row, k in enumerate(keep, start=1):
        cx, cy, radius, colour, tex_amp, lx, ly = params[k - 1]
        table[row] = (lx / radius, ly / radius, -(cx * lx + cy * ly) / radius, tex_amp, *colour)
    per_pixel = table[labels]  # H x W x 7
    xs = np.arange(size, dtype=np.float32)[None, :]
    ys = np.arange(size, dtype=np.float32)[:, None]
    fg = labels > 0
    u = per_pixel[..., 0] * xs + per_pixel[..., 1] * ys + per_pixel[..., 2]
    tex = 0.6 * _smooth_noise(rng, size, max(8, size // 6)) + 0.4 * rng.standard_normal((size, size), dtype=np.float32)
    shade = 1.0 + 0.28 * np.clip(u, -1.2, 1.2) + per_pixel[..., 3] * tex
    # Dark seams where fragments meet or end: distance to the nearest label change.
    lab_f = labels.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    seams = (cv2.dilate(lab_f, kernel) != cv2.erode(lab_f, kernel)).astype(np.uint8)
    dist = cv2.distanceTransform(1 - seams, cv2.DIST_L2, 3)
    shade *= 1.0 - 0.35 * np.exp(-dist / (1.5 * scale + 0.5))
    rock = per_pixel[..., 4:] * shade[:, :, None]

    # Soft cast shadow of the fragment layer on the belt, offset away from the light.
    shift = np.float32([[1, 0, -3 * scale * np.cos(light_angle)], [0, 1, -3 * scale * np.sin(light_angle)]])
    shadow = cv2.warpAffine(fg.astype(np.float32), shift, (size, size), borderMode=cv2.BORDER_REPLICATE)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 2.5 * scale + 0.5)
    ground = belt * (1.0 - 0.45 * shadow)[:, :, None]
    img = np.where(fg[:, :, None], rock, ground)

    # Lighting gradient across the field of view (lamp off to one side), then optics + sensor.
    gx, gy = rng.normal(0, 0.25, 2)
    xn, yn = xs / size - 0.5, ys / size - 0.5
    light = (1.0 + gx * xn + gy * yn) * (1.0 - 0.5 * (xn**2 + yn**2))
    img *= light[:, :, None]
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 0.9) * max(scale, 0.5))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.01, 0.025))
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, labels


def render_demo_set(out_dir: str | Path, n_images: int = 160, size: int = 256, seed: int = 0) -> Path:
    """Write the procedural demo set as a labeled-set folder (images/, masks/, set.yaml).

    set.yaml is written last, so its presence means the set is complete.
    """
    out_dir = Path(out_dir)
    for i in range(n_images):
        stem = f"demo_{i:05d}"
        image, labels = render_demo_image(seed, i, size)
        if labels.max() > 65_535:
            raise ValueError("demo scene has more instances than a 16-bit mask can hold")
        write_png(out_dir / "images" / f"{stem}.png", image)
        write_png(out_dir / "masks" / f"{stem}.png", labels.astype(np.uint16))
    info = {
        "display_name": DISPLAY_NAME,
        "object_name": "fragment",
        "procedural": True,
        "notes": (
            "Procedural demo set: rendered by pipeline.data.demo (seed "
            f"{seed}, {n_images} images, {size}x{size}). Not real data: irregular ore-like fragments "
            "on a textured conveyor belt with exact instance masks, for trying and testing the pipeline."
        ),
    }
    write_text(out_dir / "set.yaml", yaml.safe_dump(info, sort_keys=False))
    return out_dir
