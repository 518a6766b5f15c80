"""The product as users run it: a real Prefect server on loopback, `synth-pretrain serve`, and
`prefect deployment run synth-pretrain/default` with the smoke config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real Prefect server + a deployment run: ~2.5 min on the 2-core CPU
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture()
def prefect_env(tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/health", 120)
        yield env, tmp_path
    finally:
        _stop(server)


def test_deployment_run_on_real_server(prefect_env):
    env, work = prefect_env
    (work / "data").mkdir()
    serve = subprocess.Popen(
        [str(BIN / "synth-pretrain"), "serve", "--config", "smoke", "--watch-minutes", "0"],
        env=env, cwd=work, stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:  # the deployment exists once serve has registered it
            r = subprocess.run([str(BIN / "prefect"), "deployment", "inspect", "synth-pretrain/default"],
                               env=env, cwd=work, capture_output=True, text=True)
            if r.returncode == 0:
                break
            assert time.time() < deadline, f"deployment never registered:\n{(work / 'serve.log').read_text()[-3000:]}"
            time.sleep(2)
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "synth-pretrain/default", "--watch",
             "--watch-timeout", "400"],
            env=env, cwd=work, capture_output=True, text=True, timeout=460,
        )
        log = (work / "serve.log").read_text()
        assert run.returncode == 0, f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}\n{log[-4000:]}"
        assert "Completed" in run.stdout + run.stderr
        reports = list((work / "runs").glob("demo/*/report.html"))
        assert reports, f"no report written:\n{log[-3000:]}"
        run_dir = reports[0].parent
        rows = (run_dir / "results.csv").read_text().strip().splitlines()
        assert len(rows) >= 4  # header + the three arms of the smoke config's one seed
        assert json.loads((run_dir / "set.json").read_text())["procedural"] is True
    finally:
        _stop(serve)
