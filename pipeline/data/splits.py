"""The one split function every command uses.

The test images are the set's fixed list when it has one (``set.yaml``'s ``test`` wins over
``data.test_list``, a text file of stems such as a dataset's official split), else a seeded draw;
train and validation are drawn from the rest by ``data.split_seed``. The flow, ``train-seg``,
``train-generator``, ``masks``, ``shape-bank``, ``evaluate`` and ``quality`` all call
:func:`splits_for`, so a per-stage command sees exactly the images the flow sees.
"""

from __future__ import annotations

from pathlib import Path

from .images import InputError
from .labeled_set import SetReport, make_splits


def read_test_list(path: str | None) -> list[str] | None:
    """Stems of a ``data.test_list`` file (relative paths: the working folder, then ``configs/``)."""
    if not path:
        return None
    from ..config import CONFIG_DIR

    p = Path(path)
    if not p.is_file() and (CONFIG_DIR / path).is_file():
        p = CONFIG_DIR / path
    if not p.is_file():
        raise InputError(f"{path}: data.test_list file not found")
    return [line.strip() for line in p.read_text().splitlines() if line.strip() and not line.startswith("#")]


def splits_for(report: SetReport, data_cfg) -> dict[str, list[str]]:
    """{"train", "val", "test"} stems of a validated set under the config's ``data`` section."""
    d = data_cfg
    fixed = report.info.test or read_test_list(d.test_list)
    return make_splits(report.stems, d.n_train, d.n_val, d.n_test, d.split_seed, fixed)
