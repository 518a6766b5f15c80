"""The ``synth-pretrain`` Prefect flow: one task per stage, paths in, paths out.

Reads like the pipeline's table of contents:

    validate -> for each n_real: shape bank -> masks (placement / segmentation-model / ProgressiveGAN)
    -> [generator plateau on: the judge, real_only at the lowest seed]
    -> for each synthesis method: train generator (to the judge's fidelity plateau) -> generate pairs
    -> segmentation arms (real_only once; pretrained, joint per method) x seeds, each to its plateau
    -> synthetic-data quality -> verdict -> report

``synth-pretrain run`` runs it with the config's one synthesis method (``generator.model``);
``synth-pretrain study`` with several. The real-only arms do not depend on the method and run once.

Caching is content-addressed (pipeline/cache.py: each stage's folder in pipeline/stages.py is keyed
by a hash of its inputs and code), so re-running skips finished stages whether the flow runs locally, on a served deployment
or on Dask workers. Prefect's own task cache is off: the files are the cache.
"""

from __future__ import annotations

import contextvars
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import context, stages
from pipeline.config import Config, load_config
from pipeline.report import collect

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

TASK = {"cache_policy": NO_CACHE, "persist_result": False}


def _not_a_user_error(task, task_run, state) -> bool:
    """Retry condition: a stage that stopped on bad input fails the same way again."""
    from pipeline.config import ConfigError
    from pipeline.data.images import InputError

    return not isinstance(state.data, (InputError, ConfigError))


# Retries only where a second attempt can succeed and resumes the work done: the long stages that a
# lost worker or an out-of-memory kill interrupts (they pick up their checkpoints and shards).
# Never on input errors, which the parent flow finds once, before anything runs (context.check_set).
RESUMABLE = {"retries": 1, "retry_delay_seconds": 10, "retry_condition_fn": _not_a_user_error}
# Log records carrying this flag are one-line user errors: `synth-pretrain run` prints them itself
# in the `validate` format (flows/commands.py) instead of Prefect's console format.
USER_ERROR = "synth_pretrain_user_error"

# --- stage code -> Prefect run logs ---------------------------------------------------------------
# The stage code logs progress (steps, losses, validation F1) to the `synth_pretrain` logger and
# knows nothing of Prefect. Inside a task this handler passes each record to that run's logger (so
# it shows in the UI while a 20-minute training runs), and a record with a `progress` fraction moves
# the task's progress artifact, if it made one.
_PROGRESS: contextvars.ContextVar[Any] = contextvars.ContextVar("synth_pretrain_progress", default=None)


class _ToRunLogger(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = get_run_logger()
        except Exception:  # no run context (a plain call): warnings still reach the console
            if record.levelno >= logging.WARNING:
                logging.getLogger().handle(record)
            return
        try:
            logger.log(record.levelno, record.getMessage())
            artifact, progress = _PROGRESS.get(), getattr(record, "progress", None)
            if artifact is not None and progress is not None:
                update_progress_artifact(artifact, progress=100.0 * min(1.0, max(0.0, float(progress))))
        except Exception:
            self.handleError(record)


def _attach_stage_logs() -> None:
    lib = logging.getLogger("synth_pretrain")
    if not any(isinstance(h, _ToRunLogger) for h in lib.handlers):
        lib.addHandler(_ToRunLogger())
    lib.setLevel(logging.INFO)
    lib.propagate = False  # the run logger already reaches the console


_attach_stage_logs()  # also on Dask workers, which import this module to run its tasks


def _stage_setup(cfg: Config) -> None:
    """Per task, wherever it runs: torch threads from ``runtime.threads``, else, on a Dask worker,
    the worker's share of the host's cores (the nanny sets OMP_NUM_THREADS=1, so torch would run
    single-threaded there). In the threads runner without ``runtime.threads``: torch's default."""
    import torch

    from pipeline.device import dask_cpu_share

    threads = cfg.runtime.threads or dask_cpu_share()
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if os.environ.get(_BARS_OFF) == "1":
        cfg.runtime.progress = False  # this task's own copy of the config (not in any stage key)


# Side-by-side Dask workers write their tqdm bars onto one terminal line, which reads as noise (two
# arms' bars interleaved, carriage returns filling a log file). Their bars are off; each evaluation's
# log line (step, loss, validation F1, best so far), named by its task, carries the progress, and the
# Prefect UI's progress artifacts still move.
_BARS_OFF = "SYNTH_PRETRAIN_WORKER_BARS_OFF"


def _one_line_progress_in_dask_workers() -> None:
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ[_BARS_OFF] = "1"
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})


@contextmanager
def _progress_artifact(description: str):
    """A progress artifact that the stage's log records (``extra={"progress": f}``) move while the
    body runs; 100 % when it ends. The context variable is reset after, so a task called directly
    in the flow's thread leaves nothing behind."""
    artifact = create_progress_artifact(progress=0.0, description=description)
    token = _PROGRESS.set(artifact)
    try:
        yield
    finally:
        _PROGRESS.reset(token)
    update_progress_artifact(artifact, progress=100.0)


@task(name="prepare-run", **TASK)
def prepare_task(cfg: Config, run_id: str | None) -> context.SetContext:
    """The run folder, resolved config and splits (the set was validated by the parent flow)."""
    return context.prepare(cfg, run_id)


@task(name="shape-bank", **TASK)
def shape_bank_task(ctx, n_real: int):
    _stage_setup(ctx.cfg)
    return stages.stage_shape_bank(ctx, n_real)


@task(name="masks", **TASK, **RESUMABLE)
def masks_task(ctx, source: str, bank_dir: Path, count: int, n_real: int):
    _stage_setup(ctx.cfg)
    return stages.stage_masks(ctx, source, bank_dir, count, n_real)


@task(name="train-generator", task_run_name="train-generator-{ctx.cfg.generator.model}", **TASK, **RESUMABLE)
def generator_task(ctx, n_real: int, judge_arm_dir: Path | None = None):
    _stage_setup(ctx.cfg)
    with _progress_artifact(f"{ctx.cfg.generator.model} generator for {ctx.set_name} (n_real {n_real}): "
                            "training steps out of the cap" + (" (it usually stops earlier, at its fidelity plateau)"
                                                                if judge_arm_dir is not None else "")):
        return stages.stage_train_generator(ctx, n_real, judge_arm_dir)


@task(name="generate", **TASK, **RESUMABLE)
def generate_task(ctx, generator_dir: Path, mask_dir: Path):
    """Generation runs in a worker thread; this thread mirrors finished shards into a Prefect
    progress artifact, so the UI shows how far a long generation is."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as StillRunning

    from pipeline.data.store import PairStore, shard_ranges

    _stage_setup(ctx.cfg)
    key = stages.generation_key(ctx, generator_dir, mask_dir)
    out = ctx.stage_dir("synthetic", key)
    gen = ctx.cfg.generation
    n_shards = max(1, len(shard_ranges(gen.count, gen.shard_size)))
    artifact = create_progress_artifact(progress=0.0, description=f"synthetic pairs for {ctx.set_name}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        # the copied context keeps the stage's log lines in this task's run log
        fut = pool.submit(contextvars.copy_context().run, stages.stage_generate, ctx, generator_dir, mask_dir)
        while True:
            try:
                result = fut.result(timeout=5)
                break
            except StillRunning:
                done = len(PairStore(out).completed_shards()) if out.is_dir() else 0
                update_progress_artifact(artifact, progress=100.0 * min(done, n_shards) / n_shards)
    update_progress_artifact(artifact, progress=100.0)
    return result


@task(name="segmentation-arm", task_run_name="{arm}-{ctx.cfg.generator.model}-seed{seed}-n{n_real}", **TASK,
      **RESUMABLE)
def seg_arm_task(ctx, arm: str, seed: int, n_real: int, pair_dirs: list[Path]):
    _stage_setup(ctx.cfg)
    with _progress_artifact(f"{arm} arm, seed {seed}, n_real {n_real}: steps of the current phase out of its "
                            "cap (a phase usually stops earlier, at its validation plateau)"):
        return stages.stage_seg_arm(ctx, arm, seed, n_real, pair_dirs)


@task(name="filter-pairs", **TASK, **RESUMABLE)
def filter_task(ctx, pair_dir: Path, judge_arm_dir: Path):
    _stage_setup(ctx.cfg)
    return stages.stage_filter(ctx, pair_dir, judge_arm_dir)


@task(name="quality", task_run_name="quality-{source}", **TASK)
def quality_task(ctx, source: str, generator_dir: Path, pair_dir: Path, segmenter: Path):
    _stage_setup(ctx.cfg)
    return stages.stage_quality(ctx, generator_dir, pair_dir, segmenter)


@task(name="report", retries=1, **TASK)
def report_task(ctx, arm_dirs: list[Path]) -> Path:
    collect.collect_results(ctx, arm_dirs)
    from pipeline.report.build import build_report

    html, _ = build_report(ctx.run_dir)
    return html


def _record(ctx, name: str, result: tuple[Path, float, bool]) -> Path:
    path, secs, cached = result
    context.record(ctx, name, path, secs, cached)
    get_run_logger().info(f"{name}: {'cached' if cached else f'{secs:.1f}s'} -> {path}")
    return path


def _keep_malloc_default_in_dask_workers() -> None:
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands freed memory
    back to the system at once and every training step faults its tensors' pages in again: on the
    2-core CPU a segmentation training step took 2.2x as long (bench/dask_malloc.py, docs/RESULTS.md).
    The workers here get glibc's adaptive default; the thread limits stay."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
    # the scheduler's and workers' connection chatter is not the user's business: warnings only
    # (the workers are spawned processes and read their logging level from the environment)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)


# Dask's bookkeeping, taken from the training threads on a 2-core CPU (bench/dask_overhead.py,
# docs/RESULTS.md): a statistical profiler in every worker that samples its threads every 10 ms (for
# a dashboard nobody opens), psutil's CPU / memory / disk / network counters in every server every
# 500 ms, and each nanny's memory check on its worker every 100 ms (it guards against memory leaks
# over hours; once a second is as safe for arms that train for tens of minutes).
QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.worker.memory.monitor-interval": "1s",
}


def _quiet_dask_bookkeeping() -> None:
    import dask

    dask.config.set(QUIET_DASK)


def _share_the_temporary_server_with_dask_workers() -> None:
    """Local runs without a Prefect server (``synth-pretrain run`` / ``study``) start a temporary one in
    this process. Spawned Dask workers do not inherit it: each started its own (three uvicorn servers
    and three writers of one SQLite database for a two-worker run, each taking ~2 % of a core and a
    few seconds to start on a busy 2-core machine). Workers get this process's server address instead;
    with a configured server (PREFECT_API_URL, e.g. ``prefect deployment run``) they inherit that."""
    import dask
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("PREFECT_API_URL", None)
    server = SubprocessASGIServer()  # the process's temporary server (a singleton), if it was started
    if not PREFECT_API_URL.value() and server.running:
        environ["PREFECT_API_URL"] = server.api_url
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})


def make_task_runner(cfg: Config):
    """threads (default; one task at a time on CPU, since each stage uses all cores already), a local
    Dask cluster, or an existing Dask scheduler by address."""
    rt = cfg.runtime
    if rt.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        _keep_malloc_default_in_dask_workers()
        if not rt.dask_address:
            _quiet_dask_bookkeeping()
            _share_the_temporary_server_with_dask_workers()
        if not rt.dask_address and rt.dask_workers > 1:
            _one_line_progress_in_dask_workers()
        if rt.dask_address:
            return DaskTaskRunner(address=rt.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": rt.dask_workers, "threads_per_worker": 1, "processes": True,
                            "dashboard_address": None, "host": "127.0.0.1"}
        )
    if rt.max_parallel_tasks > 1:
        # torch's default generator is one per process: threads training side by side draw from it
        # in whatever order they run. Dask workers are processes, each stage seeding its own.
        logging.getLogger("synth_pretrain.flow").warning(f"runtime.max_parallel_tasks={rt.max_parallel_tasks}: tasks in threads share "
                                 "torch's random generator, so results are not bit-reproducible; "
                                 "runtime.task_runner=dask runs them in separate processes")
    return ThreadPoolTaskRunner(max_workers=rt.max_parallel_tasks)


def longest_first(jobs: list[tuple]) -> list[int]:
    """The order to submit the arm jobs ``(arm, method, seed, n_real)`` in: arms that train on
    synthetic data first (two phases, or batches twice as large: 1.2-1.6x a real_only arm's time on
    the 2-core CPU, docs/RESULTS.md sections 13 and 15), then as listed.

    Workers take jobs in submission order. Listed seed by seed, the last long arm started when one
    worker was already done with the short ones and ran alone at the end; longest first (the LPT rule)
    leaves short arms to fill the gaps. Only the order changes: every arm seeds its own random
    streams, so its results do not depend on what ran before it in the same worker."""
    from pipeline.segmentation.arms import ARMS

    return sorted(range(len(jobs)), key=lambda i: (not ARMS[jobs[i][0]].needs_synthetic, i))


@flow(name="synth-pretrain-set", flow_run_name="{set_name}", log_prints=True)
def process_set(set_name: str, config: str = "default", overrides: list[str] | None = None, run_id: str | None = None,
                synthesis: list[str] | None = None) -> str:
    """The whole pipeline for one labeled set; returns its run folder. ``synthesis``: the synthesis
    methods to compare (default: the config's ``generator.model``)."""
    from pipeline.generators.methods import SYNTHESIS_METHODS
    from pipeline.segmentation.arms import ARMS, REFERENCE_ARM
    from pipeline.segmentation.dataset import crop_size_advice

    cfg = load_config(config, [*(overrides or []), f"data.set={set_name}"])
    methods = list(dict.fromkeys(synthesis or [cfg.generator.model]))
    ctx = prepare_task(cfg, run_id)
    seg = cfg.segmentation
    advice = crop_size_advice(ctx.real_train_masks(max(seg.n_real)), seg.image_size)
    if advice:
        get_run_logger().warning(f"{ctx.set_name}: {advice}")
    context.write_run_manifest(ctx, methods, notices=[advice] if advice else [])
    get_run_logger().info(f"run folder {ctx.run_dir}; the arms finished so far, while it runs: "
                          f"synth-pretrain report {ctx.run_dir} --partial")
    synth_arms = [a for a in seg.arms if ARMS[a].needs_synthetic]
    counts = stages.source_counts(cfg)

    # every synthesis first, then the arms: generator training never shares the cores with an arm
    pairs: dict[tuple[int, str], list[Path]] = {}
    quality_inputs = {}
    judged = cfg.generator.patience > 0 and any(SYNTHESIS_METHODS[m].trained for m in methods)
    for n_real in sorted(seg.n_real) if synth_arms else []:
        bank_dir = _record(ctx, "shape bank", shape_bank_task(ctx, n_real))
        mask_futs = {src: masks_task.submit(ctx, src, bank_dir, n, n_real) for src, n in counts.items()}
        mask_dirs = [_record(ctx, f"masks ({src})", f.result()) for src, f in mask_futs.items()]
        judge = None
        if judged:
            # trained generators stop at a fidelity plateau judged by the real-only model at the lowest
            # seed (the filter judge too; cached for the arms below). Called, not submitted: it runs
            # after the masks and before generator training, beside neither
            judge = _record(ctx, "generator judge (real_only)",
                            seg_arm_task(ctx, REFERENCE_ARM, min(seg.seeds), n_real, []))
        for method in methods:  # one after another: generator training uses every core
            mctx = ctx.with_synthesis(method)
            method_judge = judge if SYNTHESIS_METHODS[method].trained else None
            gen_dir = _record(ctx, f"train generator ({method})", generator_task(mctx, n_real, method_judge))
            inputs = mask_dirs if SYNTHESIS_METHODS[method].uses_masks else [None]
            gen_futs = generate_task.map(mctx, gen_dir, inputs)
            pairs[n_real, method] = [_record(ctx, f"generate pairs ({method})", f.result()) for f in gen_futs]
            labels = list(counts) if SYNTHESIS_METHODS[method].uses_masks else ["real"]
            quality_inputs[method] = (mctx, gen_dir, pairs[n_real, method], labels)  # the last n_real: the largest
    if pairs:
        collect.write_samples(ctx, [d for m in methods for d in pairs[max(seg.n_real), m]])
    if pairs and stages.filtering_on(cfg):
        # the judge of the synthetic pairs is the real-only model at the lowest seed (computed once,
        # reused by the arms below); every arm then trains on the filtered pairs
        for n_real in sorted(seg.n_real):
            judge = _record(ctx, "filter judge (real_only)", seg_arm_task(ctx, REFERENCE_ARM, min(seg.seeds), n_real, []))
            for method in methods:
                mctx = ctx.with_synthesis(method)
                pairs[n_real, method] = [_record(ctx, f"filter pairs ({method})", filter_task(mctx, p, judge))
                                         for p in pairs[n_real, method]]

    jobs = stages.arm_jobs(cfg, methods)
    futures = {}
    for i in longest_first(jobs):
        arm, method, seed, n_real = jobs[i]
        futures[i] = (seg_arm_task.submit(ctx, arm, seed, n_real, []) if method is None else
                      seg_arm_task.submit(ctx.with_synthesis(method), arm, seed, n_real, pairs[n_real, method]))
    # each arm is recorded in stages.json as it finishes, so that `synth-pretrain report --partial`
    # can show the finished ones while the run goes on; a failed arm fails the run once every other
    # arm has finished (and sits in the cache for the next call)
    index = {id(f): i for i, f in futures.items()}
    arm_dirs: list[Path | None] = [None] * len(jobs)
    failed: dict[int, BaseException] = {}
    for f in as_completed(list(futures.values())):
        i = index[id(f)]
        arm, method = jobs[i][:2]
        try:
            arm_dirs[i] = _record(ctx, f"segmentation {arm}" + (f" ({method})" if method else ""), f.result())
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other arms
            failed[i] = e
    if failed:
        raise failed[min(failed)]

    segmenter = collect.reference_segmenter(arm_dirs)
    if cfg.quality.enabled and segmenter is not None and quality_inputs:
        q_dirs = {}
        for method, (mctx, gen_dir, pair_dirs, labels) in quality_inputs.items():
            futs = {src: quality_task.submit(mctx, src, gen_dir, p, segmenter) for src, p in zip(labels, pair_dirs)}
            for src, f in futs.items():
                name = src if len(methods) == 1 else f"{method}, {src}"
                q_dirs[name] = _record(ctx, f"quality ({name})", f.result())
        collect.collect_quality(ctx, q_dirs)

    html = report_task(ctx, arm_dirs)
    _publish(ctx, html)
    return str(ctx.run_dir)


def report_markdown(run_dir: Path, html: Path) -> str:
    """The report artifact: report.md (verdicts and the summary table) and the HTML report's path
    as text. Not a link: browsers block file:// links from an http page such as the Prefect UI."""
    md = (run_dir / "report.md").read_text()
    return f"{md}\n\n**Full report** (on the machine that ran the flow): `{html.resolve()}`\n"


def _publish(ctx, html: Path) -> None:
    """Prefect UI artifacts: the report summary with its table, and the metrics per arm and seed."""
    import pandas as pd

    key = "".join(c if c.isalnum() else "-" for c in ctx.set_name.lower())
    create_markdown_artifact(report_markdown(ctx.run_dir, html), key=f"report-{key}",
                             description=f"synth-pretrain report for {ctx.set_name}")
    table = pd.read_csv(ctx.run_dir / "results.csv").round(4)
    create_table_artifact(table.to_dict("records"), key=f"metrics-{key}", description="test metrics per arm and seed")


def list_sets(config: str, overrides: list[str]) -> list[str]:
    cfg = load_config(config, overrides)
    root = Path(cfg.data.root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "images").is_dir()) if root.is_dir() else []


def _files_named(problems: list[str], most: int = 3) -> str:
    """'a.png, b.png +2 more' from validation lines 'path: problem'."""
    files = list(dict.fromkeys(line.split(": ", 1)[0] for line in problems))
    return ", ".join(files[:most]) + (f" +{len(files) - most} more" if len(files) > most else "")


@flow(name="synth-pretrain", log_prints=True)
def synth_pretrain(
    sets: list[str] | None = None,
    config: str = "default",
    overrides: list[str] | None = None,
    only_changed: bool = False,
    run_id: str | None = None,
    synthesis: list[str] | None = None,
    if_busy: str = "wait",
) -> dict[str, Any]:
    """Run the pipeline for each set. ``sets=None``: the config's data.set; ``["*"]``: every set under
    data/. ``only_changed``: skip sets whose files did not change since their last finished run.
    ``synthesis``: several synthesis methods compared in one run (``synth-pretrain study``).
    ``if_busy``: another run of the same set holds its lock (pipeline/runlock.py): ``wait`` for it
    (manual runs) or ``skip`` the set (the watch-data schedule, which comes back later anyway).

    Each set is validated here, once, before anything is written: a bad set logs one line per file
    and does not stop the others. The flow then ends Failed with a one-line message naming the
    failed sets and their files (a returned state, not an exception: no traceback)."""
    from pipeline.runlock import SetBusy, set_lock

    if if_busy not in ("wait", "skip"):
        return Failed(message=f"if_busy={if_busy!r}: use wait or skip")
    overrides = list(overrides or [])
    logger = get_run_logger()
    if sets == ["*"]:
        sets = list_sets(config, overrides)
        logger.info(f"sets under data/: {sets or 'none'}")
    elif not sets:
        sets = [load_config(config, overrides).data.set]
    results: dict[str, Any] = {}
    failed: list[str] = []
    for name in sets:
        cfg = load_config(config, [*overrides, f"data.set={name}"])
        if only_changed and not context.set_changed(cfg):
            logger.info(f"{name}: unchanged since its last finished run; skipped")
            results[name] = "unchanged"
            continue
        problems = context.check_set(cfg)
        if problems:
            for line in problems:
                logger.error(line, extra={USER_ERROR: True})
            failed.append(f"{name} ({_files_named(problems)})")
            results[name] = f"failed: {len(problems)} problem(s)"
            continue
        root = context.set_root(cfg)
        try:
            with set_lock(root, wait=if_busy == "wait", what=f"synth-pretrain {name}",
                          on_wait=lambda who: logger.warning(f"{name}: {root} is in use by {who}; waiting for it "
                                                             "to finish (one run per set at a time)")):
                runner = make_task_runner(cfg)
                state = process_set.with_options(task_runner=runner)(name, config, overrides, run_id, synthesis,
                                                                     return_state=True)
        except SetBusy as busy:
            logger.warning(f"{name}: skipped, {root} is in use by {busy.holder}")
            results[name] = f"skipped: in use by {busy.holder}"
            continue
        if state.is_completed():
            results[name] = state.result()
            context.remember_set(cfg)
        else:
            first = (state.message or "failed").splitlines()[0]
            failed.append(f"{name} ({first})")
            results[name] = f"failed: {state.message}"
            logger.error(f"{name}: {state.message}")
    if failed:
        others = "; the others finished" if len(failed) < len(sets) else ""
        return Failed(message=f"{len(failed)} set(s) failed: {', '.join(failed)}{others}")
    return results
