"""Compare finished arm folders directly (test F1, steps, paired ΔF1 with its bootstrap interval).

The flow's verdict compares the arms of one run. This reads any finished arm folders (stage folders
of a run, or ``train-seg`` outputs) so that an arm can be set against a reference trained another
way, e.g. a real-only model trained with the plateau rule off:

    PYTHONPATH=$PWD python bench/compare_arms.py \
        --ref real_only=runs/<set>/stages/seg_real_only/<key> \
        pretrained=runs/<set>/stages/seg_pretrained/<key> joint=runs/<set>/stages/seg_joint/<key>

Each folder needs ``metrics.json`` and ``per_image.csv`` (same test images). ΔF1 and its 95 %
interval come from ``pipeline.evaluation.verdict.paired_bootstrap`` (test images resampled, the
same draw for both arms), per pair of folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(folder: Path):
    import pandas as pd

    for d in (folder, *[p for p in folder.iterdir() if p.is_dir()]):
        if (d / "metrics.json").is_file() and (d / "per_image.csv").is_file():
            return json.loads((d / "metrics.json").read_text()), pd.read_csv(d / "per_image.csv")
    sys.exit(f"{folder}: no metrics.json + per_image.csv (not a finished arm)")


def phases(m: dict) -> str:
    parts = []
    for phase in ("pretrain", "finetune", "train", "joint"):
        if f"{phase}_steps" in m:
            parts.append(f"{phase} {m[f'{phase}_steps']} ({m.get(f'{phase}_stop', '?')})")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="label=folder of the reference arm")
    ap.add_argument("arms", nargs="+", help="label=folder")
    ap.add_argument("--boot", type=int, default=2000)
    args = ap.parse_args()

    from pipeline.evaluation.verdict import _counts, paired_bootstrap

    ref_label, ref_dir = args.ref.split("=", 1)
    ref_m, ref_pi = load(Path(ref_dir))
    images = [str(s) for s in ref_pi["image"]]
    ref_counts = _counts(ref_pi, images)
    print(f"| arm | seed | steps per phase (stop) | val F1 (tuned) | test F1 | precision | recall | ΔF1 vs {ref_label} (95 % interval) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [(ref_label, ref_m, None)]
    for spec in args.arms:
        label, folder = spec.split("=", 1)
        m, pi = load(Path(folder))
        d, lo, hi = paired_bootstrap([_counts(pi, images)], [ref_counts], args.boot, 0.95)
        rows.append((label, m, (d, lo, hi)))
    for label, m, delta in rows:
        cell = "" if delta is None else f"{100 * delta[0]:+.1f} ({100 * delta[1]:+.1f} to {100 * delta[2]:+.1f})"
        print(f"| {label} | {m.get('seed')} | {phases(m)} | {100 * m.get('val_f1', float('nan')):.1f} | "
              f"{100 * m['f1']:.1f} | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | {cell} |")


if __name__ == "__main__":
    main()
