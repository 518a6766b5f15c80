"""The ``synth-pretrain`` Prefect flow: one task per stage, paths in, paths out.

Reads like the pipeline's table of contents:

    validate -> for each n_real: shape bank -> masks (placement / segmentation-model / ProgressiveGAN)
    -> for each synthesis method: train generator -> generate pairs
    -> segmentation arms (real_only once; pretrained, joint per method) x seeds, each to its plateau
    -> synthetic-data quality -> verdict -> report

``synth-pretrain run`` runs it with the config's one synthesis method (``generator.model``);
``synth-pretrain study`` with several. The real-only arms do not depend on the method and run once.

Caching is content-addressed in pipeline/stages.py (each stage's folder is keyed by a hash of its
inputs), so re-running skips finished stages whether the flow runs locally, on a served deployment
or on Dask workers. Prefect's own task cache is off: the files are the cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import stages
from pipeline.config import Config, load_config

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

TASK = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="validate", retries=2, retry_delay_seconds=2, **TASK)
def validate_task(cfg: Config, run_id: str | None) -> stages.SetContext:
    return stages.prepare(cfg, run_id)


@task(name="shape-bank", **TASK)
def shape_bank_task(ctx, n_real: int):
    return stages.stage_shape_bank(ctx, n_real)


@task(name="masks", **TASK)
def masks_task(ctx, source: str, bank_dir: Path, count: int, n_real: int):
    if source == "placement":
        return stages.stage_placement_masks(ctx, bank_dir, count)
    if source == "segmodel":
        return stages.stage_segmodel_masks(ctx, count, n_real)
    if source == "progan":
        return stages.stage_progan_masks(ctx, count, n_real)
    raise ValueError(f"masks.sources: unknown mask source {source}")


@task(name="train-generator", task_run_name="train-generator-{ctx.cfg.generator.model}", **TASK)
def generator_task(ctx, n_real: int):
    return stages.stage_train_generator(ctx, n_real)


@task(name="generate", **TASK)
def generate_task(ctx, generator_dir: Path, mask_dir: Path):
    """Generation runs in a worker thread; this thread mirrors finished shards into a Prefect
    progress artifact, so the UI shows how far a long generation is."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as StillRunning

    from pipeline.data.store import PairStore, shard_ranges

    key = stages.generation_key(ctx, generator_dir, mask_dir)
    out = ctx.stage_dir("synthetic", key)
    gen = ctx.cfg.generation
    n_shards = max(1, len(shard_ranges(gen.count, gen.shard_size)))
    artifact = create_progress_artifact(progress=0.0, description=f"synthetic pairs for {ctx.set_name}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(stages.stage_generate, ctx, generator_dir, mask_dir)
        while True:
            try:
                result = fut.result(timeout=5)
                break
            except StillRunning:
                done = len(PairStore(out).completed_shards()) if out.is_dir() else 0
                update_progress_artifact(artifact, progress=100.0 * min(done, n_shards) / n_shards)
    update_progress_artifact(artifact, progress=100.0)
    return result


@task(name="segmentation-arm", task_run_name="{arm}-{ctx.cfg.generator.model}-seed{seed}-n{n_real}", **TASK)
def seg_arm_task(ctx, arm: str, seed: int, n_real: int, pair_dirs: list[Path]):
    return stages.stage_seg_arm(ctx, arm, seed, n_real, pair_dirs)


@task(name="quality", task_run_name="quality-{source}", **TASK)
def quality_task(ctx, source: str, generator_dir: Path, pair_dir: Path, segmenter: Path):
    return stages.stage_quality(ctx, generator_dir, pair_dir, segmenter)


@task(name="report", retries=1, **TASK)
def report_task(ctx, arm_dirs: list[Path]) -> Path:
    stages.collect_results(ctx, arm_dirs)
    from pipeline.report.build import build_report

    html, _ = build_report(ctx.run_dir)
    return html


def _record(ctx, name: str, result: tuple[Path, float, bool]) -> Path:
    path, secs, cached = result
    stages.record(ctx, name, path, secs, cached)
    get_run_logger().info(f"{name}: {'cached' if cached else f'{secs:.1f}s'} -> {path}")
    return path


def make_task_runner(cfg: Config):
    """threads (default; one task at a time on CPU, since each stage uses all cores already), a local
    Dask cluster, or an existing Dask scheduler by address."""
    rt = cfg.runtime
    if rt.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if rt.dask_address:
            return DaskTaskRunner(address=rt.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": rt.dask_workers, "threads_per_worker": 1, "processes": True,
                            "dashboard_address": None, "host": "127.0.0.1"}
        )
    return ThreadPoolTaskRunner(max_workers=rt.max_parallel_tasks)


@flow(name="synth-pretrain-set", flow_run_name="{set_name}", log_prints=True)
def process_set(set_name: str, config: str = "default", overrides: list[str] | None = None, run_id: str | None = None,
                synthesis: list[str] | None = None) -> str:
    """The whole pipeline for one labeled set; returns its run folder. ``synthesis``: the synthesis
    methods to compare (default: the config's ``generator.model``)."""
    from pipeline.segmentation.arms import ARMS

    cfg = load_config(config, [*(overrides or []), f"data.set={set_name}"])
    methods = list(dict.fromkeys(synthesis or [cfg.generator.model]))
    ctx = validate_task(cfg, run_id)
    stages.write_run_manifest(ctx, methods)
    seg = cfg.segmentation
    real_arms = [a for a in seg.arms if not ARMS[a].needs_synthetic]
    synth_arms = [a for a in seg.arms if ARMS[a].needs_synthetic]
    counts = stages.source_counts(cfg)

    # every synthesis first, then the arms: generator training never shares the cores with an arm
    pairs: dict[tuple[int, str], list[Path]] = {}
    quality_inputs = {}
    for n_real in sorted(seg.n_real) if synth_arms else []:
        bank_dir = _record(ctx, "shape bank", shape_bank_task(ctx, n_real))
        mask_futs = {src: masks_task.submit(ctx, src, bank_dir, n, n_real) for src, n in counts.items()}
        mask_dirs = [_record(ctx, f"masks ({src})", f.result()) for src, f in mask_futs.items()]
        for method in methods:  # one after another: generator training uses every core
            mctx = ctx.with_synthesis(method)
            gen_dir = _record(ctx, f"train generator ({method})", generator_task(mctx, n_real))
            gen_futs = generate_task.map(mctx, gen_dir, mask_dirs)
            pairs[n_real, method] = [_record(ctx, f"generate pairs ({method})", f.result()) for f in gen_futs]
            quality_inputs[method] = (mctx, gen_dir, pairs[n_real, method])  # the last n_real: the largest
    if pairs:
        stages.write_samples(ctx, [d for m in methods for d in pairs[max(seg.n_real), m]])

    arm_futs, combos = [], []
    for n_real in seg.n_real:
        for seed in seg.seeds:
            for arm in real_arms:
                combos.append((arm, None))
                arm_futs.append(seg_arm_task.submit(ctx, arm, seed, n_real, []))
            for method in methods if synth_arms else []:
                for arm in synth_arms:
                    combos.append((arm, method))
                    arm_futs.append(seg_arm_task.submit(ctx.with_synthesis(method), arm, seed, n_real,
                                                        pairs[n_real, method]))
    wait(arm_futs)
    arm_dirs = [_record(ctx, f"segmentation {a}" + (f" ({m})" if m else ""), f.result())
                for (a, m), f in zip(combos, arm_futs)]

    segmenter = stages.reference_segmenter(arm_dirs)
    if cfg.quality.enabled and segmenter is not None and quality_inputs:
        q_dirs = {}
        for method, (mctx, gen_dir, pair_dirs) in quality_inputs.items():
            futs = {src: quality_task.submit(mctx, src, gen_dir, p, segmenter) for src, p in zip(counts, pair_dirs)}
            for src, f in futs.items():
                name = src if len(methods) == 1 else f"{method}, {src}"
                q_dirs[name] = _record(ctx, f"quality ({name})", f.result())
        stages.collect_quality(ctx, q_dirs)

    html = report_task(ctx, arm_dirs)
    _publish(ctx, html)
    return str(ctx.run_dir)


def _publish(ctx, html: Path) -> None:
    """Prefect UI artifacts: the summary, the metrics table and a link to the HTML report."""
    import pandas as pd

    key = "".join(c if c.isalnum() else "-" for c in ctx.set_name.lower())
    md = (ctx.run_dir / "report.md").read_text()
    create_markdown_artifact(md, key=f"report-{key}", description=f"synth-pretrain report for {ctx.set_name}")
    table = pd.read_csv(ctx.run_dir / "results.csv").round(4)
    create_table_artifact(table.to_dict("records"), key=f"metrics-{key}", description="test metrics per arm and seed")
    create_link_artifact(html.resolve().as_uri(), link_text="report.html", key=f"report-html-{key}")


def list_sets(config: str, overrides: list[str]) -> list[str]:
    cfg = load_config(config, overrides)
    root = Path(cfg.data.root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "images").is_dir()) if root.is_dir() else []


@flow(name="synth-pretrain", log_prints=True)
def synth_pretrain(
    sets: list[str] | None = None,
    config: str = "default",
    overrides: list[str] | None = None,
    only_changed: bool = False,
    run_id: str | None = None,
    synthesis: list[str] | None = None,
) -> dict[str, Any]:
    """Run the pipeline for each set. ``sets=None``: the config's data.set; ``["*"]``: every set under
    data/. ``only_changed``: skip sets whose files did not change since their last finished run.
    ``synthesis``: several synthesis methods compared in one run (``synth-pretrain study``).
    A failing set does not stop the others; the flow fails at the end if any set failed."""
    overrides = list(overrides or [])
    logger = get_run_logger()
    if sets == ["*"]:
        sets = list_sets(config, overrides)
        logger.info(f"sets under data/: {sets or 'none'}")
    elif not sets:
        sets = [load_config(config, overrides).data.set]
    results: dict[str, Any] = {}
    failed = []
    for name in sets:
        cfg = load_config(config, [*overrides, f"data.set={name}"])
        if only_changed and not stages.set_changed(cfg):
            logger.info(f"{name}: unchanged since its last finished run; skipped")
            results[name] = "unchanged"
            continue
        runner = make_task_runner(cfg)
        state = process_set.with_options(task_runner=runner)(name, config, overrides, run_id, synthesis,
                                                             return_state=True)
        if state.is_completed():
            results[name] = state.result()
            stages.remember_set(cfg)
        else:
            failed.append(name)
            results[name] = f"failed: {state.message}"
            logger.error(f"{name}: {state.message}")
    if failed:
        raise RuntimeError(f"{len(failed)} set(s) failed: {', '.join(failed)} (the others finished)")
    return results
