"""Benchmark: trained generators at equal CPU time, scored by the same judge (issue 13).

Each method in ``--models`` trains with ``synth-pretrain train-generator --judge ARM`` for
``--minutes`` of wall time (a subprocess, stopped when the time is up; the cap and the plateau rule
are lifted so that only time ends it), one after the other so they never share the cores. The
judge (a finished real-only arm) segments images drawn for validation layouts every
``generator.eval_every`` steps; ``eval.csv`` records that mask fidelity against elapsed seconds.
The table gives the best fidelity reached by several points in time, and the steps taken.

    PYTHONPATH=$PWD python bench/generator_race.py --set /work/shared/datasets/emps_sem_particles \
        --judge runs/emps_sem_particles/stages/seg_real_only/<key> --minutes 10 \
        -- data.test_list=splits/emps_sem_particles_test.txt

Run folders go to ``--work`` (default: a temporary folder); results with the command to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def read_eval(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--judge", required=True, help="a finished real_only arm folder")
    ap.add_argument("--models", nargs="+", default=["spade", "pix2pix"])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--config", default="default")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default="bench/results/generator_race.json")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="generator_race_"))
    budget = args.minutes * 60
    results = {}
    for model in args.models:
        out = work / model
        cmd = [sys.executable, "-m", "pipeline.cli", "train-generator", "--set", args.set, "--model", model,
               "--out", str(out), "--config", args.config, "--judge", args.judge,
               "generator.steps=1000000", "generator.patience=0", "runtime.progress=false", *args.overrides]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        wall = time.perf_counter() - t0
        rows = read_eval(out / "eval.csv")
        results[model] = {"wall_s": wall, "evaluations": rows, "return_code": proc.returncode}
        last = rows[-1] if rows else {}
        print(f"{model}: {len(rows)} evaluations, last at step {int(last.get('step', 0))}, "
              f"{last.get('elapsed_s', 0):.0f} s", flush=True)

    marks = [budget * f for f in (0.25, 0.5, 0.75, 1.0)]
    # the judge segments with its tuned post-processing: its validation F1 with it is the ceiling to read against
    judge_metrics = Path(args.judge) / "metrics.json"
    judge_f1 = json.loads(judge_metrics.read_text()).get("val_f1") if judge_metrics.is_file() else None
    print(f"\nbest mask fidelity F1 reached by (training seconds; {args.minutes:g} min per method, one after the other)"
          + (f"; the judge's own F1 on the real validation images: {judge_f1:.3f}" if judge_f1 is not None else "") + "\n")
    print("| method | " + " | ".join(f"{m / 60:.1f} min" for m in marks) + " | steps in the budget | s per step |")
    print("|---|" + "---|" * (len(marks) + 2))
    for model, r in results.items():
        cells = []
        for m in marks:
            seen = [row["fidelity_f1"] for row in r["evaluations"] if row.get("elapsed_s", 1e18) <= m and "fidelity_f1" in row]
            cells.append(f"{max(seen):.3f}" if seen else "-")
        steps = int(r["evaluations"][-1]["step"]) if r["evaluations"] else 0
        # seconds per step including the evaluations, from the last evaluation's elapsed time
        per_step = r["evaluations"][-1].get("elapsed_s", 0) / steps if steps else float("nan")
        print(f"| {model} | " + " | ".join(cells) + f" | {steps} | {per_step:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "minutes": args.minutes,
                               "judge_val_f1": judge_f1, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
