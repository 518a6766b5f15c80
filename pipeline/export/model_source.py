"""Which checkpoint (and which post-processing settings) a MODEL argument means.

MODEL is either a segmentation checkpoint (``best.pt``) or a run folder ``runs/<set>/<run-id>/``.
For a run folder the default arm is ``best``: the arm with the highest mean *validation* F1 at the
largest ``n_real`` (the test images never choose), its checkpoint of the lowest seed (``best.pt`` of
its last phase: the step with the best validation object F1). The post-processing settings
(thresholds and ``min_object_area``, tuned per arm and seed on the validation images) are the ones
the run evaluated with, so predictions match the run's test numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import Config, load_config
from ..errors import InputError
from ..io import read_json
from ..run_layout import stage_path
from ..segmentation.postprocess import FALLBACK_MIN_AREA

BEST = "best"


@dataclass
class ModelSource:
    checkpoint: Path
    fg_threshold: float
    boundary_threshold: float
    min_object_area: int
    min_area_origin: str  # where min_object_area came from, said to the user
    amp: bool = True
    description: dict = field(default_factory=dict)  # arm, seed, run: recorded next to the outputs
    max_image_pixels: int = 40_000_000  # images above this are refused unread (config data.max_image_pixels)


def _arm_rows(run_dir: Path) -> pd.DataFrame:
    """One row per trained arm x seed x n_real of a run: arm, seed, n_real, checkpoint, min_object_area."""
    if (run_dir / "results.csv").is_file():
        frame = pd.read_csv(run_dir / "results.csv")
        if "row" in frame.columns:
            frame = frame[frame["row"] == "seed"].copy()
        frame["checkpoint"] = [str(stage_path(run_dir, c)) for c in frame["checkpoint"]]
        return frame
    # a run without results.csv (unfinished, or a study run that only records splits): the arm
    # folders of its set that hold test metrics; ambiguity is reported, never guessed
    rows = []
    if (run_dir / "stages.json").is_file():
        dirs = [stage_path(run_dir, e["path"]) for e in read_json(run_dir / "stages.json")
                if e["stage"].startswith("segmentation ")]
    else:
        dirs = sorted((run_dir.parent / "stages").glob("seg_*/*"))
    for d in dirs:
        if (d / "metrics.json").is_file():
            m = read_json(d / "metrics.json")
            rows.append({**m, "checkpoint": str(stage_path(run_dir, m["checkpoint"]))})
    return pd.DataFrame(rows)


def pick_from_run(run_dir: Path, arm: str, seed: int | None) -> tuple[Path, dict]:
    rows = _arm_rows(run_dir)
    if rows.empty or "arm" not in rows:
        raise InputError(f"{run_dir}: no trained segmentation arms found (no results.csv, no seg_* stage folders)")
    if arm == BEST:
        top = rows[rows["n_real"] == rows["n_real"].max()]
        score = "val_f1" if "val_f1" in top and top["val_f1"].notna().any() else "f1"
        arm = str(top.groupby("arm")[score].mean().idxmax())
    mine = rows[rows["arm"] == arm]
    if mine.empty and ":" not in arm:  # 'pretrained' when the run used a single synthesis method
        mine = rows[rows["arm"].astype(str).str.split(":").str[0] == arm]
        if mine["arm"].nunique() > 1:
            raise InputError(f"{run_dir}: several '{arm}' arms ({', '.join(sorted(set(mine['arm'])))}); name one")
    if mine.empty:
        raise InputError(f"{run_dir}: no '{arm}' arm in this run; it has: {', '.join(sorted(set(rows['arm'])))}")
    mine = mine[mine["n_real"] == mine["n_real"].max()]
    seed = int(mine["seed"].min()) if seed is None else seed
    picked = mine[mine["seed"] == seed]
    if picked.empty:
        raise InputError(f"{run_dir}: arm '{arm}' has no seed {seed}; seeds: {sorted(int(s) for s in mine['seed'])}")
    if len(picked) > 1:
        listed = "; ".join(picked["checkpoint"])
        raise InputError(f"{run_dir}: several '{arm}' checkpoints for seed {seed} ({listed}); pass one of them as MODEL")
    row = picked.iloc[0].to_dict()
    ckpt = Path(row["checkpoint"])
    if not ckpt.is_file():
        raise InputError(f"{ckpt}: checkpoint recorded by run {run_dir.name} is missing")
    return ckpt, row


def _metrics_beside(checkpoint: Path) -> dict | None:
    """The arm's metrics.json for a checkpoint inside a stage folder (``<arm>/finetune/best.pt``)."""
    for d in (checkpoint.parent.parent, checkpoint.parent):
        f = d / "metrics.json"
        if f.is_file():
            m = read_json(f)
            if "min_object_area" in m and Path(str(m.get("checkpoint", ""))).name == checkpoint.name:
                return m
    return None


def resolve_model(
    model: Path,
    arm: str = BEST,
    seed: int | None = None,
    config: str | Path = "default",
    min_area: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ModelSource:
    """Checkpoint + post-processing for MODEL (a checkpoint file or a run folder). ``overrides``
    (``section.key=value``) apply to the run's config or to ``config``, e.g. other thresholds."""
    model = Path(model)
    from ..segmentation.arms import ARMS

    if arm != BEST and arm.split(":")[0] not in ARMS:
        raise InputError(f"--arm {arm}: expected best or one of {', '.join(ARMS)} (optionally arm:method)")
    tuned: dict = {}
    if model.is_dir():
        if not (model / "config.yaml").is_file():
            raise InputError(f"{model}: not a run folder (no config.yaml) and not a checkpoint file")
        cfg: Config = load_config(model / "config.yaml", overrides)
        ckpt, row = pick_from_run(model, arm, seed)
        found_area, origin = row.get("min_object_area"), f"run {model.name}"
        tuned = row
        description = {"run": str(model), "arm": row["arm"], "seed": int(row["seed"]), "n_real": int(row["n_real"])}
    elif model.is_file():
        cfg = load_config(config, overrides)
        ckpt = model
        beside = _metrics_beside(model)
        found_area = beside.get("min_object_area") if beside else None
        origin = f"{model.parent.parent.name}/metrics.json" if beside else None
        tuned = beside or {}
        description = {"arm": beside.get("arm"), "seed": beside.get("seed")} if beside else {}
    else:
        raise InputError(f"{model}: no such checkpoint file or run folder")
    ev = cfg.evaluation
    if min_area is not None:
        area, origin = int(min_area), "--min-area"
    elif found_area is not None and str(found_area) != "auto" and not pd.isna(found_area):
        area = int(found_area)
    elif ev.min_object_area != "auto":
        area, origin = int(ev.min_object_area), "config evaluation.min_object_area"
    else:
        area, origin = FALLBACK_MIN_AREA, "fallback (no training masks known; pass --min-area)"
    def setting(name: str) -> float:
        value = tuned.get(name)
        return float(value) if value is not None and not pd.isna(value) else float(getattr(ev, name))

    return ModelSource(
        checkpoint=ckpt,
        fg_threshold=setting("fg_threshold"),
        boundary_threshold=setting("boundary_threshold"),
        min_object_area=area,
        min_area_origin=origin,
        amp=cfg.segmentation.amp,
        description={**description, "checkpoint": str(ckpt)},
        max_image_pixels=cfg.data.max_image_pixels,
    )
