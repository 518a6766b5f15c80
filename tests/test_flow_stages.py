"""The flow's stage plumbing without a Prefect server: the generator stage is reproducible, the
placement stage runs on a Dask worker (daemonic, OMP_NUM_THREADS=1), stage progress reaches the run
logger and the progress artifact, the run lock, and the report artifact's text."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import context, stages
from pipeline.config import load_config
from pipeline.io import load_torch
from pipeline.report import collect
from pipeline.segmentation import dataset as seg_dataset

TINY_GEN = ["generator.steps=3", "generator.checkpoint_every=2", "generator.sample_every=3", "runtime.progress=false"]


def _ctx(runs: Path, *overrides: str) -> context.SetContext:
    return context.prepare(load_config("smoke", [f"runtime.runs_dir={runs}", *overrides]), "r")


def _weights(final: Path) -> dict[str, torch.Tensor]:
    state = load_torch(final)
    out = {}
    for part in ("model", "ema"):
        for k, v in (state.get(part) or {}).items():
            if isinstance(v, torch.Tensor):
                out[f"{part}.{k}"] = v
    assert out, f"no weights in {final}: {sorted(state)}"
    return out


def test_generator_stage_is_reproducible(tmp_path):
    """Same config -> the same generator weights, tensor by tensor, even when something else used the
    process's random generators in between (each stage seeds its own)."""
    finals = []
    for name in ("a", "b"):
        ctx = _ctx(tmp_path / name, *TINY_GEN)
        gen_dir, _, cached = stages.stage_train_generator(ctx)
        assert not cached
        finals.append(gen_dir / "final.pt")
        torch.manual_seed(1234), torch.rand(1000), random.random(), np.random.rand(10)  # another stage's draws
    a, b = (_weights(f) for f in finals)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_generator_progress_reaches_the_run_logger_and_artifact(tmp_path, monkeypatch):
    """Stage code logs to `synth_pretrain`; inside a task the flow forwards each line to the run
    logger and moves the task's progress artifact (here both stand-ins: no server needed)."""
    import flows.synth_pretrain as flow

    lines, progress = [], []

    class RunLogger:
        def log(self, level, msg):
            lines.append(msg)

    monkeypatch.setattr(flow, "get_run_logger", lambda: RunLogger())
    monkeypatch.setattr(flow, "update_progress_artifact", lambda artifact, progress: progressed(progress))
    progressed = progress.append
    token = flow._PROGRESS.set("artifact-id")
    try:
        ctx = _ctx(tmp_path, *TINY_GEN)
        stages.stage_train_generator(ctx)
    finally:
        flow._PROGRESS.reset(token)
    steps = [line for line in lines if line.startswith("train spade: step")]
    assert steps and steps[-1].startswith("train spade: step 3/3") and "(checkpoint)" in steps[-1], lines
    assert progress and progress[-1] == 100.0 and progress == sorted(progress)


def test_segmentation_logs_every_evaluation(tmp_path):
    from pipeline.segmentation.training import train_segmentation

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("synth_pretrain.segmentation")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ctx = _ctx(tmp_path, "runtime.progress=false")
        train_segmentation(ctx.cfg, ctx.pairs("train"), ctx.pairs("val"), tmp_path / "seg", steps=4, lr=1e-3,
                           seed=0, progress=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    msgs = [r.getMessage() for r in records]
    assert len(msgs) == 2 and msgs[0].startswith("train seg: step 3/4") and "val F1" in msgs[0], msgs  # eval_every=3
    assert msgs[0].endswith("; improving") or "evaluations without a gain" in msgs[0], msgs  # when it will stop
    # and how long a step takes, so the user can read the outlook's evaluations as minutes
    assert re.match(r"train seg: step 3/4 \(\d+\.\d min, \d+\.\d\d s a step\), loss", msgs[0]), msgs
    assert [r.progress for r in records] == [0.75, 1.0]


def _torch_threads_in_a_stage(cfg) -> tuple[int, bool]:
    import multiprocessing

    import flows.synth_pretrain as flow

    flow._stage_setup(cfg)
    return torch.get_num_threads(), multiprocessing.current_process().daemon


def test_placement_over_500_masks_on_a_dask_worker(tmp_path):
    """masks.count > 500 with masks.workers >= 2 wants a process pool; a Dask worker is a daemonic
    process and may not have children. The masks task falls back to drawing in-process. And torch
    gets the worker's share of the cores, not the nanny's OMP_NUM_THREADS=1."""
    distributed = pytest.importorskip("distributed")
    import flows.synth_pretrain as flow
    from pipeline.data.store import MaskStore

    ctx = _ctx(tmp_path, "masks.workers=2", "masks.count=600", "runtime.progress=false")
    bank_dir, _, _ = stages.stage_shape_bank(ctx)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        out, _, cached = client.submit(flow.masks_task.fn, ctx, "placement", bank_dir, 600, None, pure=False).result()
        threads, daemon = client.submit(_torch_threads_in_a_stage, ctx.cfg, pure=False).result()
    assert not cached and len(MaskStore(out)) == 600
    assert daemon
    cores = len(os.sched_getaffinity(0))
    assert threads == cores, f"torch threads on the only worker: {threads}, cores: {cores}"


def test_set_lock_skips_and_is_released_when_the_holder_dies(tmp_path):
    from pipeline.runlock import SetBusy, set_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pipeline.runlock import set_lock\n"
         "with set_lock(sys.argv[1], what='holder'):\n    print('held', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SetBusy, match=f"pid {holder.pid} on .* since .*holder"):
            with set_lock(tmp_path, wait=False):
                pass
        told = []
        os.kill(holder.pid, signal.SIGKILL)  # a killed run leaves no stale lock
        t0 = time.time()
        with set_lock(tmp_path, wait=True, on_wait=told.append, poll_s=0.1):
            assert time.time() - t0 < 30
    finally:
        holder.kill()
        holder.wait()


def test_report_artifact_shows_the_path_as_text_and_the_table(tmp_path):
    from flows.synth_pretrain import report_markdown

    (tmp_path / "report.md").write_text("# report\n\n| real pairs | arm |\n|---|---|\n| 12 | real_only |\n")
    md = report_markdown(tmp_path, tmp_path / "report.html")
    assert "| 12 | real_only |" in md and f"`{(tmp_path / 'report.html').resolve()}`" in md
    assert "file://" not in md


def test_generator_training_never_overlaps_another_stage(tmp_path, monkeypatch):
    """The flow's order, with the stages stubbed (each sleeps and records when it ran) and four
    parallel task threads allowed: generator training runs alone, never beside mask tasks,
    generation or segmentation arms, for every synthesis method. With the generator plateau on,
    the judge (real_only, lowest seed, same n_real) runs before the generators and is passed to
    the trained ones, and not to copy-paste."""
    from prefect.testing.utilities import prefect_test_harness

    import flows.synth_pretrain as flow

    spans: list[tuple[str, float, float]] = []
    calls: list[tuple] = []

    def stub(kind: str, returns):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            time.sleep(0.3)
            spans.append((kind, t0, time.perf_counter()))
            calls.append((kind, *args))
            return returns(*args), 0.3, False
        return run

    out = tmp_path / "stage"
    monkeypatch.setattr(stages, "stage_shape_bank", stub("shape_bank", lambda *a: out))
    monkeypatch.setattr(stages, "stage_masks", stub("masks", lambda *a: out))
    monkeypatch.setattr(stages, "stage_train_generator", stub("generator", lambda *a: out))
    monkeypatch.setattr(stages, "stage_generate", stub("generate", lambda *a: out))
    monkeypatch.setattr(stages, "stage_seg_arm",
                        stub("arm", lambda ctx, arm, seed, n_real, _: out / f"{arm}{seed}n{n_real}"))
    recorded = []
    monkeypatch.setattr(context, "record", lambda ctx, stage, *a: recorded.append(stage))
    monkeypatch.setattr(collect, "write_samples", lambda *a: None)
    monkeypatch.setattr(collect, "reference_segmenter", lambda *a: None)
    monkeypatch.setattr(flow, "report_task", lambda ctx, arm_dirs: tmp_path / "report.html")
    monkeypatch.setattr(flow, "_publish", lambda ctx, html: None)
    monkeypatch.setattr(seg_dataset, "crop_size_advice",
                        lambda masks, size: f"objects wider than the {size} px crops ({len(masks)} training masks)")
    overrides = [f"runtime.runs_dir={tmp_path / 'runs'}", "runtime.max_parallel_tasks=4", "runtime.progress=false",
                 "masks.sources={placement: 0.5, segmodel: 0.5}", "segmentation.seeds=[1,0]",
                 "segmentation.n_real=[6,12]", "generator.patience=3"]
    cfg = load_config("smoke", overrides)
    with prefect_test_harness(server_startup_timeout=180):  # a busy 2-core machine starts it slowly
        flow.process_set.with_options(task_runner=flow.make_task_runner(cfg))(
            "demo", "smoke", overrides, "r", ["spade", "copypaste"])
    # the crop-size check's warning (its own unit test: test_seg_training.py) goes into the manifest, for the report
    notices = json.loads((tmp_path / "runs" / "demo" / "r" / "run.json").read_text())["notices"]
    assert notices == ["objects wider than the 64 px crops (12 training masks)"]
    kinds = [k for k, _, _ in spans]
    # 2 judges + per n_real and seed: real_only + 2 synthetic arms x 2 methods
    assert kinds.count("generator") == 4 and kinds.count("masks") == 4 and kinds.count("arm") == 2 + 2 * 2 * 5
    first_generator = kinds.index("generator")
    judges = [c for c in calls[:first_generator] if c[0] == "arm"]
    assert [(c[2], c[3], c[4]) for c in judges] == [("real_only", 0, 6)]  # the lowest seed, before any generator
    trained = {c[1].cfg.generator.model: c[3] for c in calls if c[0] == "generator" and c[2] == 12}
    assert trained == {"spade": out / "real_only0n12", "copypaste": None}
    assert sum(r.startswith("segmentation ") for r in recorded) == 2 * 2 * 5  # every arm, as it finished
    parallel = any(s1 < e2 and s2 < e1 for i, (k1, s1, e1) in enumerate(spans) for k2, s2, e2 in spans[i + 1:])
    assert parallel, "the stub run never ran two tasks at once: the test shows nothing"
    for kind, s, e in spans:
        if kind == "generator":
            beside = [k for k, s2, e2 in spans if (k, s2, e2) != (kind, s, e) and s2 < e and s < e2]
            assert not beside, f"generator training ran beside {beside}"


def test_local_dask_workers_keep_glibc_malloc_default():
    """Dask's MALLOC_TRIM_THRESHOLD_=65536 made training steps 2.3x slower (bench/dask_malloc.py)."""
    import dask

    import flows.synth_pretrain as flow

    cfg = load_config("smoke", ["runtime.task_runner=dask"])
    flow.make_task_runner(cfg)
    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert str(environ.get("OMP_NUM_THREADS")) == "1"  # one thread per worker process stays


def test_local_dask_cluster_keeps_its_bookkeeping_quiet():
    """Dask's worker profiler (every 10 ms) and monitors take cycles from the training threads on a
    2-core CPU (bench/dask_overhead.py): the flow's local cluster turns them down; a cluster the user
    runs (runtime.dask_address) keeps its own settings."""
    import dask

    import flows.synth_pretrain as flow

    with dask.config.set({"distributed.worker.profile.enabled": True}):
        flow.make_task_runner(load_config("smoke", ["runtime.task_runner=dask", "runtime.dask_address=tcp://127.0.0.1:1"]))
        assert dask.config.get("distributed.worker.profile.enabled") is True
        flow.make_task_runner(load_config("smoke", ["runtime.task_runner=dask"]))
        for key, value in flow.QUIET_DASK.items():
            assert dask.config.get(key) == value


def test_side_by_side_dask_workers_log_lines_instead_of_bars(monkeypatch):
    """Two workers' tqdm bars share one terminal line: with several local workers each task turns its
    bars off (its evaluation log lines carry the progress); with one worker the bar stays."""
    import dask

    import flows.synth_pretrain as flow

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        flow.make_task_runner(load_config("smoke", ["runtime.task_runner=dask", "runtime.dask_workers=1"]))
        assert flow._BARS_OFF not in dask.config.get("distributed.nanny.pre-spawn-environ")
        flow.make_task_runner(load_config("smoke", ["runtime.task_runner=dask", "runtime.dask_workers=2"]))
        environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    import torch

    threads = torch.get_num_threads()  # _stage_setup sets the task's torch threads: restored below
    try:
        cfg = load_config("smoke")
        flow._stage_setup(cfg)
        assert cfg.runtime.progress  # not in a worker: bars as configured
        monkeypatch.setenv(flow._BARS_OFF, environ[flow._BARS_OFF])  # what the nanny gives a worker
        flow._stage_setup(cfg)
        assert not cfg.runtime.progress
    finally:
        torch.set_num_threads(threads)


def test_arms_are_submitted_longest_first_and_that_shortens_two_workers_makespan():
    from flows.synth_pretrain import longest_first

    jobs = [(arm, method, seed, 100) for seed in (0, 1, 2)
            for arm, method in (("real_only", None), ("pretrained", "copypaste"), ("joint", "copypaste"))]
    order = longest_first(jobs)
    assert [jobs[i][0] for i in order] == ["pretrained", "joint"] * 3 + ["real_only"] * 3
    assert [jobs[i][2] for i in order] == [0, 0, 1, 1, 2, 2, 0, 1, 2]  # listed order kept within a kind

    def makespan(durations, workers=2):  # workers take the next job in order when free
        free = [0.0] * workers
        for d in durations:
            free[free.index(min(free))] += d
        return max(free)

    # the demo run's arm times (minutes, session 5): real_only 14, pretrained 23, two seeds
    two_seeds = [(arm, m, seed, 100) for seed in (0, 1) for arm, m in (("real_only", None), ("pretrained", "copypaste"))]
    minutes = {"real_only": 14, "pretrained": 23}
    listed = makespan([minutes[j[0]] for j in two_seeds])
    lpt = makespan([minutes[two_seeds[i][0]] for i in longest_first(two_seeds)])
    assert (listed, lpt) == (46, 37)
