"""The arms of the comparison: one registry, read by the config, the flow, the report and `predict`.

Every arm trains each of its phases to the validation plateau (training.py), on the same splits,
the same ``n_real`` real training pairs (a fixed subset of the train split), the same validation
images for model selection and post-processing, and the same test images:

* ``real_only``   the real pairs from random weights. The reference of every verdict: it is the
                  best model the user could train without synthetic data.
* ``pretrained``  synthetic pairs from random weights (selected on the real validation images),
                  then the real pairs from those weights at ``finetune_lr``.
* ``joint``       every batch holds ``batch_size`` real samples (as many as ``real_only`` sees)
                  plus synthetic samples on top (``joint_real_fraction``), from random weights;
                  optionally (``joint_finetune``) followed by a real-only phase. Real and synthetic
                  samples draw their crops and augmentations from separate random streams.

Adding an arm = a function ``train(ctx: ArmInputs) -> list[(phase, best checkpoint)]`` and one
:data:`ARMS` line. This module imports nothing heavy, so the config can validate arm names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYNTHETIC_STREAM = 1  # random stream of synthetic crops in the joint arm (real crops use stream 0)


@dataclass(frozen=True)
class Arm:
    name: str
    label: str  # for the report
    needs_synthetic: bool
    train: Callable[[ArmInputs], list[tuple[str, Path]]]


@dataclass
class ArmInputs:
    """What an arm's training function gets: datasets are built on demand."""

    cfg: Any
    real: Callable[[], Any]  # -> RealPairsDataset of the n_real pairs
    synthetic: Callable[[int], Any]  # stream -> SyntheticPairsDataset
    val_pairs: list
    seed: int
    out_dir: Path
    progress: bool

    def train(self, phase: str, dataset, steps: int, lr: float, init_from: Path | None = None,
              batch_size: int | None = None) -> tuple[str, Path]:
        from .training import train_segmentation

        best = train_segmentation(self.cfg, dataset, self.val_pairs, self.out_dir / phase, steps=steps, lr=lr,
                                  seed=self.seed, init_from=init_from, progress=self.progress, batch_size=batch_size)
        return phase, best


def _real_only(a: ArmInputs) -> list[tuple[str, Path]]:
    seg = a.cfg.segmentation
    return [a.train("train", a.real(), seg.max_steps, seg.lr)]


def _pretrained(a: ArmInputs) -> list[tuple[str, Path]]:
    seg = a.cfg.segmentation
    pre = a.train("pretrain", a.synthetic(0), seg.pretrain_max_steps, seg.lr)
    return [pre, a.train("finetune", a.real(), seg.max_steps, seg.finetune_lr, init_from=pre[1])]


def joint_batch(batch_size: int, real_fraction: float) -> tuple[int, int]:
    """(real, synthetic) samples per joint batch: the real count is never reduced."""
    return batch_size, max(1, round(batch_size * (1.0 - real_fraction) / real_fraction))


def _joint(a: ArmInputs) -> list[tuple[str, Path]]:
    from .dataset import JointDataset

    seg = a.cfg.segmentation
    n_real, n_syn = joint_batch(seg.batch_size, seg.joint_real_fraction)
    data = JointDataset(a.real(), a.synthetic(SYNTHETIC_STREAM), n_real, n_syn)
    phases = [a.train("joint", data, seg.max_steps, seg.lr, batch_size=n_real + n_syn)]
    if seg.joint_finetune:
        phases.append(a.train("finetune", a.real(), seg.max_steps, seg.finetune_lr, init_from=phases[0][1]))
    return phases


ARMS: dict[str, Arm] = {
    "real_only": Arm("real_only", "real pairs only (to plateau)", False, _real_only),
    "pretrained": Arm("pretrained", "synthetic pretraining, then real fine-tuning", True, _pretrained),
    "joint": Arm("joint", "real + synthetic in every batch", True, _joint),
}
REFERENCE_ARM = "real_only"


def arm_label(arm: str, synthesis: str | None = None) -> str:
    """``real_only``, ``pretrained:spade``: how results name an arm trained with a synthesis method."""
    return arm if not synthesis or not ARMS[arm].needs_synthetic else f"{arm}:{synthesis}"


def run_arm(ctx, arm: str, seed: int, n_real: int, pair_dirs: list[Path], out_dir: Path, synthesis: str | None = None) -> Path:
    """Train one arm for one seed, tune its post-processing on the validation images, evaluate it on
    the test images; writes metrics.json, per_image.csv, postprocess.csv, sizes.npz, predictions.npz."""
    import time

    import numpy as np
    import pandas as pd
    import torch

    from ..device import configure, pick_device
    from ..evaluation.metrics import equivalent_diameters, evaluate_instances, json_safe
    from ..io import atomic_path, read_json, write_json, write_npz
    from .dataset import RealPairsDataset, SyntheticPairsDataset
    from .postprocess import instances_from_probs, resolve_min_area, tune_postprocess
    from .training import load_segmentation_model, predict_probabilities

    t0 = time.perf_counter()
    real = ctx.report_pairs(ctx.real_train_stems(n_real))
    cfg = resolve_min_area(ctx.cfg, [m for _, m in real])
    seg, ev = cfg.segmentation, cfg.evaluation
    val = ctx.pairs("val")

    def real_ds():
        return RealPairsDataset(real, seg.image_size, seg.target, augment=True, seed=seed, foreground=seg.foreground_crops)

    def synth_ds(stream: int):
        from .dataset import ConcatPairStore

        if not pair_dirs:
            raise ValueError(f"arm '{arm}' needs synthetic pairs, but none were generated")
        return SyntheticPairsDataset(ConcatPairStore(pair_dirs), ctx.channels, seg.image_size, seg.target, True, seed,
                                     foreground=seg.foreground_crops, stream=stream)

    inputs = ArmInputs(cfg, real_ds, synth_ds, val, seed, out_dir, cfg.runtime.progress)
    phases = ARMS[arm].train(inputs)
    ckpt = phases[-1][1]
    train_seconds = time.perf_counter() - t0
    phase_info = {}
    for phase, best in phases:
        m = read_json(best.parent / "metrics.json")
        phase_info |= {f"{phase}_steps": m["steps_run"], f"{phase}_best_step": m["best_step"],
                       f"{phase}_stop": m["stop_reason"], f"{phase}_seconds": round(m["time_s"], 1),
                       f"{phase}_validation_s": m.get("validation_s"),  # absent in records older than the fields
                       f"{phase}_precision": m.get("precision")}
    hit_cap = any(phase_info[f"{p}_stop"] == "cap" for p, _ in phases)

    configure(cfg.runtime)
    device = pick_device(cfg.runtime.device)
    model, meta = load_segmentation_model(ckpt, device)
    kind = meta["target"]
    with torch.inference_mode():
        val_probs = [predict_probabilities(model, img, device, seg.amp) for img, _ in val]
    base_area = int(ev.min_object_area)
    default_pp = {"fg_threshold": ev.fg_threshold, "boundary_threshold": ev.boundary_threshold, "min_object_area": base_area}
    grid_rows: list[dict] = []
    if ev.tune_postprocess and val:
        chosen, grid_rows = tune_postprocess(val_probs, [m for _, m in val], kind, ev, base_area)
    else:
        chosen = dict(default_pp)
    val_default, _ = evaluate_instances([instances_from_probs(p, kind, *default_pp.values()) for p in val_probs],
                                        [m for _, m in val], ev) if val else ({"f1": float("nan")}, None)
    pp = (chosen["fg_threshold"], chosen["boundary_threshold"], chosen["min_object_area"])

    test_stems = ctx.splits["test"]
    test = ctx.pairs("test")
    preds = []
    with torch.inference_mode():
        for img, _ in test:
            preds.append(instances_from_probs(predict_probabilities(model, img, device, seg.amp), kind, *pp))
    gts = [m for _, m in test]
    summary, per_image = evaluate_instances(preds, gts, ev, names=test_stems)
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    write_json(out_dir / "metrics.json", json_safe({
        "arm": arm_label(arm, synthesis), "base_arm": arm, "synthesis": synthesis if ARMS[arm].needs_synthetic else "none",
        "seed": seed, "n_real": len(real), **flat,
        "fg_threshold": pp[0], "boundary_threshold": pp[1], "min_object_area": pp[2],
        "val_f1": chosen.get("val_f1", val_default["f1"]), "val_f1_default_postprocess": val_default["f1"],
        "hit_cap": hit_cap, **phase_info, "arm_seconds": round(train_seconds, 1), "checkpoint": str(ckpt),
    }))
    with atomic_path(out_dir / "per_image.csv") as tmp:
        per_image.to_csv(tmp, index=False)
    if grid_rows:
        with atomic_path(out_dir / "postprocess.csv") as tmp:
            pd.DataFrame(grid_rows).to_csv(tmp, index=False)
    write_npz(out_dir / "sizes.npz",
              pred=np.concatenate([equivalent_diameters(p) for p in preds]) if preds else np.zeros(0),
              gt=np.concatenate([equivalent_diameters(g) for g in gts]) if gts else np.zeros(0))
    write_npz(out_dir / "predictions.npz", **{s: p.astype(np.uint16) for s, p in zip(test_stems, preds)})
    return ckpt
