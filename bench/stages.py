"""Where a segmentation arm spends its time, before and after a change, measured in the same run.

Segmentation arms are ~75 % of the default flow (docs/RESULTS.md, section 5). An arm is three kinds
of work, timed here separately on the real splits of a set:

* ``train``    ``--steps`` training steps on the real training pairs (no validation inside);
* ``validate`` one model-selection pass: whole-image inference + post-processing + matching on the
               validation pairs (an arm does one every ``eval_every`` steps);
* ``test``     the final evaluation on the test pairs.

Each variant is a list of config overrides (``before`` and ``after``); variants alternate inside
every repeat so both see the same machine state, and the table reports medians and the after/before
ratio. From the medians it also derives the seconds the arms of one seed would spend at given step
counts (``--arm-steps``: the steps each phase ran to its plateau in a finished run, e.g. the
run's results.csv), one validation pass every ``eval_every`` steps.

    PYTHONPATH=$PWD python bench/stages.py --set demo --repeats 3 \\
        --before segmentation.channels_last=false --after segmentation.channels_last=true
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import context  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.evaluation.metrics import evaluate_instances  # noqa: E402
from pipeline.segmentation.dataset import RealPairsDataset  # noqa: E402
from pipeline.segmentation.postprocess import resolve_min_area  # noqa: E402
from pipeline.segmentation.training import load_segmentation_model, predict_instances, train_segmentation  # noqa: E402

PHASES = ("train", "validate", "test")


def time_variant(cfg, ctx, steps: int, work: Path, seed: int = 0) -> dict[str, float]:
    real = ctx.report_pairs(ctx.real_train_stems(cfg.data.n_train))
    cfg = resolve_min_area(cfg, [m for _, m in real])
    seg = cfg.segmentation
    val, test = ctx.pairs("val"), ctx.pairs("test")
    ds = RealPairsDataset(real, seg.image_size, seg.target, augment=True, seed=seed)
    t = time.perf_counter()
    ckpt = train_segmentation(cfg, ds, [], work, steps=steps, lr=seg.finetune_lr, seed=seed, progress=False)
    out = {"train": time.perf_counter() - t}
    model, _ = load_segmentation_model(ckpt, channels_last=seg.channels_last)
    for phase, pairs in (("validate", val), ("test", test)):
        t = time.perf_counter()
        preds = predict_instances(model, [img for img, _ in pairs], cfg)
        evaluate_instances(preds, [m for _, m in pairs], cfg.evaluation)
        out[phase] = time.perf_counter() - t
    return out


def flow_seconds(cfg, per_step: float, validate: float, test: float, phase_steps: list[int]) -> float:
    """Seconds for phases of the given step counts (each to its plateau), from phase medians: every
    phase validates every ``eval_every`` steps; every arm (taken as one per two phases at most) tests once."""
    every = cfg.segmentation.eval_every
    passes = lambda n: -(-n // every)  # noqa: E731  (validation every `every` steps and at the end)
    return sum(n * per_step + passes(n) * validate for n in phase_steps) + len(phase_steps) * test


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="demo", help="labeled-set folder, or demo")
    ap.add_argument("--config", default="default")
    ap.add_argument("--steps", type=int, default=100, help="training steps timed per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", nargs="*", default=["segmentation.channels_last=false"])
    ap.add_argument("--after", nargs="*", default=["segmentation.channels_last=true"])
    ap.add_argument("--arm-steps", nargs="*", type=int, default=[1000, 1000, 500, 1000],
                    help="steps of each phase of one seed (real_only, pretrain, finetune, joint) for the derived time")
    ap.add_argument("--out", help="write <out>.json and <out>.md")
    ap.add_argument("overrides", nargs="*", help="section.key=value for both variants")
    args = ap.parse_args(argv)

    variants = {"before": args.before, "after": args.after}
    times: dict[str, dict[str, list[float]]] = {v: {p: [] for p in PHASES} for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        common = [*args.overrides, f"data.set={args.set}", "runtime.progress=false", f"runtime.runs_dir={tmp}/runs"]
        cfgs = {v: load_config(args.config, [*common, *o]) for v, o in variants.items()}
        ctx = context.prepare(cfgs["before"], run_id="bench-stages")
        for v in variants:  # untimed warm-up: imports, lazy library init, the image cache
            ctx.cfg = cfgs[v]
            time_variant(cfgs[v], ctx, 2, Path(tmp) / f"warm-{v}")
        for r in range(args.repeats):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for v in order:
                ctx.cfg = cfgs[v]
                got = time_variant(cfgs[v], ctx, args.steps, Path(tmp) / f"{v}{r}")
                for p in PHASES:
                    times[v][p].append(got[p])
                print(f"repeat {r} {v:6s} " + "  ".join(f"{p} {got[p]:6.1f}s" for p in PHASES), flush=True)

    med = {v: {p: statistics.median(times[v][p]) for p in PHASES} for v in variants}
    cfg = cfgs["before"]
    flow = {v: flow_seconds(cfg, med[v]["train"] / args.steps, med[v]["validate"], med[v]["test"], args.arm_steps)
            for v in variants}
    sizes = {k: len(ctx.splits[k]) for k in ("train", "val", "test")}
    lines = [
        f"Set `{args.set}` ({sizes['val']} validation, {sizes['test']} test images), config `{args.config}` "
        f"{' '.join(args.overrides)}; {args.steps} training steps; medians of {args.repeats} alternating repeats; "
        f"torch threads {torch.get_num_threads()}.",
        "",
        f"before: `{' '.join(args.before)}`; after: `{' '.join(args.after)}`",
        "",
        "| phase | before (s) | after (s) | after / before |",
        "|---|---|---|---|",
    ]
    for p in PHASES:
        lines.append(f"| {p} | {med['before'][p]:.2f} | {med['after'][p]:.2f} | {med['after'][p] / med['before'][p]:.2f} |")
    lines.append(f"| one seed's phases {args.arm_steps} steps (derived) | {flow['before']:.0f} | {flow['after']:.0f} | "
                 f"{flow['after'] / flow['before']:.2f} |")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
        out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "splits": sizes, "times": times,
                                                        "medians": med, "flow_arms_s": flow}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
