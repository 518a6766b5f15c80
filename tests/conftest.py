"""Shared fixtures. Tests that need ../shared/datasets skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def pytest_addoption(parser):
    # Every test runs by default (CI and the README's command run the whole suite); the quick loop
    # deselects the slow ones with `-m "not slow"`. --runslow used to be needed for them: it is
    # still accepted so old command lines keep working, and does nothing.
    parser.addoption("--runslow", action="store_true", default=False, help="deprecated, no effect: slow tests always run")


@pytest.fixture(scope="session")
def emps_dir() -> Path:
    d = SHARED_DATASETS / "emps_sem_particles"
    if not d.is_dir():
        pytest.skip("../shared/datasets/emps_sem_particles not present")
    return d


@pytest.fixture(scope="session")
def tiles_dir() -> Path:
    d = SHARED_DATASETS / "magnetic_tile_defects"
    if not d.is_dir():
        pytest.skip("../shared/datasets/magnetic_tile_defects not present")
    return d
