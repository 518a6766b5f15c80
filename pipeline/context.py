"""A run's context: the resolved config, the validated set, its splits, and the run folder.

``prepare`` makes ``runs/<set>/<run-id>/`` with the resolved config (``config.yaml``), the splits
(``splits.json``) and what the set is (``set.json``); every stage gets the :class:`SetContext` it
returns. ``record`` appends each stage's folder and wall time to the run's ``stages.json`` (the
manifest the report reads). The stage cache itself is pipeline/cache.py; the stages are
pipeline/stages.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import done_info, is_done, make_key, package_hash
from .config import Config
from .data.labeled_set import SetReport, load_mask, load_pairs, require_valid
from .data.sets import resolve_set_dir, set_content_hash
from .data.splits import splits_for
from .io import read_json, write_json, write_text


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
    _report: SetReport | None = field(default=None, repr=False, compare=False)

    def stage_dir(self, stage: str, key: str) -> Path:
        return self.root / "stages" / stage / key

    def report(self) -> SetReport:
        """The validated set (validated once per process; every stage checks its input the same way)."""
        if self._report is None:
            c = self.cfg.data
            self._report = require_valid(self.set_dir, c.max_image_pixels, c.max_instances)
        return self._report

    def report_pairs(self, stems: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        return load_pairs(self.report(), stems)

    def pairs(self, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.report_pairs(self.splits[split])

    def real_train_stems(self, n_real: int | None = None) -> list[str]:
        """The first n_real of a fixed shuffle of the train split: every arm and seed sees the same,
        and so do the shape bank, the masks and the generator made for that n_real (None: all)."""
        train = self.splits["train"]
        order = np.random.default_rng(self.cfg.data.split_seed).permutation(len(train))
        n = len(train) if n_real is None else min(n_real, len(train))
        return sorted(train[i] for i in order[:n])

    def real_train_pairs(self, n_real: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.report_pairs(self.real_train_stems(n_real))

    def real_train_masks(self, n_real: int | None = None) -> list[np.ndarray]:
        """The instance masks of :meth:`real_train_pairs`, without decoding the images."""
        pairs = {p.stem: p for p in self.report().pairs}
        return [load_mask(pairs[s]) for s in self.real_train_stems(n_real)]

    def with_synthesis(self, method: str) -> SetContext:
        """The same set and run with ``generator.model = method`` (one synthesis method of a study)."""
        from dataclasses import replace

        if method == self.cfg.generator.model:
            return self
        cfg = self.cfg.model_copy(deep=True)
        cfg.generator.model = method
        return replace(self, cfg=cfg)



def new_run_id(cfg: Config) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.name}"


def set_name(cfg: Config, set_dir: Path) -> str:
    """The set's name under runs/: the folder's name, or ``demo`` for the procedural set."""
    return set_dir.name if cfg.data.set != "demo" else "demo"


def set_root(cfg: Config) -> Path:
    """``runs/<set>``: the set's stage cache and run folders (and its run lock)."""
    return Path(cfg.runtime.runs_dir) / set_name(cfg, resolve_set_dir(cfg))


def check_set(cfg: Config) -> list[str]:
    """Every problem that would stop a run of the set, one line per file (``path: problem``), the
    same lines as ``synth-pretrain validate``; empty when the set can run. A plain function, so the
    flow checks a set once, before anything is written, and never retries an input error."""
    from .data.labeled_set import validate_set
    from .errors import InputError

    try:
        set_dir = resolve_set_dir(cfg)
        report = validate_set(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
        if not report.ok:
            return list(report.errors)
        splits_for(report, cfg.data)
    except InputError as e:
        return str(e).splitlines() or ["invalid input"]
    return []


def prepare(cfg: Config, run_id: str | None = None, run_dir: Path | None = None) -> SetContext:
    """Resolve and validate the set, fix the splits, create the run folder with the resolved config.

    ``run_dir``: a folder of the caller's choosing (per-stage commands' ``--out``) instead of
    ``runs/<set>/<run-id>``; stage folders then live under ``run_dir/stages``."""
    set_dir = resolve_set_dir(cfg)
    report = require_valid(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
    splits = splits_for(report, cfg.data)
    name = set_name(cfg, set_dir)
    root = Path(cfg.runtime.runs_dir) / name if run_dir is None else Path(run_dir)
    run_dir = root / (run_id or new_run_id(cfg)) if run_dir is None else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", cfg.to_yaml())
    write_json(run_dir / "splits.json", splits)
    ctx = SetContext(
        _report=report,
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
            # the report converts object sizes to physical units with these (None / "px": pixels only)
            "pixel_size": report.info.pixel_size,
            "pixel_unit": report.info.pixel_unit,
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



def write_run_manifest(ctx: SetContext, synthesis: list[str] | None = None, notices: list[str] | None = None) -> None:
    """``run.json``: what the run is (set, config, methods, code) and ``notices``, the warnings about
    the set and config that the report repeats under its verdict (a user who never reads the flow's
    log should still see that the training crops are smaller than the objects)."""
    import pipeline

    write_json(
        ctx.run_dir / "run.json",
        {"run_id": ctx.run_dir.name, "set": ctx.set_name, "config": ctx.cfg.name, "version": pipeline.__version__,
         "synthesis": synthesis or [ctx.cfg.generator.model], "code": package_hash(), "started": time.time(),
         "notices": list(notices or [])},
    )
    if (ctx.run_dir / "stages.json").is_file():
        (ctx.run_dir / "stages.json").unlink()


def _last_path(cfg: Config) -> Path:
    """Where the last finished run of this set is remembered: ``runs/<set-name>/last_finished.json``,
    beside the set's runs. Never under the set: ``data.set`` may be an absolute or relative path,
    and the pipeline writes nothing into a user's folder."""
    set_dir = resolve_set_dir(cfg)
    name = set_dir.name if cfg.data.set != "demo" else "demo"
    return Path(cfg.runtime.runs_dir) / name / "last_finished.json"


def _set_identity(cfg: Config) -> dict:
    """What a finished run is remembered by. The resolved path is part of it because two sets of
    the same folder name share ``runs/<set-name>/``."""
    set_dir = resolve_set_dir(cfg)
    return {"set_path": str(set_dir.resolve()), "set_hash": set_content_hash(set_dir),
            "config": make_key(cfg.model_dump(mode="json"))}


def set_changed(cfg: Config) -> bool:
    """True unless the set's files and the config equal those of its last finished run."""
    f = _last_path(cfg)
    if not f.is_file():
        return True
    last = read_json(f)
    return any(last.get(k) != v for k, v in _set_identity(cfg).items())


def remember_set(cfg: Config) -> None:
    write_json(_last_path(cfg), {**_set_identity(cfg), "time": time.time()})
