"""Benchmark: does U-GAT-IT, trained mask -> image, copy the mask through or draw boundary bands?

Trains U-GAT-IT on a set's training pairs once per ``generator.ugatit_identity`` value (same seed,
same steps), draws images for crops of the validation masks and measures, next to the same numbers
on the real validation crops:

* ``mask_r2``: the share of the image's pixel variance that a linear fit on the two mask channels
  (foreground, instance boundary) explains. A pass-through generator (the image is the mask) gets
  near 1; real images get what their own contrast between objects and background gives;
* ``band_contrast``: mean intensity on instance boundary pixels (inside objects) minus the mean of
  object interiors, in units of the image's standard deviation: thick dark or bright bands drawn
  so that the boundary channel survives the cycle show up as a value far from the real one.

    PYTHONPATH=$PWD python bench/ugatit_masks.py --set /work/shared/datasets/emps_sem_particles \
        --steps 300 -- data.test_list=splits/emps_sem_particles_test.txt generator.image_size=64

Writes ``--out`` (JSON) with the command line; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def crops(pairs, size: int, per_image: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for img, mask in pairs:
        h, w = mask.shape
        for _ in range(per_image):
            y, x = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
            m = mask[y : y + size, x : x + size]
            if m.shape == (size, size) and m.max() > 0:
                out.append((img[y : y + size, x : x + size], m))
    return out


def measures(images, masks) -> dict[str, float]:
    import numpy as np
    import torch

    from pipeline.generators.base import mask_to_input

    r2, band = [], []
    for img, mask in zip(images, masks):
        gray = np.asarray(img, np.float64).mean(-1).ravel()
        chans = mask_to_input(torch.from_numpy(mask.astype(np.int64))[None])[0].numpy().reshape(2, -1).T
        design = np.column_stack([np.ones(len(gray)), chans])
        coef, *_ = np.linalg.lstsq(design, gray, rcond=None)
        resid = gray - design @ coef
        var = gray.var()
        if var <= 1e-12:
            continue
        r2.append(1 - resid.var() / var)
        fg, edge = chans[:, 0] > 0, chans[:, 1] > 0
        interior, boundary = fg & ~edge, fg & edge
        if interior.any() and boundary.any():
            band.append((gray[boundary].mean() - gray[interior].mean()) / np.sqrt(var))
    return {"mask_r2": float(np.median(r2)), "band_contrast": float(np.median(band)), "crops": len(r2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--config", default="default")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--identity", type=float, nargs="+", default=[0.0, 10.0])
    ap.add_argument("--crops-per-image", type=int, default=4)
    ap.add_argument("--out", default="bench/results/ugatit_masks.json")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    import numpy as np
    import torch

    from pipeline.config import load_config
    from pipeline.data.labeled_set import load_pairs, require_valid
    from pipeline.data.splits import splits_for
    from pipeline.generators.base import mask_to_input
    from pipeline.generators.generate import load_generator
    from pipeline.generators.training_loop import train_generator

    cfg = load_config(args.config, ["generator.model=ugatit", "runtime.progress=false", *args.overrides])
    report = require_valid(Path(args.set), cfg.data.max_image_pixels, cfg.data.max_instances)
    splits = splits_for(report, cfg.data)
    train = load_pairs(report, splits["train"])
    val = crops(load_pairs(report, splits["val"]), cfg.generator.image_size, args.crops_per_image, seed=0)
    rows = [{"source": "real validation crops", **measures([i for i, _ in val], [m for _, m in val])}]
    for weight in args.identity:
        run_cfg = cfg.model_copy(update={"generator": cfg.generator.model_copy(
            update={"ugatit_identity": weight, "steps": args.steps})})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            final = train_generator(run_cfg, train, Path(tmp) / "g", progress=False)
            seconds = time.perf_counter() - t0
            gen, _ = load_generator(final, "cpu")
            with torch.inference_mode():
                fake = [((gen(mask_to_input(torch.from_numpy(m.astype(np.int64))[None]))[0] + 1) / 2)
                        .permute(1, 2, 0).numpy() for _, m in val]
        rows.append({"source": f"U-GAT-IT, identity {weight:g}, {args.steps} steps", "train_s": seconds,
                     **measures(fake, [m for _, m in val])})

    print(f"{Path(args.set).name}: {len(train)} training pairs, {rows[0]['crops']} validation crops "
          f"of {cfg.generator.image_size} px\n")
    print("| images | mask R^2 (1 = the image is the mask) | boundary band contrast (std units) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['mask_r2']:.3f} | {r['band_contrast']:+.3f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
