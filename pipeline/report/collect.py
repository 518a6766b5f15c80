"""What the report is built from, collected from a run's stage folders into its run folder.

``collect_results`` writes ``results.csv`` (verdict rows first, then one row per arm, seed and
n_real) and ``verdict.json``; ``collect_quality`` merges the synthetic-data quality measures; the
``write_*`` functions draw the pictures beside the numbers (sample pairs, real-beside-synthetic
strip, mask statistics, object-size table). They read finished stage folders and never change them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..context import SetContext
from ..io import read_json, write_json
from ..run_layout import stage_path

log = logging.getLogger("synth_pretrain")


def reference_segmenter(arm_dirs: list[Path]) -> Path | None:
    """Best checkpoint of the real-only arm at its lowest seed and largest n_real: the 'segmenter
    trained on real pairs' that mask fidelity needs."""
    from ..segmentation.arms import REFERENCE_ARM

    rows = [(read_json(d / "metrics.json"), d) for d in arm_dirs if (d / "metrics.json").is_file()]
    mine = [(m, d) for m, d in rows if m.get("arm") == REFERENCE_ARM]
    if not mine:
        return None
    m, _ = min(mine, key=lambda r: (r[0]["seed"], -r[0]["n_real"]))
    return Path(m["checkpoint"])



def collect_quality(ctx: SetContext, quality_dirs: dict[str, Path]) -> None:
    """run_dir/quality.json (one entry per metric, suffixed with the mask source when there are
    several) and style_grid.png for the report."""
    from ..io import write_bytes

    merged: dict[str, Any] = {}
    for source, d in quality_dirs.items():
        q = read_json(d / "quality.json")
        for k, v in q.items():
            if k != "details":
                merged[k if len(quality_dirs) == 1 else f"{k} ({source})"] = v
        if (d / "style_grid.png").is_file() and not (ctx.run_dir / "style_grid.png").is_file():
            write_bytes(ctx.run_dir / "style_grid.png", (d / "style_grid.png").read_bytes())
    if merged:
        write_json(ctx.run_dir / "quality.json", merged)



def write_samples(ctx: SetContext, pair_dirs: list[Path], n: int = 8) -> None:
    """A grid of synthetic pairs (instance mask | generated image) for the report."""
    from ..data.store import PairStore
    from .plots import pair_grid

    items = []
    for d in pair_dirs:
        store = PairStore(d)
        items += [(*store[i], store.manifest.iloc[i].get("mask_source", "")) for i in range(min(n, len(store)))]
    if items:
        pair_grid(items[:n], ctx.run_dir / "samples.png")
    _optional("real-beside-synthetic strip", write_realism_strip, ctx, pair_dirs)


def write_realism_strip(ctx: SetContext, pair_dirs: list[Path], per_row: int = 4) -> Path | None:
    """run_dir/realism.png: per synthesis method and mask source, a crop of a real training image
    next to synthetic images, every tile at its native pixel size (nothing resized), so texture,
    contrast and object scale can be judged at a glance."""
    from ..data.store import PairStore
    from .plots import realism_strip

    groups: dict[str, list[np.ndarray]] = {}
    for d in pair_dirs:  # one store per (synthesis method, mask source)
        store = PairStore(d)
        if not len(store):
            continue
        row = store.manifest.iloc[0]
        name = f"{row.get('generator', ctx.cfg.generator.model)}, {row.get('mask_source', 'synthetic')} masks"
        groups.setdefault(name, []).extend(store[i][0] for i in range(min(per_row, len(store))))
    if not groups:
        return None
    stems = ctx.real_train_stems(max(ctx.cfg.segmentation.n_real))
    real = ctx.report_pairs(stems[: min(len(stems), 8)])
    return realism_strip(real, groups, ctx.run_dir / "realism.png", seed=ctx.cfg.data.split_seed)


def collect_results(ctx: SetContext, arm_dirs: list[Path]) -> None:
    """results.csv: the verdict rows first (one per synthetic arm x n_real, then label efficiency),
    then one row per arm x seed x n_real; verdict.json for the report; sizes.npz and overlays."""
    import pandas as pd

    from ..evaluation.verdict import efficiency_sentence, verdicts
    from ..io import atomic_path, write_npz
    from .plots import overlay_pairs

    rows = [{**read_json(d / "metrics.json"), "row_id": i} for i, d in enumerate(arm_dirs)]
    seeds = pd.DataFrame(rows)
    per_image = {i: pd.read_csv(d / "per_image.csv") for i, d in enumerate(arm_dirs)}
    ev = ctx.cfg.evaluation
    found, efficiency = verdicts(seeds, per_image, ev.bootstrap, ev.confidence)
    verdict_rows = [{"row": "verdict", **c.as_row()} for c in found]
    verdict_rows += [{"row": "label_efficiency", **c.as_row(), "sentence": efficiency_sentence(c)} for c in efficiency]
    write_json(ctx.run_dir / "verdict.json", {"verdicts": verdict_rows, "confidence": ev.confidence,
                                              "bootstrap": ev.bootstrap, "iou_threshold": ev.iou_threshold})
    frame = pd.concat([pd.DataFrame(verdict_rows), seeds.drop(columns="row_id").assign(row="seed")], ignore_index=True)
    frame = frame[["row", *[c for c in frame.columns if c != "row"]]]
    with atomic_path(ctx.run_dir / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    seed0 = int(seeds["seed"].min())
    n0 = int(seeds["n_real"].max())  # pairs actually used (a small set may have fewer than asked)
    sizes: dict[str, np.ndarray] = {}
    preds: dict[str, Path] = {}
    for d, r in zip(arm_dirs, rows):
        if r["seed"] == seed0 and r["n_real"] == n0:
            with np.load(d / "sizes.npz") as z:
                sizes[r["arm"]] = z["pred"]
                sizes["ground_truth"] = z["gt"]
            preds[r["arm"]] = d
    write_npz(ctx.run_dir / "sizes.npz", **sizes)
    best = max(found, key=lambda c: c.delta_f1).arm if found else None
    shown = best if best in preds else next((a for a in preds if a != "real_only"), next(iter(preds), None))
    if shown:
        overlay_pairs(ctx, preds[shown], shown, preds.get("real_only"), ctx.run_dir / "overlays")
    _optional("object-size table", write_size_bins, ctx, arm_dirs, rows)
    _optional("mask statistics plot", write_mask_stats, ctx)


def _optional(what: str, fn, *args) -> None:
    """Run an extra of the report (a picture beside the numbers); a failure is logged, never allowed
    to lose the verdict and results.csv already written."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - extras only: the results are already safe on disk
        log.warning(f"{what} not written: {type(e).__name__}: {e}")


def write_size_bins(ctx: SetContext, arm_dirs: list[Path], rows: list[dict]) -> Path | None:
    """run_dir/size_bins.csv: per arm, seed and n_real, per object-size bin, the true objects and how
    many were found (recall by size), the predicted objects and how many match (precision by size).

    Computed here from each arm's predictions.npz and the test masks, not in the arms' evaluation:
    the arms' code hash keys their cached results (pipeline/report/sizes.py says more)."""
    import pandas as pd

    from ..io import atomic_path
    from .sizes import SIZE_BIN_COLUMNS, object_diameters, size_bin_counts, size_edges

    arms = [(d, r) for d, r in zip(arm_dirs, rows) if (d / "predictions.npz").is_file()]
    if not arms:
        return None
    gts = {stem: mask for stem, (_, mask) in zip(ctx.splits["test"], ctx.pairs("test"))}
    edges = size_edges(np.concatenate([object_diameters(m) for m in gts.values()]) if gts else np.zeros(0))
    frames = []
    for d, r in arms:
        with np.load(d / "predictions.npz") as z:
            preds = {k: z[k] for k in z.files}
        table = size_bin_counts(preds, gts, edges, ctx.cfg.evaluation.iou_threshold)
        frames.append(table.assign(arm=r["arm"], seed=int(r["seed"]), n_real=int(r["n_real"])))
    out = ctx.run_dir / "size_bins.csv"
    with atomic_path(out) as tmp:
        pd.concat(frames, ignore_index=True)[SIZE_BIN_COLUMNS].to_csv(tmp, index=False)
    return out


def recorded_stage_dirs(run_dir: Path, prefix: str) -> dict[str, Path]:
    """Stage folders of a run's stages.json whose stage name starts with ``prefix``, by the name's
    part in parentheses (``masks (placement)`` -> ``placement``); a later entry (a larger n_real)
    wins. Paths are rebuilt from the run folder, so a moved runs/ still works."""
    f = run_dir / "stages.json"
    found: dict[str, Path] = {}
    for e in read_json(f) if f.is_file() else []:
        name = str(e.get("stage", ""))
        if name.startswith(prefix):
            label = name[len(prefix):].strip().strip("()") or name
            found[label] = stage_path(run_dir, e["path"])
    return found


def write_mask_stats(ctx: SetContext, max_masks: int = 500) -> Path | None:
    """run_dir/mask_stats.png: object count, size, coverage and nearest-neighbour distance of each
    synthetic mask source against random crops (of the synthetic canvas size) of the real training
    masks the synthetic data was made from. Up to ``max_masks`` masks per source: enough for a
    histogram, quick on a large store."""
    from ..data.store import MaskStore
    from ..masks.stats import plot_mask_sources

    stores = {src: d for src, d in recorded_stage_dirs(ctx.run_dir, "masks").items() if d.is_dir()}
    if not stores:
        return None
    sources = {}
    for src, d in stores.items():
        masks: list[np.ndarray] = []
        for _, arr in MaskStore(d).iter_shards():
            masks.extend(arr[: max_masks - len(masks)])
            if len(masks) >= max_masks:
                break
        if masks:
            sources[src] = masks
    if not sources:
        return None
    real = [m for _, m in ctx.real_train_pairs(max(ctx.cfg.segmentation.n_real))]
    return plot_mask_sources(real, sources, ctx.cfg.masks.size, ctx.run_dir / "mask_stats.png",
                             min_area=ctx.cfg.shape_bank.min_area,
                             title="synthetic masks by mask source vs crops of the real training masks (blue)")
