"""Re-tune finished arms' post-processing with another rule and see what it does to the verdicts.

Nothing is retrained: each arm's best checkpoint (its metrics.json) predicts the validation and test
images of its run again; the post-processing is tuned on validation twice - with the grids as given
(``evaluation.grid_extensions=0``, the rule before) and with the grids grown past an edge that holds
the best F1 (the config's ``grid_extensions``) - and each choice scores the test images. The
verdicts (ΔF1 against real_only, paired by seed, the run's bootstrap) are then recomputed both ways.

    PYTHONPATH=$PWD python bench/postprocess_replay.py runs/<set>/<run A> [runs/<set>/<run B> ...] \
        [--out replay.csv] [-- section.key=value ...]

An arm folder used by several runs is scored once. The checkpoint selection during training (which
uses the default post-processing) is what it was; only the tuning after it changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="one row per arm and rule (csv)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, overrides = ap.parse_args(argv[:cut]), argv[cut + 1 :]

    import pandas as pd
    import torch

    from pipeline import context
    from pipeline.config import load_config
    from pipeline.device import configure, pick_device
    from pipeline.evaluation.metrics import evaluate_instances
    from pipeline.evaluation.verdict import verdicts
    from pipeline.io import read_json
    from pipeline.report.compare import run_arms
    from pipeline.run_layout import stage_path
    from pipeline.segmentation.postprocess import instances_from_probs, resolve_min_area, tune_postprocess
    from pipeline.segmentation.training import load_segmentation_model, predict_probabilities

    scored: dict[str, dict] = {}  # arm folder -> {rule: (row, per_image)}
    rows = []
    for run in args.runs:
        cfg = load_config(run / "config.yaml", ["runtime.runs_dir=/tmp/postprocess_replay", *overrides])
        configure(cfg.runtime)
        device = pick_device(cfg.runtime.device)
        ctx = context.prepare(cfg, run_id="replay")
        val, test, test_stems = ctx.pairs("val"), ctx.pairs("test"), ctx.splits["test"]
        arms, _ = run_arms(run)
        per_rule = {"fixed grid": ({}, []), "grown grid": ({}, [])}
        for _, a in arms.iterrows():
            folder = Path(a.stage_dir)
            m = read_json(folder / "metrics.json")
            if str(folder) not in scored:
                t0 = time.perf_counter()
                model, meta = load_segmentation_model(stage_path(run, m["checkpoint"]), device)
                kind = meta["target"]
                real = ctx.report_pairs(ctx.real_train_stems(int(m["n_real"])))
                ev = resolve_min_area(cfg, [mk for _, mk in real]).evaluation
                with torch.inference_mode():
                    vp = [predict_probabilities(model, im, device, cfg.segmentation.amp) for im, _ in val]
                    tp = [predict_probabilities(model, im, device, cfg.segmentation.amp) for im, _ in test]
                out = {}
                for rule, extensions in (("fixed grid", 0), ("grown grid", ev.grid_extensions)):
                    e = ev.model_copy(update={"grid_extensions": extensions})
                    best, grid = tune_postprocess(vp, [mk for _, mk in val], kind, e, int(ev.min_object_area))
                    pp = (best["fg_threshold"], best["boundary_threshold"], best["min_object_area"])
                    preds = [instances_from_probs(p, kind, *pp) for p in tp]
                    summary, per_image = evaluate_instances(preds, [mk for _, mk in test], e, names=test_stems)
                    out[rule] = ({"arm": m["arm"], "seed": int(m["seed"]), "n_real": int(m["n_real"]), "rule": rule,
                                  "fg_threshold": pp[0], "boundary_threshold": pp[1], "min_object_area": pp[2],
                                  "val_f1": best["val_f1"], "combinations": len(grid), "f1": summary["f1"],
                                  "precision": summary["precision"], "recall": summary["recall"],
                                  "n_pred": summary.get("n_pred"), "recorded_f1": m["f1"],
                                  "hit_cap": bool(m.get("hit_cap", False)), "folder": folder.name}, per_image)
                scored[str(folder)] = out
                r = out["grown grid"][0]
                print(f"{m['arm']:<26} seed {m['seed']}: test F1 {out['fixed grid'][0]['f1']:.3f} -> {r['f1']:.3f} "
                      f"(recorded {m['f1']:.3f}); area {out['fixed grid'][0]['min_object_area']} -> {r['min_object_area']}, "
                      f"fg {out['fixed grid'][0]['fg_threshold']} -> {r['fg_threshold']}, boundary "
                      f"{out['fixed grid'][0]['boundary_threshold']} -> {r['boundary_threshold']} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            for rule, (row, per_image) in scored[str(folder)].items():
                table, images = per_rule[rule]
                i = len(images)
                images.append(per_image)
                table[i] = row
        for rule, (table, images) in per_rule.items():
            frame = pd.DataFrame([{**r, "row_id": i} for i, r in table.items()])
            found, _ = verdicts(frame, dict(enumerate(images)), cfg.evaluation.bootstrap, cfg.evaluation.confidence)
            for c in found:
                print(f"{run.name} [{rule}] {c.word}: {c.sentence}")
            rows += [{**r, "run": run.name} for r in table.values()]
    if args.out:
        pd.DataFrame(rows).drop_duplicates(["folder", "rule"]).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
