"""The report of the arms a run has finished so far, while it goes on (`synth-pretrain report RUN
--partial`).

A study on a 2-core CPU trains for hours, and the run lock (one run per set) keeps a second run from
drawing a report meanwhile. The flow records each arm in the run's stages.json as it finishes
(flows/synth_pretrain.py); this module collects those arms the way the end of a run does
(collect.collect_results) into ``RUN/partial/`` and builds the report there, headed by how many of
the run's arms it holds. It only reads the run folder and the stage folders: the run's own files
stay the run's. The quality measures are computed at the end of a run, so a partial report has none.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import context, stages
from ..cache import is_done
from ..config import load_config
from ..data.images import InputError
from ..io import read_json, write_json
from ..run_layout import stage_path
from . import collect
from .build import build_report

PARTIAL = "partial"


def build_partial_report(run_dir: str | Path) -> tuple[Path, Path, int, int]:
    """(report.html, report.md, arms finished, arms the run trains) in ``run_dir/partial/``."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: not a run folder of synth-pretrain (no run.json and config.yaml)")
    cfg = load_config(str(run_dir / "config.yaml"))
    methods = read_json(run_dir / "run.json").get("synthesis") or [cfg.generator.model]
    expected = len(stages.arm_jobs(cfg, methods))
    entries = read_json(run_dir / "stages.json") if (run_dir / "stages.json").is_file() else []
    entries = [{**e, "path": str(stage_path(run_dir, e["path"]).resolve())} for e in entries]
    arms = [Path(e["path"]) for e in entries if str(e.get("stage", "")).startswith("segmentation ")]
    arms = [d for d in dict.fromkeys(arms) if is_done(d)]
    if not arms:
        raise InputError(f"{run_dir}: no arm has finished yet (stages.json lists none); try again later")
    out = run_dir / PARTIAL
    ctx = context.prepare(cfg, run_dir=out)
    write_json(out / "stages.json", entries)  # absolute paths: the stage folders are found from here too
    collect.collect_results(ctx, arms)
    write_json(out / "partial.json", {"arms_finished": len(arms), "arms_expected": expected,
                                      "written": time.time(), "run_dir": str(run_dir)})
    html, md = build_report(out)
    return html, md, len(arms), expected
