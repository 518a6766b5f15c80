"""Where a run's files are: the one rule for turning a recorded stage path back into a folder.

Stage paths are recorded (in ``stages.json``, ``metrics.json``, ``results.csv``) relative to the
folder the run was started from. The report, the stage layer and ``predict`` / ``export`` all need
them back from the run folder itself (``runs/<set>/<run-id>`` -> ``runs/<set>/stages/...``), so a
run folder works from any working directory and after being moved. Imports nothing of the package.
"""

from __future__ import annotations

from pathlib import Path


def stage_path(run_dir: Path, recorded: str) -> Path:
    """The folder or file a run recorded as ``recorded``, found from ``run_dir``."""
    p = Path(recorded)
    if p.is_absolute() and p.exists():
        return p
    parts = p.parts
    if "stages" in parts:
        return Path(run_dir).parent.joinpath(*parts[parts.index("stages") :])
    return Path(run_dir).parent / p
