"""The pipeline's stages as plain functions: inputs are paths and small values, outputs are folders.

Each stage's output lives in a content-addressed folder ``runs/<set>/stages/<stage>/<key>/``; the
key hashes everything the stage depends on (the set's files, the stage's config section, the keys of
upstream stages, and the source code of the stage's package). A folder holding ``_done.json`` is a
finished stage and is reused by any later run with the same key; a folder without it is a partial
result that the stage resumes (shards, checkpoints). A run folder ``runs/<set>/<run-id>/`` records
the resolved config, the splits, which stage folders it used and how long each took.

The Prefect flow (flows/synth_pretrain.py) wraps these functions in tasks; ``synth-pretrain run``
without a server goes through the same flow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data.labeled_set import SetReport, load_pairs, require_valid
from .data.splits import splits_for
from .data.sets import resolve_set_dir, set_content_hash
from .io import read_json, write_json, write_text
from .run_layout import stage_path

log = logging.getLogger("synth_pretrain")
PACKAGE_ROOT = Path(__file__).resolve().parent
DONE = "_done.json"


@lru_cache(maxsize=None)
def code_hash(*subpaths: str) -> str:
    """Hash of the source files a stage runs, so a code change invalidates its cached outputs."""
    h = hashlib.sha256()
    for sub in subpaths:
        p = PACKAGE_ROOT / sub
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(f.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def make_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class SetContext:
    """Everything a stage needs to know about the set it works on. Small and picklable."""

    cfg: Config
    set_dir: Path
    set_name: str
    set_hash: str
    channels: int
    splits: dict[str, list[str]]
    root: Path  # runs/<set>
    run_dir: Path  # runs/<set>/<run-id>
    procedural: bool = False
    _report: SetReport | None = field(default=None, repr=False, compare=False)

    def stage_dir(self, stage: str, key: str) -> Path:
        return self.root / "stages" / stage / key

    def report(self) -> SetReport:
        """The validated set (validated once per process; every stage checks its input the same way)."""
        if self._report is None:
            c = self.cfg.data
            self._report = require_valid(self.set_dir, c.max_image_pixels, c.max_instances)
        return self._report

    def report_pairs(self, stems: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        return load_pairs(self.report(), stems)

    def pairs(self, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.report_pairs(self.splits[split])

    def real_train_stems(self, n_real: int | None = None) -> list[str]:
        """The first n_real of a fixed shuffle of the train split: every arm and seed sees the same,
        and so do the shape bank, the masks and the generator made for that n_real (None: all)."""
        train = self.splits["train"]
        order = np.random.default_rng(self.cfg.data.split_seed).permutation(len(train))
        n = len(train) if n_real is None else min(n_real, len(train))
        return sorted(train[i] for i in order[:n])

    def real_train_pairs(self, n_real: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.report_pairs(self.real_train_stems(n_real))

    def with_synthesis(self, method: str) -> SetContext:
        """The same set and run with ``generator.model = method`` (one synthesis method of a study)."""
        from dataclasses import replace

        if method == self.cfg.generator.model:
            return self
        cfg = self.cfg.model_copy(deep=True)
        cfg.generator.model = method
        return replace(self, cfg=cfg)


def is_done(d: Path) -> bool:
    return (d / DONE).is_file()


def mark_done(d: Path, seconds: float, **info: Any) -> None:
    write_json(d / DONE, {"seconds": round(seconds, 3), "finished": time.time(), **info})


def done_info(d: Path) -> dict:
    return read_json(d / DONE)


def new_run_id(cfg: Config) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.name}"


def set_name(cfg: Config, set_dir: Path) -> str:
    """The set's name under runs/: the folder's name, or ``demo`` for the procedural set."""
    return set_dir.name if cfg.data.set != "demo" else "demo"


def set_root(cfg: Config) -> Path:
    """``runs/<set>``: the set's stage cache and run folders (and its run lock)."""
    return Path(cfg.runtime.runs_dir) / set_name(cfg, resolve_set_dir(cfg))


def check_set(cfg: Config) -> list[str]:
    """Every problem that would stop a run of the set, one line per file (``path: problem``), the
    same lines as ``synth-pretrain validate``; empty when the set can run. A plain function, so the
    flow checks a set once, before anything is written, and never retries an input error."""
    from .data.images import InputError
    from .data.labeled_set import validate_set

    try:
        set_dir = resolve_set_dir(cfg)
        report = validate_set(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
        if not report.ok:
            return list(report.errors)
        splits_for(report, cfg.data)
    except InputError as e:
        return str(e).splitlines() or ["invalid input"]
    return []


def prepare(cfg: Config, run_id: str | None = None, run_dir: Path | None = None) -> SetContext:
    """Resolve and validate the set, fix the splits, create the run folder with the resolved config.

    ``run_dir``: a folder of the caller's choosing (per-stage commands' ``--out``) instead of
    ``runs/<set>/<run-id>``; stage folders then live under ``run_dir/stages``."""
    set_dir = resolve_set_dir(cfg)
    report = require_valid(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
    splits = splits_for(report, cfg.data)
    name = set_name(cfg, set_dir)
    root = Path(cfg.runtime.runs_dir) / name if run_dir is None else Path(run_dir)
    run_dir = root / (run_id or new_run_id(cfg)) if run_dir is None else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", cfg.to_yaml())
    write_json(run_dir / "splits.json", splits)
    ctx = SetContext(
        _report=report,
        cfg=cfg,
        set_dir=set_dir,
        set_name=name,
        set_hash=set_content_hash(set_dir),
        channels=report.channels,
        splits=splits,
        root=root,
        run_dir=run_dir,
        procedural=report.info.procedural,
    )
    write_json(
        run_dir / "set.json",
        {
            "name": name,
            "path": str(set_dir),
            "procedural": report.info.procedural,
            "display_name": report.info.display_name or name,
            "object_name": report.info.object_name,
            # the report converts object sizes to physical units with these (None / "px": pixels only)
            "pixel_size": report.info.pixel_size,
            "pixel_unit": report.info.pixel_unit,
            "summary": report.summary(),
            "channels": report.channels,
            "pairs": len(report.pairs),
            "objects": sum(p.n_objects for p in report.pairs),
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "hash": ctx.set_hash,
        },
    )
    return ctx


def record(ctx: SetContext, stage: str, path: Path, seconds: float, cached: bool) -> None:
    """Append a stage's use and wall time to the run's stage log (read by the report)."""
    f = ctx.run_dir / "stages.json"
    entries = read_json(f) if f.is_file() else []
    computed = done_info(path).get("seconds", seconds) if is_done(path) else seconds
    entries.append(
        {"stage": stage, "path": str(path), "seconds": round(seconds, 3), "cached": cached, "compute_seconds": computed}
    )
    write_json(f, entries)


# --------------------------------------------------------------------------------------------------
# Stages. Each returns (output folder, seconds spent in this call, cached?).


def _timed(d: Path, compute, **info: Any) -> tuple[Path, float, bool]:
    if is_done(d):
        return d, 0.0, True
    t0 = time.perf_counter()
    d.mkdir(parents=True, exist_ok=True)
    compute(d)
    secs = time.perf_counter() - t0
    mark_done(d, secs, **info)
    return d, secs, False


def _section(cfg_section, drop: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in cfg_section.model_dump(mode="json").items() if k not in drop}


def shape_bank_key(ctx: SetContext, n_real: int | None = None) -> str:
    return make_key("shape_bank", ctx.set_hash, ctx.real_train_stems(n_real), _section(ctx.cfg.shape_bank),
                    code_hash("masks/shape_bank.py"))


def stage_shape_bank(ctx: SetContext, n_real: int | None = None) -> tuple[Path, float, bool]:
    """Shapes of the n_real training masks the arms see (an n_real sweep leaks no extra real pairs)."""
    from .masks.shape_bank import build_shape_bank

    def compute(d: Path) -> None:
        stems = ctx.real_train_stems(n_real)
        bank = build_shape_bank([m for _, m in ctx.report_pairs(stems)], ctx.cfg.shape_bank, image_ids=stems)
        bank.save(d)

    return _timed(ctx.stage_dir("shape_bank", shape_bank_key(ctx, n_real)), compute)


def source_counts(cfg: Config) -> dict[str, int]:
    """Split masks.count over the configured sources by their fractions (largest remainder)."""
    src = {k: v for k, v in cfg.masks.sources.items() if v > 0}
    total = sum(src.values())
    raw = {k: cfg.masks.count * v / total for k, v in src.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: cfg.masks.count - sum(counts.values())]:
        counts[k] += 1
    return {k: v for k, v in counts.items() if v > 0}


def placement_key(ctx: SetContext, bank_dir: Path, count: int) -> str:
    masks = _section(ctx.cfg.masks, drop=("count", "sources", "workers", "segmodel_min_score", "progan_steps"))
    return make_key("placement", bank_dir.name, masks, count, code_hash("masks/shape_bank.py", "masks/placement.py"))


def stage_placement_masks(ctx: SetContext, bank_dir: Path, count: int) -> tuple[Path, float, bool]:
    from .masks.placement import write_placement_masks
    from .masks.shape_bank import ShapeBank

    def compute(d: Path) -> None:
        bank = ShapeBank.load(bank_dir)
        m = ctx.cfg.masks
        write_placement_masks(bank, d, m, count=count, seed=m.seed, workers=m.workers, progress=ctx.cfg.runtime.progress)

    return _timed(ctx.stage_dir("masks_placement", placement_key(ctx, bank_dir, count)), compute, count=count)


def generator_key(ctx: SetContext, n_real: int | None = None) -> str:
    g = _section(ctx.cfg.generator, drop=("checkpoint_every", "sample_every"))
    return make_key("generator", ctx.set_hash, ctx.real_train_stems(n_real), g, code_hash("generators"))


def stage_train_generator(ctx: SetContext, n_real: int | None = None) -> tuple[Path, float, bool]:
    """The generator (or copy-paste bank) of ``ctx.cfg.generator.model``, from the n_real training pairs."""
    from .generators.training_loop import train_generator

    def compute(d: Path) -> None:
        pairs = ctx.real_train_pairs(n_real)
        if ctx.cfg.generator.model == "copypaste":
            from .generators.copypaste import build_copypaste_bank

            build_copypaste_bank(pairs, d, ctx.cfg.shape_bank.min_area)
        else:
            train_generator(ctx.cfg, pairs, d, progress=ctx.cfg.runtime.progress)

    return _timed(ctx.stage_dir("generator", generator_key(ctx, n_real)), compute)


def generation_key(ctx: SetContext, generator_dir: Path, mask_dir: Path) -> str:
    gen = _section(ctx.cfg.generation, drop=("batch_size", "compile"))
    return make_key("generation", generator_dir.name, mask_dir.name, gen, code_hash("generators"))


def stage_generate(ctx: SetContext, generator_dir: Path, mask_dir: Path) -> tuple[Path, float, bool]:
    from .data.store import MaskStore
    from .generators.generate import generate_pairs

    def compute(d: Path) -> None:
        from .device import configure

        configure(ctx.cfg.runtime)
        if ctx.cfg.generator.model == "copypaste":
            from .generators.copypaste import BANK_FILE, generate_copypaste_pairs

            generate_copypaste_pairs(generator_dir / BANK_FILE, MaskStore(mask_dir), d, ctx.cfg.generation,
                                     progress=ctx.cfg.runtime.progress)
        else:
            generate_pairs(generator_dir / "final.pt", MaskStore(mask_dir), d, ctx.cfg.generation,
                           progress=ctx.cfg.runtime.progress)

    return _timed(ctx.stage_dir("synthetic", generation_key(ctx, generator_dir, mask_dir)), compute)


SEG_SHARED = ("seeds", "n_real", "arms")
# the modules whose code decides an arm's result (not the CLI, the verdict or the report)
SEG_ARM_CODE = ("segmentation/arms.py", "segmentation/training.py", "segmentation/dataset.py",
                "segmentation/postprocess.py", "segmentation/targets.py", "segmentation/models.py",
                "evaluation/metrics.py", "evaluation/matching.py", "data/store.py", "device.py")


def seg_arm_key(ctx: SetContext, arm: str, seed: int, n_real: int, pair_dirs: list[Path]) -> str:
    from .segmentation.arms import ARMS

    seg = _section(ctx.cfg.segmentation, drop=SEG_SHARED)
    synthetic = ARMS[arm].needs_synthetic
    synth = [ctx.cfg.generator.model, sorted(p.name for p in pair_dirs)] if synthetic else []
    return make_key(
        "seg", arm, seed, n_real, ctx.set_hash, ctx.splits, seg, _section(ctx.cfg.evaluation), synth,
        code_hash(*SEG_ARM_CODE),
    )


def stage_seg_arm(ctx: SetContext, arm: str, seed: int, n_real: int, pair_dirs: list[Path]) -> tuple[Path, float, bool]:
    """Train one arm for one seed to its plateau, tune its post-processing on the validation images
    and evaluate it on the test split (pipeline/segmentation/arms.py). Synthetic arms use the pairs of
    ``ctx.cfg.generator.model``."""
    from .segmentation.arms import ARMS, run_arm

    synthesis = ctx.cfg.generator.model if ARMS[arm].needs_synthetic else None

    def compute(d: Path) -> None:
        run_arm(ctx, arm, seed, n_real, pair_dirs, d, synthesis=synthesis)

    key = seg_arm_key(ctx, arm, seed, n_real, pair_dirs)
    return _timed(ctx.stage_dir(f"seg_{arm}", key), compute, arm=arm, seed=seed, n_real=n_real)


def stage_segmodel_masks(ctx: SetContext, count: int, n_real: int | None = None) -> tuple[Path, float, bool]:
    """Masks predicted by a segmentation model trained (to its plateau) on the n_real real pairs
    (on unlabeled images if the set has them, else on those train images with their labels ignored)."""
    from .segmentation.segmodel_masks import write_segmodel_masks
    from .segmentation.training import train_segmentation

    report = ctx.report()
    stems = ctx.real_train_stems(n_real)
    sources = [str(p) for p in report.unlabeled] or stems
    m = _section(ctx.cfg.masks, drop=("count", "sources", "workers", "progan_steps"))
    key = make_key("segmodel", ctx.set_hash, ctx.splits, stems, m, _section(ctx.cfg.segmentation, drop=SEG_SHARED), count,
                   code_hash("segmentation", "evaluation"))

    def compute(d: Path) -> None:
        from .data.labeled_set import load_unlabeled

        seg = ctx.cfg.segmentation
        train = ctx.report_pairs(stems)
        ckpt = train_segmentation(ctx.cfg, train, ctx.pairs("val"), d / "model",
                                  steps=seg.max_steps, lr=seg.lr, seed=ctx.cfg.masks.seed,
                                  progress=ctx.cfg.runtime.progress)
        images = [load_unlabeled(report, p) for p in report.unlabeled] or [i for i, _ in train]
        write_segmodel_masks(ckpt, images, d / "masks", ctx.cfg, count=count, seed=ctx.cfg.masks.seed,
                             origins=[str(s) for s in sources])

    path, secs, cached = _timed(ctx.stage_dir("masks_segmodel", key), compute, count=count)
    return path / "masks", secs, cached


def stage_progan_masks(ctx: SetContext, count: int, n_real: int | None = None) -> tuple[Path, float, bool]:
    """Masks drawn by a ProgressiveGAN trained on the n_real training masks (optional source)."""
    from .masks.progan import write_progan_masks

    stems = ctx.real_train_stems(n_real)
    m = _section(ctx.cfg.masks, drop=("count", "sources", "workers", "segmodel_min_score"))
    key = make_key("progan", ctx.set_hash, stems, m, ctx.cfg.shape_bank.min_area, count,
                   code_hash("masks/progan.py", "segmentation/postprocess.py"))

    def compute(d: Path) -> None:
        c = ctx.cfg.masks
        write_progan_masks([mk for _, mk in ctx.report_pairs(stems)], d / "model", d / "masks", c.size, count,
                           c.progan_steps, c.seed, ctx.cfg.shape_bank.min_area, progress=ctx.cfg.runtime.progress)

    path, secs, cached = _timed(ctx.stage_dir("masks_progan", key), compute, count=count)
    return path / "masks", secs, cached


def reference_segmenter(arm_dirs: list[Path]) -> Path | None:
    """Best checkpoint of the real-only arm at its lowest seed and largest n_real: the 'segmenter
    trained on real pairs' that mask fidelity needs."""
    from .segmentation.arms import REFERENCE_ARM

    rows = [(read_json(d / "metrics.json"), d) for d in arm_dirs if (d / "metrics.json").is_file()]
    mine = [(m, d) for m, d in rows if m.get("arm") == REFERENCE_ARM]
    if not mine:
        return None
    m, _ = min(mine, key=lambda r: (r[0]["seed"], -r[0]["n_real"]))
    return Path(m["checkpoint"])


def stage_quality(ctx: SetContext, generator_dir: Path, pair_dir: Path, segmenter: Path) -> tuple[Path, float, bool]:
    """Mask fidelity, realism (C2ST) and diversity of one synthetic pair store, plus a style grid."""
    from .quality.measure import measure_quality, style_grid

    trained = (generator_dir / "final.pt").is_file()
    key = make_key("quality", generator_dir.name, pair_dir.name, str(segmenter), ctx.splits, _section(ctx.cfg.quality),
                   code_hash("quality", "generators/quality.py"))

    def compute(d: Path) -> None:
        from .segmentation.postprocess import resolve_min_area

        train, val = ctx.pairs("train"), ctx.pairs("val")
        cfg = resolve_min_area(ctx.cfg, [m for _, m in train])
        q = measure_quality(cfg, pair_dir, segmenter, train, val,
                            generator_dir / "final.pt" if trained else None, seed=ctx.cfg.generation.seed)
        write_json(d / "quality.json", q)
        if trained:
            style_grid(generator_dir / "final.pt", val[:4], d / "style_grid.png", crop=ctx.cfg.generator.image_size)

    return _timed(ctx.stage_dir("quality", key), compute)


def collect_quality(ctx: SetContext, quality_dirs: dict[str, Path]) -> None:
    """run_dir/quality.json (one entry per metric, suffixed with the mask source when there are
    several) and style_grid.png for the report."""
    from .io import write_bytes

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


def write_run_manifest(ctx: SetContext, synthesis: list[str] | None = None) -> None:
    import pipeline

    write_json(
        ctx.run_dir / "run.json",
        {"run_id": ctx.run_dir.name, "set": ctx.set_name, "config": ctx.cfg.name, "version": pipeline.__version__,
         "synthesis": synthesis or [ctx.cfg.generator.model], "code": code_hash("."), "started": time.time()},
    )
    if (ctx.run_dir / "stages.json").is_file():
        (ctx.run_dir / "stages.json").unlink()


def _last_path(cfg: Config) -> Path:
    """Where the last finished run of this set is remembered: ``runs/<set-name>/last_finished.json``,
    beside the set's runs. Never under the set: ``data.set`` may be an absolute or relative path,
    and the pipeline writes nothing into a user's folder."""
    set_dir = resolve_set_dir(cfg)
    name = set_dir.name if cfg.data.set != "demo" else "demo"
    return Path(cfg.runtime.runs_dir) / name / "last_finished.json"


def _set_identity(cfg: Config) -> dict:
    """What a finished run is remembered by. The resolved path is part of it because two sets of
    the same folder name share ``runs/<set-name>/``."""
    set_dir = resolve_set_dir(cfg)
    return {"set_path": str(set_dir.resolve()), "set_hash": set_content_hash(set_dir),
            "config": make_key(cfg.model_dump(mode="json"))}


def set_changed(cfg: Config) -> bool:
    """True unless the set's files and the config equal those of its last finished run."""
    f = _last_path(cfg)
    if not f.is_file():
        return True
    last = read_json(f)
    return any(last.get(k) != v for k, v in _set_identity(cfg).items())


def remember_set(cfg: Config) -> None:
    write_json(_last_path(cfg), {**_set_identity(cfg), "time": time.time()})


def write_samples(ctx: SetContext, pair_dirs: list[Path], n: int = 8) -> None:
    """A grid of synthetic pairs (instance mask | generated image) for the report."""
    from .data.store import PairStore
    from .report.plots import pair_grid

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
    from .data.store import PairStore
    from .report.plots import realism_strip

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

    from .evaluation.verdict import efficiency_sentence, verdicts
    from .io import atomic_path, write_npz
    from .report.plots import overlay_pairs

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

    from .io import atomic_path
    from .report.sizes import SIZE_BIN_COLUMNS, object_diameters, size_bin_counts, size_edges

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
    from .data.store import MaskStore
    from .masks.stats import plot_mask_sources

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
