"""The pipeline's stages as plain functions: inputs are paths and small values, outputs are folders.

Each stage's output lives in a content-addressed folder ``runs/<set>/stages/<stage>/<key>/``; the
key hashes everything the stage depends on (the set's files, the stage's config section, the keys of
upstream stages, and the source code of the stage's package). A folder holding ``_done.json`` is a
finished stage and is reused by any later run with the same key; a folder without it is a partial
result that the stage resumes (shards, checkpoints). A run folder ``runs/<set>/<run-id>/`` records
the resolved config, the splits, which stage folders it used and how long each took.

The Prefect flow (flows/synth_pretrain.py) wraps these functions in tasks; ``synth-pretrain run``
without a server goes through the same flow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data.labeled_set import SetReport, load_pairs, make_splits, require_valid
from .data.sets import resolve_set_dir, set_content_hash
from .io import read_json, write_json, write_text

log = logging.getLogger("synth_pretrain")
PACKAGE_ROOT = Path(__file__).resolve().parent
DONE = "_done.json"


@lru_cache(maxsize=None)
def code_hash(*subpaths: str) -> str:
    """Hash of the source files a stage runs, so a code change invalidates its cached outputs."""
    h = hashlib.sha256()
    for sub in subpaths:
        p = PACKAGE_ROOT / sub
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(f.relative_to(PACKAGE_ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def make_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class SetContext:
    """Everything a stage needs to know about the set it works on. Small and picklable."""

    cfg: Config
    set_dir: Path
    set_name: str
    set_hash: str
    channels: int
    splits: dict[str, list[str]]
    root: Path  # runs/<set>
    run_dir: Path  # runs/<set>/<run-id>
    procedural: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def stage_dir(self, stage: str, key: str) -> Path:
        return self.root / "stages" / stage / key

    def report(self) -> SetReport:
        c = self.cfg.data
        return require_valid(self.set_dir, c.max_image_pixels, c.max_instances)

    def pairs(self, split: str, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        stems = self.splits[split]
        return load_pairs(self.report(), stems[:limit] if limit else stems)

    def real_train_stems(self, n_real: int) -> list[str]:
        """The first n_real of a fixed shuffle of the train split: every arm and seed sees the same."""
        train = self.splits["train"]
        order = np.random.default_rng(self.cfg.data.split_seed).permutation(len(train))
        return sorted(train[i] for i in order[: min(n_real, len(train))])


def is_done(d: Path) -> bool:
    return (d / DONE).is_file()


def mark_done(d: Path, seconds: float, **info: Any) -> None:
    write_json(d / DONE, {"seconds": round(seconds, 3), "finished": time.time(), **info})


def done_info(d: Path) -> dict:
    return read_json(d / DONE)


def new_run_id(cfg: Config) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.name}"


def prepare(cfg: Config, run_id: str | None = None) -> SetContext:
    """Resolve and validate the set, fix the splits, create the run folder with the resolved config."""
    set_dir = resolve_set_dir(cfg)
    report = require_valid(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
    d = cfg.data
    splits = make_splits(report.stems, d.n_train, d.n_val, d.n_test, d.split_seed, report.info.test)
    name = set_dir.name if cfg.data.set != "demo" else "demo"
    root = Path(cfg.runtime.runs_dir) / name
    run_dir = root / (run_id or new_run_id(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", cfg.to_yaml())
    write_json(run_dir / "splits.json", splits)
    ctx = SetContext(
        cfg=cfg,
        set_dir=set_dir,
        set_name=name,
        set_hash=set_content_hash(set_dir),
        channels=report.channels,
        splits=splits,
        root=root,
        run_dir=run_dir,
        procedural=report.info.procedural,
    )
    write_json(
        run_dir / "set.json",
        {
            "name": name,
            "path": str(set_dir),
            "procedural": report.info.procedural,
            "display_name": report.info.display_name or name,
            "object_name": report.info.object_name,
            "summary": report.summary(),
            "channels": report.channels,
            "pairs": len(report.pairs),
            "objects": sum(p.n_objects for p in report.pairs),
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "hash": ctx.set_hash,
        },
    )
    return ctx


def record(ctx: SetContext, stage: str, path: Path, seconds: float, cached: bool) -> None:
    """Append a stage's use and wall time to the run's stage log (read by the report)."""
    f = ctx.run_dir / "stages.json"
    entries = read_json(f) if f.is_file() else []
    computed = done_info(path).get("seconds", seconds) if is_done(path) else seconds
    entries.append(
        {"stage": stage, "path": str(path), "seconds": round(seconds, 3), "cached": cached, "compute_seconds": computed}
    )
    write_json(f, entries)
