"""The comparison protocol, fair by construction.

Every arm uses the same splits, the same n_real real training pairs (a fixed subset of the train
split), the same validation images for model selection and the same test images:

* ``baseline``      real pairs only, ``finetune_steps`` steps at ``finetune_lr`` (the real-data recipe,
                    from random weights);
* ``long_baseline`` real pairs only, ``pretrain_steps + finetune_steps`` steps at ``finetune_lr``: it spends
                    the pretraining budget on real data, so a gain of ``pretrained`` over it is not
                    just more steps;
* ``pretrained``    ``pretrain_steps`` on synthetic pairs at ``lr``, then ``finetune_steps`` on the
                    real pairs at ``finetune_lr`` (the fine-tuning budget equals the baseline's);
* ``mixed``         ``pretrain_steps + finetune_steps`` at ``finetune_lr`` on samples alternating real and
                    synthetic.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.store import PairStore
from ..io import write_json, write_npz


class ConcatPairStore:
    """Several pair stores read as one (e.g. placement- and segmodel-mask pairs)."""

    def __init__(self, dirs: list[Path]):
        self.stores = [PairStore(d) for d in dirs]
        self.root = Path(dirs[0]) if dirs else Path(".")
        self.offsets = np.cumsum([0] + [len(s) for s in self.stores])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.stores[k][i - int(self.offsets[k])]


def run_arm(ctx, arm: str, seed: int, n_real: int, pair_dirs: list[Path], out_dir: Path) -> Path:
    from ..evaluation.metrics import equivalent_diameters, evaluate_instances, json_safe
    from .dataset import MixedDataset, RealPairsDataset, SyntheticPairsDataset
    from .training import predict_instances, train_segmentation

    from .postprocess import resolve_min_area

    t0 = time.perf_counter()
    real = ctx.report_pairs(ctx.real_train_stems(n_real))
    cfg = resolve_min_area(ctx.cfg, [m for _, m in real])
    seg = cfg.segmentation
    val = ctx.pairs("val")

    def real_ds():
        return RealPairsDataset(real, seg.image_size, seg.target, augment=True, seed=seed, foreground=seg.foreground_crops)

    def synth_ds():
        if not pair_dirs:
            raise ValueError(f"arm '{arm}' needs synthetic pairs, but none were generated")
        return SyntheticPairsDataset(ConcatPairStore(pair_dirs), ctx.channels, seg.image_size, seg.target, True, seed,
                                     foreground=seg.foreground_crops)

    common = {"val_pairs": val, "seed": seed, "progress": cfg.runtime.progress}
    if arm == "baseline":
        ckpt = train_segmentation(cfg, real_ds(), out_dir=out_dir / "train", steps=seg.finetune_steps, lr=seg.finetune_lr, **common)
    elif arm == "long_baseline":
        ckpt = train_segmentation(cfg, real_ds(), out_dir=out_dir / "train",
                                  steps=seg.pretrain_steps + seg.finetune_steps, lr=seg.finetune_lr, **common)
    elif arm == "pretrained":
        pre = train_segmentation(cfg, synth_ds(), out_dir=out_dir / "pretrain", steps=seg.pretrain_steps, lr=seg.lr, **common)
        ckpt = train_segmentation(cfg, real_ds(), out_dir=out_dir / "finetune", steps=seg.finetune_steps,
                                  lr=seg.finetune_lr, init_from=pre, **common)
    elif arm == "mixed":
        ckpt = train_segmentation(cfg, MixedDataset(real_ds(), synth_ds()), out_dir=out_dir / "train",
                                  steps=seg.pretrain_steps + seg.finetune_steps, lr=seg.finetune_lr, **common)
    else:
        raise ValueError(f"unknown arm '{arm}'")
    train_seconds = time.perf_counter() - t0

    test_stems = ctx.splits["test"]
    test = ctx.pairs("test")
    preds = predict_instances(ckpt, [img for img, _ in test], cfg)
    gts = [m for _, m in test]
    summary, per_image = evaluate_instances(preds, gts, cfg.evaluation, names=test_stems)
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    write_json(out_dir / "metrics.json", json_safe({
        "arm": arm, "seed": seed, "n_real": len(real), **flat, "min_object_area": cfg.evaluation.min_object_area, "train_seconds": round(train_seconds, 1),
        "checkpoint": str(ckpt),
    }))
    from ..io import atomic_path

    with atomic_path(out_dir / "per_image.csv") as tmp:
        per_image.to_csv(tmp, index=False)
    write_npz(out_dir / "sizes.npz",
              pred=np.concatenate([equivalent_diameters(p) for p in preds]) if preds else np.zeros(0),
              gt=np.concatenate([equivalent_diameters(g) for g in gts]) if gts else np.zeros(0))
    write_npz(out_dir / "predictions.npz", **{s: p.astype(np.uint16) for s, p in zip(test_stems, preds)})
    return ckpt
