"""The pipeline's stages, in the order a run meets them. Inputs are paths and small values; each
stage's output is a cached folder ``runs/<set>/stages/<stage>/<key>/`` (pipeline/cache.py: the key
hashes the inputs, the config values read and the code run; a finished folder is reused, a partial
one resumed). Each returns ``(output folder, seconds spent in this call, cached?)``.

    shape bank      the shapes of the n_real real training masks           stage_shape_bank
    masks           synthetic instance masks, per mask source              stage_masks
    generator       a trained generator or a bank, per synthesis method     stage_train_generator
                    (trained ones judged by a real-only arm, to a plateau)
    synthetic       (mask, image) pairs, per method and mask source         stage_generate
    filtered        the pairs a real-only segmenter agrees with (optional)  stage_filter
    seg_<arm>       one arm x seed x n_real, trained to its plateau         stage_seg_arm
    quality         fidelity, realism and diversity of synthetic pairs      stage_quality

The run's context (config, set, splits, run folder) is pipeline/context.py; what the report is
built from is pipeline/report/collect.py; the Prefect flow (flows/synth_pretrain.py) wraps these
functions in tasks.
"""

from __future__ import annotations

from pathlib import Path

from .cache import code_hash, make_key, timed
from .config import Config
from .context import SetContext


def _section(cfg_section, drop: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in cfg_section.model_dump(mode="json").items() if k not in drop}


# --------------------------------------------------------------------------------------------------
# shape bank


def shape_bank_key(ctx: SetContext, n_real: int | None = None) -> str:
    return make_key("shape_bank", ctx.set_hash, ctx.real_train_stems(n_real), _section(ctx.cfg.shape_bank),
                    code_hash(stage_shape_bank))


def stage_shape_bank(ctx: SetContext, n_real: int | None = None) -> tuple[Path, float, bool]:
    """Shapes of the n_real training masks the arms see (an n_real sweep leaks no extra real pairs)."""
    from .masks.shape_bank import build_shape_bank

    def compute(d: Path) -> None:
        stems = ctx.real_train_stems(n_real)
        bank = build_shape_bank([m for _, m in ctx.report_pairs(stems)], ctx.cfg.shape_bank, image_ids=stems)
        bank.save(d)

    return timed(ctx.stage_dir("shape_bank", shape_bank_key(ctx, n_real)), compute)


# --------------------------------------------------------------------------------------------------
# synthetic masks


def source_counts(cfg: Config) -> dict[str, int]:
    """Split masks.count over the configured sources by their fractions (largest remainder)."""
    src = {k: v for k, v in cfg.masks.sources.items() if v > 0}
    total = sum(src.values())
    raw = {k: cfg.masks.count * v / total for k, v in src.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: cfg.masks.count - sum(counts.values())]:
        counts[k] += 1
    return {k: v for k, v in counts.items() if v > 0}


def masks_key(ctx: SetContext, source: str, bank_dir: Path | None, count: int, n_real: int | None) -> str:
    from .masks.sources import MASK_SOURCES

    src = MASK_SOURCES[source]
    sections = {s: _section(getattr(ctx.cfg, s), drop=("seeds", "n_real", "arms")) for s in src.config_sections}
    masks = _section(ctx.cfg.masks, drop=("count", "sources", "workers"))
    return make_key("masks", source, ctx.set_hash, ctx.splits, ctx.real_train_stems(n_real), bank_dir.name if bank_dir else None, masks,
                    sections, count, code_hash(src.write))


def stage_masks(ctx: SetContext, source: str, bank_dir: Path | None, count: int,
                n_real: int | None = None) -> tuple[Path, float, bool]:
    """``count`` masks of one source (pipeline/masks/sources.py) from the n_real training pairs
    (``bank_dir``: their shape bank, for the sources that place bank shapes); returns the MaskStore
    folder."""
    from .masks.sources import MASK_SOURCES

    src = MASK_SOURCES[source]
    path, secs, cached = timed(ctx.stage_dir(f"masks_{source}", masks_key(ctx, source, bank_dir, count, n_real)),
                               lambda d: src.write(ctx, d, bank_dir, count, n_real), count=count)
    return (path / src.store_subdir if src.store_subdir else path), secs, cached


# --------------------------------------------------------------------------------------------------
# synthesis: prepare (train a generator / build a bank), then generate pairs


# generator options that only matter when a judge scores the training (the fidelity plateau)
GENERATOR_JUDGE_FIELDS = ("eval_every", "patience", "min_delta", "min_steps", "eval_layouts")


def _judge_for(ctx: SetContext, judge_arm_dir: Path | None) -> Path | None:
    """The judge a method uses: only trained generators stop at a fidelity plateau."""
    from .generators.methods import SYNTHESIS_METHODS

    return judge_arm_dir if judge_arm_dir is not None and SYNTHESIS_METHODS[ctx.cfg.generator.model].trained else None


def generator_key(ctx: SetContext, n_real: int | None = None, judge_arm_dir: Path | None = None) -> str:
    from .generators.methods import SYNTHESIS_METHODS

    method = SYNTHESIS_METHODS[ctx.cfg.generator.model]
    judge = _judge_for(ctx, judge_arm_dir)
    drop = ("checkpoint_every", "sample_every") + (GENERATOR_JUDGE_FIELDS if judge is None else ())
    parts = ["generator", ctx.set_hash, ctx.real_train_stems(n_real), _section(ctx.cfg.generator, drop=drop),
             _section(ctx.cfg.shape_bank), code_hash(method.prepare)]
    if judge is not None:  # the judge's key names its splits (the validation layouts) and training
        parts.append({"judge": judge.name, "evaluation": _section(ctx.cfg.evaluation)})
    return make_key(*parts)


def stage_train_generator(ctx: SetContext, n_real: int | None = None,
                          judge_arm_dir: Path | None = None) -> tuple[Path, float, bool]:
    """What ``ctx.cfg.generator.model`` learns from the n_real training pairs (a generator or a bank).
    ``judge_arm_dir``: a finished real-only arm for the same n_real; a trained generator then stops
    at its fidelity plateau (generators/training_loop.py) and keeps its best EMA weights."""
    from .generators.methods import SYNTHESIS_METHODS

    method = SYNTHESIS_METHODS[ctx.cfg.generator.model]
    judge = _judge_for(ctx, judge_arm_dir)

    def compute(d: Path) -> None:
        if judge is None:
            method.prepare(ctx, d, n_real)
        else:
            method.prepare(ctx, d, n_real, judge)

    return timed(ctx.stage_dir("generator", generator_key(ctx, n_real, judge_arm_dir)), compute)


def generation_key(ctx: SetContext, generator_dir: Path, mask_dir: Path) -> str:
    from .generators.methods import SYNTHESIS_METHODS

    method = SYNTHESIS_METHODS[ctx.cfg.generator.model]
    gen = _section(ctx.cfg.generation, drop=("batch_size", "compile"))
    masks = [mask_dir.parent.name, mask_dir.name] if mask_dir is not None else None
    return make_key("generation", ctx.cfg.generator.model, generator_dir.name, masks, gen, code_hash(method.generate))


def stage_generate(ctx: SetContext, generator_dir: Path, mask_dir: Path | None) -> tuple[Path, float, bool]:
    """One PairStore: an image for every mask of ``mask_dir`` (None: a method that makes its own
    layouts from the real pairs, ``uses_masks=False``)."""
    from .device import configure
    from .generators.methods import SYNTHESIS_METHODS

    method = SYNTHESIS_METHODS[ctx.cfg.generator.model]

    def compute(d: Path) -> None:
        configure(ctx.cfg.runtime)
        method.generate(ctx, generator_dir, mask_dir, d)

    return timed(ctx.stage_dir("synthetic", generation_key(ctx, generator_dir, mask_dir)), compute)


def filtering_on(cfg: Config) -> bool:
    return cfg.filtering.keep_fraction < 1.0 or cfg.filtering.hard_oversample > 0.0


def stage_filter(ctx: SetContext, pair_dir: Path, judge_arm_dir: Path) -> tuple[Path, float, bool]:
    """The synthetic pairs a real-only segmenter agrees with (quality/filtering.py): every pair
    scored by the ``judge_arm_dir`` arm's best checkpoint with its tuned post-processing
    (``scores.parquet``), the best ``filtering.keep_fraction`` kept, the hardest kept layouts
    copied ``hard_oversample`` times over (``pairs/`` + ``pairs/filtering.json``)."""
    from .io import atomic_path, read_json
    from .quality.filtering import filter_pairs, score_pairs

    f = ctx.cfg.filtering
    key = make_key("filter", pair_dir.name, judge_arm_dir.name, _section(f, drop=("batch_size",)),
                   ctx.cfg.evaluation.iou_threshold, code_hash(stage_filter))

    def compute(d: Path) -> None:
        judge = read_json(judge_arm_dir / "metrics.json")
        scores = score_pairs(Path(judge["checkpoint"]), pair_dir, ctx.cfg, f.batch_size, progress=ctx.cfg.runtime.progress,
                             postprocess=judge)
        with atomic_path(d / "scores.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        filter_pairs(pair_dir, scores, d / "pairs", f.keep_fraction, f.hard_oversample)

    path, secs, cached = timed(ctx.stage_dir("filtered", key), compute)
    return path / "pairs", secs, cached


# --------------------------------------------------------------------------------------------------
# segmentation arms


SEG_SHARED = ("seeds", "n_real", "arms")  # study axes: each arm's key names its own seed and n_real


def arm_jobs(cfg: Config, methods: list[str]) -> list[tuple[str, str | None, int, int]]:
    """Every arm a run trains, as ``(arm, synthesis method or None, seed, n_real)``, in the order the
    results and the report list them: per n_real and seed, the real arms, then each method's
    synthetic arms. The flow trains exactly these; a partial report counts against them."""
    from .segmentation.arms import ARMS

    seg = cfg.segmentation
    real = [a for a in seg.arms if not ARMS[a].needs_synthetic]
    synthetic = [a for a in seg.arms if ARMS[a].needs_synthetic]
    return [job for n_real in seg.n_real for seed in seg.seeds
            for job in [(a, None, seed, n_real) for a in real]
            + [(a, m, seed, n_real) for m in (methods if synthetic else []) for a in synthetic]]


def seg_arm_key(ctx: SetContext, arm: str, seed: int, n_real: int, pair_dirs: list[Path]) -> str:
    from .segmentation.arms import ARMS

    seg = _section(ctx.cfg.segmentation, drop=SEG_SHARED)
    synthetic = ARMS[arm].needs_synthetic
    synth = [ctx.cfg.generator.model, sorted(p.name for p in pair_dirs)] if synthetic else []
    return make_key(
        "seg", arm, seed, n_real, ctx.set_hash, ctx.splits, seg, _section(ctx.cfg.evaluation), synth,
        code_hash(stage_seg_arm),
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
    return timed(ctx.stage_dir(f"seg_{arm}", key), compute, arm=arm, seed=seed, n_real=n_real)


# --------------------------------------------------------------------------------------------------
# quality of the synthetic pairs


def stage_quality(ctx: SetContext, generator_dir: Path, pair_dir: Path, segmenter: Path) -> tuple[Path, float, bool]:
    """Mask fidelity, realism (C2ST) and diversity of one synthetic pair store, plus a style grid."""
    from .io import write_json
    from .quality.measure import measure_quality, style_grid

    trained = (generator_dir / "final.pt").is_file()
    key = make_key("quality", generator_dir.name, pair_dir.name, str(segmenter), ctx.splits, _section(ctx.cfg.quality),
                   code_hash(stage_quality))

    def compute(d: Path) -> None:
        from .segmentation.postprocess import resolve_min_area

        train, val = ctx.pairs("train"), ctx.pairs("val")
        cfg = resolve_min_area(ctx.cfg, [m for _, m in train])
        q = measure_quality(cfg, pair_dir, segmenter, train, val,
                            generator_dir / "final.pt" if trained else None, seed=ctx.cfg.generation.seed)
        write_json(d / "quality.json", q)
        if trained:
            style_grid(generator_dir / "final.pt", val[:4], d / "style_grid.png", crop=ctx.cfg.generator.image_size)

    return timed(ctx.stage_dir("quality", key), compute)
