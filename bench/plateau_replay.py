"""What another stopping rule would have done, replayed on the validation logs of finished runs.

Every training phase writes ``log.csv`` (one row per evaluation: step, validation F1, validation
loss, learning rate). This script feeds those rows through the plateau rule of
``pipeline/segmentation/training.py`` (the same ``Plateau`` class) with other settings, and prints
for each phase where the rule would have stopped and the best validation F1 it would have kept,
next to what the recorded run did. It trains nothing, so a rule can be judged on every arm of
several studies in a second before anyone spends CPU hours on it.

The replay is exact up to the first evaluation where the new rule would have dropped the learning
rate at another step than the recorded run did; after that the real curve would have differed, so
those rows are flagged ``approx``.

    PYTHONPATH=$PWD python bench/plateau_replay.py runs/emps_sem_particles runs/demo \\
        --rule recorded --rule f1_only:min_loss_delta=0 --rule loss_3pct:min_loss_delta=0.03
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.segmentation.training import Plateau  # noqa: E402

RULE_KEYS = ("patience", "min_delta", "min_steps", "lr_drops", "min_loss_delta")
DEFAULTS = {"patience": 3, "min_delta": 0.01, "min_steps": 200, "lr_drops": 1, "min_loss_delta": 0.02}


def parse_rule(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value``; ``recorded`` = the default config's rule."""
    name, _, spec = text.partition(":")
    rule = dict(DEFAULTS)
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in RULE_KEYS:
            raise SystemExit(f"--rule {text}: unknown setting '{key}' (one of {', '.join(RULE_KEYS)})")
        rule[key] = float(value) if key in ("min_delta", "min_loss_delta") else int(value)
    return name, rule


def replay(rows: list[dict], rule: dict) -> dict:
    """Stop step (None: would not have stopped within the log), best F1 and step, and whether the
    replay left the recorded learning-rate schedule (so later rows are approximate)."""
    plateau = Plateau(rule["patience"], rule["min_delta"], rule["min_steps"], rule["lr_drops"], rule["min_loss_delta"])
    recorded_drops = [int(r["step"]) for r, nxt in zip(rows, rows[1:])
                      if float(nxt["lr"]) < float(r["lr"]) and int(nxt["step"]) > 2 * int(rows[0]["step"])]
    best_f1, best_step, drops_at = -1.0, 0, []
    for row in rows:
        step, f1, loss = int(row["step"]), float(row["val_f1"]), float(row.get("val_loss", "nan") or "nan")
        if f1 >= best_f1:
            best_f1, best_step = f1, step
        before = plateau.drops
        stop = plateau.update(step, f1, loss)
        if plateau.drops > before:
            drops_at.append(step)
        if stop:
            return {"stop": step, "best_f1": best_f1, "best_step": best_step,
                    "approx": drops_at != recorded_drops[:len(drops_at)]}
    return {"stop": None, "best_f1": best_f1, "best_step": best_step,
            "approx": drops_at != recorded_drops[:len(drops_at)]}


def phase_logs(roots: list[str]) -> list[tuple[dict, str, list[dict]]]:
    """(arm metrics, phase, log rows) for every finished phase under the given runs folders."""
    found = []
    for root in roots:
        for log in sorted(Path(root).glob("**/stages/seg_*/*/*/log.csv")):
            arm_dir = log.parent.parent
            metrics = json.loads((arm_dir / "metrics.json").read_text()) if (arm_dir / "metrics.json").exists() else {}
            with open(log, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                found.append(({"set": log.parts[log.parts.index("stages") - 1], **metrics}, log.parent.name, rows))
    return found


def summarize(out_rows: list[dict]) -> None:
    """Per rule, set and phase: steps the rule saves and validation F1 it gives up, mean and worst."""
    print()
    print("| rule | set | phase | phases | steps (recorded -> rule), sum | best val F1 given up: mean, worst |")
    print("|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for r in out_rows:
        groups.setdefault((r["rule"], r["set"], r["phase"]), []).append(r)
    for (rule, set_name, phase), rows in groups.items():
        recorded = sum(r["recorded_steps"] for r in rows)
        kept = sum(r["stop"] or r["recorded_steps"] for r in rows)
        lost = [100 * (r["recorded_best_f1"] - r["best_f1"]) for r in rows]
        print(f"| {rule} | {set_name} | {phase} | {len(rows)} | {recorded:,} -> {kept:,} | "
              f"{sum(lost) / len(lost):.1f}, {max(lost):.1f} points |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="runs folders (searched for stages/seg_*/<key>/<phase>/log.csv)")
    ap.add_argument("--rule", action="append", default=[], help="name:key=value,... (repeatable)")
    ap.add_argument("--out", help="write the table as <out>.csv too")
    args = ap.parse_args(argv)
    rules = [parse_rule(r) for r in (args.rule or ["recorded"])]
    logs = phase_logs(args.roots)
    if not logs:
        print(f"no training logs under {', '.join(args.roots)}", file=sys.stderr)
        return 2
    out_rows = []
    header = "| set | arm | seed | n_real | phase | recorded steps, best F1 | " + " | ".join(n for n, _ in rules) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for metrics, phase, rows in logs:
        recorded_best = max(float(r["val_f1"]) for r in rows)
        recorded = f"{int(rows[-1]['step']):,}, {recorded_best:.3f}"
        cells = []
        for name, rule in rules:
            r = replay(rows, rule)
            stop = f"{r['stop']:,}" if r["stop"] else f">{int(rows[-1]['step']):,}"
            cells.append(f"{stop}, {r['best_f1']:.3f}" + (" approx" if r["approx"] else ""))
            out_rows.append({"set": metrics["set"], "arm": metrics.get("arm"), "seed": metrics.get("seed"),
                             "n_real": metrics.get("n_real"), "phase": phase, "rule": name,
                             "recorded_steps": int(rows[-1]["step"]), "recorded_best_f1": recorded_best,
                             "stop": r["stop"], "best_f1": r["best_f1"],
                             "approx": r["approx"]})
        print(f"| {metrics['set']} | {metrics.get('arm', '?')} | {metrics.get('seed', '?')} | "
              f"{metrics.get('n_real', '?')} | {phase} | {recorded} | " + " | ".join(cells) + " |")
    summarize(out_rows)
    if args.out:
        import pandas as pd

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(out_rows).to_csv(f"{args.out}.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
