"""Shared fixtures. Tests that need ../shared/datasets skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
