"""The fine-tuning learning rate of the `pretrained` arm, picked by a small sweep on validation F1.

Pretrained weights usually want a lower learning rate than training from scratch. This script
pretrains once (seed 0, to the plateau, exactly as the arm does), then fine-tunes from that
checkpoint at each candidate rate (each to its plateau) and prints the best validation object F1,
the steps to the plateau and the wall time per rate. The test images are never used: the choice
is made on validation F1 only, and the config's `segmentation.finetune_lr` is set from it.

    PYTHONPATH=$PWD python bench/finetune_lr.py --set demo --synthetic runs/demo/stages/synthetic/<key> \\
        --rates 1e-3 3e-4 1e-4 --out docs/results/finetune_lr_demo
    # or start from the pretraining a study already ran (same seed and n_real as the study's arm):
    PYTHONPATH=$PWD python bench/finetune_lr.py --set <set> --pretrained runs/<set>/stages/seg_pretrained/<key>/pretrain/best.pt \\
        --rates 1e-3 1e-4 --seed 0 --n-real 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import context  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.io import read_json, write_text  # noqa: E402
from pipeline.segmentation.arms import ArmInputs  # noqa: E402
from pipeline.segmentation.dataset import ConcatPairStore, RealPairsDataset, SyntheticPairsDataset  # noqa: E402
from pipeline.segmentation.postprocess import resolve_min_area  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="demo", help="labeled-set folder, or demo")
    ap.add_argument("--config", default="default")
    ap.add_argument("--synthetic", nargs="+", help="synthetic pair store folder(s) to pretrain on")
    ap.add_argument("--pretrained", help="a finished pretraining phase's best.pt (e.g. a study arm's "
                    "stages/seg_pretrained/<key>/pretrain/best.pt): fine-tune from it instead of pretraining")
    ap.add_argument("--rates", nargs="+", type=float, default=[1e-3, 3e-4, 1e-4])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-real", type=int, default=None)
    ap.add_argument("--work", default="runs/bench_finetune_lr", help="training folders (resumable)")
    ap.add_argument("--out", help="write <out>.json and <out>.md")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, [*args.overrides, f"data.set={args.set}"])
    work = Path(args.work)
    ctx = context.prepare(cfg, run_dir=work / "run")
    n_real = args.n_real or cfg.segmentation.n_real[0]
    real = ctx.real_train_pairs(n_real)
    cfg = resolve_min_area(cfg, [m for _, m in real])
    seg = cfg.segmentation

    def real_ds():
        return RealPairsDataset(real, seg.image_size, seg.target, seed=args.seed, foreground=seg.foreground_crops)

    def synth_ds(stream: int):
        return SyntheticPairsDataset(ConcatPairStore([Path(p) for p in args.synthetic]), ctx.channels, seg.image_size,
                                     seg.target, True, args.seed, foreground=seg.foreground_crops, stream=stream)

    inputs = ArmInputs(cfg, real_ds, synth_ds, ctx.pairs("val"), args.seed, work, cfg.runtime.progress)
    t0 = time.perf_counter()
    if args.pretrained:
        pre = Path(args.pretrained)
        if not (pre.is_file() and (pre.parent / "metrics.json").is_file()):
            print(f"{pre}: not a finished pretraining phase (best.pt with metrics.json beside it)", file=sys.stderr)
            return 2
    elif args.synthetic:
        _, pre = inputs.train("pretrain", synth_ds(0), seg.pretrain_max_steps, seg.lr)
    else:
        print("give --synthetic (pretrain here) or --pretrained (start from a finished pretraining)", file=sys.stderr)
        return 2
    pre_m = read_json(pre.parent / "metrics.json")
    print(f"pretrain: {pre_m['steps_run']} steps ({pre_m['stop_reason']}), val F1 {pre_m['best_val_f1']:.3f}, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for lr in args.rates:
        _, best = inputs.train(f"finetune_lr{lr:g}", real_ds(), seg.max_steps, lr, init_from=pre)
        m = read_json(best.parent / "metrics.json")
        rows.append({"finetune_lr": lr, "best_val_f1": m["best_val_f1"], "best_step": m["best_step"],
                     "steps_run": m["steps_run"], "stop_reason": m["stop_reason"], "seconds": round(m["time_s"], 1)})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["best_val_f1"])
    lines = [f"Set `{args.set}`, config `{args.config}` {' '.join(args.overrides)}, seed {args.seed}, {len(real)} real "
             f"pairs; pretraining: {pre_m['steps_run']} steps ({pre_m['stop_reason']}), validation F1 "
             f"{pre_m['best_val_f1'] * 100:.1f} %.", "",
             "| finetune_lr | best validation F1 (%) | at step | steps run | stopped on | seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['finetune_lr']:g} | {r['best_val_f1'] * 100:.1f} | {r['best_step']} | {r['steps_run']} | "
              f"{r['stop_reason']} | {r['seconds']:.0f} |" for r in rows]
    lines += ["", f"Best on validation: finetune_lr = {best['finetune_lr']:g}."]
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        write_text(out.with_suffix(".json"), json.dumps({"pretrain": pre_m, "rates": rows}, indent=1))
        write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
