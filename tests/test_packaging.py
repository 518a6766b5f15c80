"""The package as users install it without the source tree: a built wheel must carry the built-in
configs and split lists (``load_config("smoke")``, ``data.test_list``), and the console script must
find them from any folder. Offline: no index, no dependencies fetched (they come from the running
environment through a .pth file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "pipeline", "flows", "configs"]
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _run(args, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, args))}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_wheel_ships_the_configs_and_works_outside_the_repo(tmp_path):
    # building without isolation (offline) needs the build backend here; bdist_wheel is in setuptools >= 70.1
    pytest.importorskip("setuptools", minversion="70.1")
    # build from a copy of the sources, so the build leaves nothing (build/, *.egg-info) in the repo
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(p, src / name)
    assert (src / "pipeline" / "configs").is_symlink()  # the repo layout the test is about
    env = {**os.environ, **OFFLINE}
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", "."], cwd=src, env=env)
    (wheel,) = (tmp_path / "dist").glob("synth_pretrain-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("smoke", "default", "full"):
        assert f"pipeline/configs/{name}.yaml" in names
    assert "pipeline/configs/splits/emps_sem_particles_test.txt" in names

    # a fresh environment holding only the wheel; dependencies are borrowed from the running one
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    site = site.stdout.strip()
    Path(site, "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", py, "install", "--no-deps", "--no-index", wheel], cwd=tmp_path, env=env)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    check = (
        "import pipeline, pipeline.config as c, pipeline.data.splits as s\n"
        "from pathlib import Path\n"
        f"assert Path(pipeline.__file__).is_relative_to({site!r}), pipeline.__file__\n"
        f"assert c.CONFIG_DIR == Path({site!r}).resolve() / 'pipeline' / 'configs', c.CONFIG_DIR\n"
        "cfg = c.load_config('smoke')\n"
        "assert cfg.name == 'smoke'\n"
        "assert len(s.read_test_list('splits/emps_sem_particles_test.txt')) > 10\n"
        "print('ok')\n"
    )
    assert _run([py, "-c", check], cwd=empty, env=clean).stdout.strip().endswith("ok")
    script = venv / "bin" / "synth-pretrain"
    help_text = _run([script, "run", "--config", "smoke", "--help"], cwd=empty, env=clean).stdout
    assert "config overrides" in help_text
    # a built-in config is found (an unknown key is the error, not a missing config), one line, no traceback
    res = subprocess.run([script, "run", "--config", "smoke", "nosuch.key=1"], cwd=empty, env=clean,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "unknown key 'nosuch'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "config not found" not in res.stderr
