"""The study: does synthetic pretraining beat real-only training on a real set?

Runs the pipeline's stages directly (no Prefect server needed, same content-addressed cache as the
flow) for every synthesis method and arm over seeds, and writes one table.

    python bench/study.py --set ../shared/datasets/emps_sem_particles --config default \
        --synthesis copypaste spade --out docs/study/emps_default

Arms: ``baseline`` and ``long_baseline`` (real only, shared by all synthesis methods), and for each
synthesis method (``copypaste``, ``spade``, ``ugatit``) ``pretrained`` (and ``mixed`` if asked).
Writes ``<out>.csv`` (one row per arm x synthesis x seed x n_real), ``<out>.md`` (the summary) and
``<out>_quality.md`` (synthetic-data quality per synthesis method, against the long baseline's
seed-0 model as the real-trained segmenter).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import stages  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.io import read_json, write_text  # noqa: E402
from pipeline.report.build import summarize  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_synthesis(cfg, ctx) -> tuple[Path, list[Path]]:
    """Masks -> generator -> pairs for one synthesis method; returns the generator folder and the
    pair-store folders."""
    bank, secs, cached = stages.stage_shape_bank(ctx)
    log(f"shape bank {'cached' if cached else f'{secs:.0f}s'}")
    pair_dirs = []
    gen_dir, secs, cached = stages.stage_train_generator(ctx)
    log(f"generator {cfg.generator.model} {'cached' if cached else f'{secs:.0f}s'} {gen_dir}")
    for source, count in stages.source_counts(cfg).items():
        if source == "placement":
            mdir, secs, cached = stages.stage_placement_masks(ctx, bank, count)
        elif source == "progan":
            mdir, secs, cached = stages.stage_progan_masks(ctx, count)
        else:
            mdir, secs, cached = stages.stage_segmodel_masks(ctx, count)
        log(f"masks {source} x{count} {'cached' if cached else f'{secs:.0f}s'}")
        pdir, secs, cached = stages.stage_generate(ctx, gen_dir, mdir)
        log(f"pairs {'cached' if cached else f'{secs:.0f}s'} {pdir}")
        pair_dirs.append(pdir)
    return gen_dir, pair_dirs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", required=True, help="labeled-set folder")
    ap.add_argument("--config", default="default")
    ap.add_argument("--synthesis", nargs="+", default=["copypaste", "spade"], choices=["copypaste", "spade", "ugatit"])
    ap.add_argument("--arms", nargs="+", default=["baseline", "long_baseline", "pretrained"])
    ap.add_argument("--out", required=True, help="output path without suffix (writes .csv and .md)")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_args(argv)

    rows, quality_rows, arm_dirs = [], [], []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    for synthesis in args.synthesis:
        cfg = load_config(args.config, [*args.overrides, f"data.set={args.set}", f"generator.model={synthesis}"])
        ctx = stages.prepare(cfg, run_id=f"study-{cfg.name}")
        needs_synth = [a for a in args.arms if a in ("pretrained", "mixed")]
        gen_dir, pair_dirs = run_synthesis(cfg, ctx) if needs_synth else (None, [])
        seg = cfg.segmentation
        for n_real in seg.n_real:
            for seed in seg.seeds:
                for arm in args.arms:
                    if arm in ("baseline", "long_baseline") and synthesis != args.synthesis[0]:
                        continue  # real-only arms do not depend on the synthesis method
                    d, secs, cached = stages.stage_seg_arm(ctx, arm, seed, n_real, pair_dirs)
                    arm_dirs.append(d)
                    m = read_json(d / "metrics.json")
                    log(f"{arm:14s} {synthesis:9s} seed {seed} n_real {n_real}: F1 {m['f1']:.3f} "
                        f"P {m['precision']:.3f} R {m['recall']:.3f} ({'cached' if cached else f'{secs:.0f}s'})")
                    label = arm if arm in ("baseline", "long_baseline") else f"{arm}:{synthesis}"
                    rows.append({**m, "arm": label, "synthesis": synthesis if label != arm else "none"})
                    pd.DataFrame(rows).to_csv(out.with_suffix(".csv"), index=False)  # partial results survive a kill
        segmenter = stages.reference_segmenter(arm_dirs)
        if pair_dirs and segmenter is not None and cfg.quality.enabled:
            for pdir in pair_dirs:
                qd, secs, cached = stages.stage_quality(ctx, gen_dir, pdir, segmenter)
                q = read_json(qd / "quality.json")
                quality_rows.append({"synthesis": synthesis, **{k: v["value"] for k, v in q.items() if k != "details"}})
                log(f"quality {synthesis}: {quality_rows[-1]} ({'cached' if cached else f'{secs:.0f}s'}) {qd}")
    if quality_rows:
        cols = list(dict.fromkeys(k for r in quality_rows for k in r))
        table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        table += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in quality_rows]
        write_text(out.parent / f"{out.name}_quality.md", "\n".join(table) + "\n")
    frame = pd.DataFrame(rows)
    s = summarize(frame)
    lines = [f"Set `{args.set}`, config `{args.config}` {' '.join(args.overrides)}; "
             f"{time.perf_counter() - t_start:.0f} s wall (cached stages count ~0).", "",
             "| real pairs | arm | seeds | F1@0.5 (%) | precision (%) | recall (%) | ΔF1 vs baseline (points) | seeds above baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in s.iterrows():
        pm = lambda m, sd: f"{m * 100:.1f} ± {sd * 100:.1f}" if pd.notna(sd) else f"{m * 100:.1f}"  # noqa: E731
        diff = "" if r.arm == "baseline" else pm(r.f1_diff_mean, r.f1_diff_std)
        above = "" if r.arm == "baseline" else f"{r.seeds_above_baseline}/{int(r.seeds)}"
        lines.append(f"| {int(r.n_real)} | {r.arm} | {int(r.seeds)} | {pm(r.f1_mean, r.f1_std)} | "
                     f"{pm(r.precision_mean, r.precision_std)} | {pm(r.recall_mean, r.recall_std)} | {diff} | {above} |")
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
