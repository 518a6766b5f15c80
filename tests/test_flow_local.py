"""The flow run locally: data/ is never written, a set dropped into data/ runs only for itself,
the mapped stages run on a Dask cluster, and a run killed with SIGKILL resumes without corrupt files."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.demo import render_demo_set
from pipeline.data.images import decode

pytestmark = pytest.mark.slow  # whole smoke flows: 1-7 min each on the 2-core CPU
BIN = Path(sys.executable).parent
FAST = ["generator.steps=2", "generator.checkpoint_every=1", "generator.sample_every=2", "segmentation.pretrain_max_steps=2",
        "segmentation.max_steps=2", "segmentation.eval_every=2", "masks.count=16", "generation.count=16"]


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}|{st.st_mode}|{st.st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING")
    env.pop("PREFECT_API_URL", None)
    return env


def _run(tmp_path: Path, *args: str, timeout: float = 400, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "synth-pretrain"), "run", "--config", "smoke", *args], cwd=tmp_path,
                          env={**_env(tmp_path), **env}, capture_output=True, text=True, timeout=timeout)


def _bad_set(data: Path) -> Path:
    bad = data / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    (bad / "images" / "x.png").write_bytes(b"not an image")
    return bad


def test_new_set_in_data_runs_alone_and_data_is_untouched(tmp_path):
    data = tmp_path / "data"
    render_demo_set(data / "plant_a", n_images=20, size=80, seed=1)
    before = _tree_hash(data)
    first = _run(tmp_path, "--set", "*", "--only-changed", *FAST)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "runs" / "plant_a").is_dir()
    quality = json.loads(next((tmp_path / "runs" / "plant_a").glob("*/quality.json")).read_text())
    assert 0.0 <= quality["realism_c2st_accuracy"]["value"] <= 1.0  # the quality stage ran and reached the run

    render_demo_set(data / "plant_b", n_images=20, size=80, seed=2)  # a plant engineer drops a new set
    before_b = _tree_hash(data)
    second = _run(tmp_path, "--set", "*", "--only-changed", *FAST)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "plant_a: unchanged" in second.stdout
    assert list((tmp_path / "runs" / "plant_b").glob("*/report.html"))
    runs_a = [p for p in (tmp_path / "runs" / "plant_a").glob("*/report.html") if not p.parent.is_symlink()]
    assert len(runs_a) == 1  # plant_a did not run again (runs/plant_a/latest points at that run)
    assert _tree_hash(data / "plant_a") == _tree_hash(data / "plant_a")
    assert before != before_b and _tree_hash(data) == before_b  # the pipeline never wrote into data/


def test_bad_set_fails_with_one_line_and_others_finish(tmp_path):
    data = tmp_path / "data"
    render_demo_set(data / "good", n_images=20, size=80, seed=1)
    _bad_set(data)
    # INFO: the stage code's progress lines must reach the run log (they show in the UI the same way)
    r = _run(tmp_path, "--set", "*", *FAST, PREFECT_LOGGING_LEVEL="INFO")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    assert "error: data/bad/images/x.png" in r.stderr
    last = [line for line in r.stderr.splitlines() if line.startswith("error: ")][-1]  # Prefect's INFO lines aside
    assert "set(s) failed: bad" in last and "x.png" in last, last
    assert list((tmp_path / "runs" / "good").glob("*/report.html"))
    assert not (tmp_path / "runs" / "bad").exists()
    assert "train spade: step" in out and "val F1" in out  # generator and segmentation progress


def test_bad_set_alone_is_checked_once_without_traceback(tmp_path):
    """The same one-line-per-file errors as `synth-pretrain validate`, once (no retries of an input
    error), no traceback, exit code 1, the last line naming the file; nothing written."""
    bad = _bad_set(tmp_path / "data")
    r = _run(tmp_path, "--set", "bad", *FAST, timeout=300)
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    validate = subprocess.run([str(BIN / "synth-pretrain"), "validate", "data/bad"], cwd=tmp_path,
                              env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    problem = next(line for line in validate.stderr.splitlines() if "x.png" in line)
    assert (r.stdout + r.stderr).count("x.png: ") == 1 and problem in r.stderr.splitlines()
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 set(s) failed: bad") and "data/bad/images/x.png" in last, last
    assert not (tmp_path / "runs").exists() and sorted(p.name for p in bad.rglob("*")) == ["images", "masks", "x.png"]


def test_second_run_of_a_set_skips_or_waits(tmp_path):
    """One run per set: while another process holds runs/<set>/run.lock, --if-busy skip says so on
    one line and writes no run folder; the default waits, with a log line, and starts nothing."""
    from pipeline.runlock import set_lock

    render_demo_set(tmp_path / "data" / "plant", n_images=20, size=80, seed=1)
    root = tmp_path / "runs" / "plant"
    with set_lock(root, what="the test"):
        skipped = _run(tmp_path, "--set", "plant", "--if-busy", "skip", *FAST, timeout=300)
        assert skipped.returncode == 0, (skipped.stdout + skipped.stderr)[-3000:]
        assert f"plant: skipped: in use by pid {os.getpid()}" in skipped.stdout
        assert sorted(p.name for p in root.iterdir()) == ["run.lock"]

        log = tmp_path / "waiting.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([str(BIN / "synth-pretrain"), "run", "--config", "smoke", "--set", "plant", *FAST],
                                    cwd=tmp_path, env=_env(tmp_path), stdout=err, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            deadline = time.time() + 240
            while "waiting for it to finish" not in log.read_text():
                assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(1)
            time.sleep(3)
            assert proc.poll() is None and sorted(p.name for p in root.iterdir()) == ["run.lock"]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_dask_cluster_runs_the_mapped_arms(tmp_path):
    r = _run(tmp_path, *FAST, "runtime.task_runner=dask", "runtime.dask_workers=2", "segmentation.seeds=[0,1]",
             PREFECT_LOGGING_LEVEL="INFO")
    assert r.returncode == 0, r.stderr[-3000:]
    # the workers report to the run's own temporary server instead of starting one each
    assert (r.stdout + r.stderr).count("Starting temporary server") == 1, r.stderr[-3000:]
    results = list((tmp_path / "runs" / "demo").glob("*/results.csv"))
    assert results
    seed_rows = [line for line in results[0].read_text().strip().splitlines() if line.startswith("seed,")]
    assert len(seed_rows) == 3 * 2  # three arms x two seeds (after the verdict rows)


def _all_outputs_readable(runs: Path) -> None:
    for p in runs.rglob("*"):
        if p.name.endswith(".tmp") or ".tmp." in p.name or not p.is_file():
            continue
        if p.suffix == ".png":
            decode(p)
        elif p.suffix == ".npz":
            with np.load(p) as z:
                [z[k] for k in z.files]
        elif p.suffix == ".pt":
            from pipeline.io import load_torch

            load_torch(p)


def test_kill_9_then_resume(tmp_path):
    args = [*FAST, "generator.steps=20", "generator.checkpoint_every=5"]  # killed after the first checkpoint
    proc = subprocess.Popen([str(BIN / "synth-pretrain"), "run", "--config", "smoke", "--run-id", "r1", *args],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    gen_root = tmp_path / "runs" / "demo" / "stages" / "generator"
    deadline = time.time() + 300
    while not list(gen_root.glob("*/ckpt_*.pt")):  # killed in the middle of generator training
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _all_outputs_readable(tmp_path / "runs")
    again = _run(tmp_path, "--run-id", "r1", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "runs" / "demo" / "r1" / "report.html").is_file()
    _all_outputs_readable(tmp_path / "runs")
