"""``synth-pretrain compare RUN_A RUN_B``: did a change of configuration (filtering, a crop size, a
scale jitter, another generator setting) make an arm better, paired by seed, with an interval?

A run's verdict answers "synthetic data against real_only" inside one run. A user who then tries a
setting in a second run asks a different question: is the same arm better in run B than in run A?
The protocol is the verdict's (pipeline/evaluation/verdict.py): per seed present in both runs, the
arm's pooled test F1 in B minus in A, averaged over seeds; the interval from the same two-level
bootstrap over seeds and test images. Both runs must have scored the same test images, or there is
nothing to pair. The arms are read from each run's ``stages.json`` (the stage folders it recorded),
so a run still going on compares the arms it has finished. Nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..evaluation.verdict import Comparison, compare
from ..io import read_json
from ..run_layout import stage_path

RUN_A, RUN_B = "A", "B"


def run_arms(run_dir: Path) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """One row per finished arm x seed x n_real of a run (its metrics.json) and their per-image
    tables, keyed by row_id."""
    run_dir = Path(run_dir)
    f = run_dir / "stages.json"
    if not f.is_file():
        raise InputError(f"{run_dir}: no stages.json; is this a run folder (runs/<set>/<run-id>)?")
    rows, per_image, seen = [], {}, set()
    for entry in read_json(f):
        if not str(entry.get("stage", "")).startswith("segmentation") or not entry.get("path"):
            continue
        d = stage_path(run_dir, entry["path"])
        if d in seen or not (d / "metrics.json").is_file() or not (d / "per_image.csv").is_file():
            continue
        seen.add(d)
        m = read_json(d / "metrics.json")
        i = len(rows)
        rows.append({"arm": m["arm"], "seed": int(m["seed"]), "n_real": int(m["n_real"]), "f1": m["f1"],
                     "precision": m["precision"], "recall": m["recall"], "hit_cap": bool(m.get("hit_cap", False)),
                     "row_id": i, "stage_dir": str(d.resolve())})
        per_image[i] = pd.read_csv(d / "per_image.csv")
    if not rows:
        raise InputError(f"{run_dir}: no finished segmentation arm in its stages.json")
    return pd.DataFrame(rows), per_image


def compare_runs(run_a: Path, run_b: Path, arms: list[str] | None = None) -> list[Comparison]:
    """Every arm (or those named) at every n_real that both runs trained with at least one common
    seed: run B's arm against run A's, paired by seed, with run B's bootstrap settings."""
    a_rows, a_images = run_arms(run_a)
    b_rows, b_images = run_arms(run_b)
    ev_a, ev_b = (run_config(r).get("evaluation") or {} for r in (run_a, run_b))
    if ev_a.get("iou_threshold") != ev_b.get("iou_threshold"):
        raise InputError(f"{run_b}: objects matched at IoU {ev_b.get('iou_threshold')}, {run_a} at "
                         f"{ev_a.get('iou_threshold')}: not comparable")
    n_boot, confidence = int(ev_b.get("bootstrap", 2000)), float(ev_b.get("confidence", 0.95))
    _same_test_images(run_a, a_images, run_b, b_images)
    offset = len(a_rows)
    rows = pd.concat([a_rows.assign(arm=RUN_A + ":" + a_rows.arm),
                      b_rows.assign(arm=RUN_B + ":" + b_rows.arm, row_id=b_rows.row_id + offset)], ignore_index=True)
    per_image = {**a_images, **{i + offset: t for i, t in b_images.items()}}
    wanted = arms or list(dict.fromkeys([*a_rows.arm, *b_rows.arm]))
    unknown = [a for a in wanted if a not in set(a_rows.arm) | set(b_rows.arm)]
    if unknown:
        raise InputError(f"--arm {', '.join(unknown)}: not an arm of either run "
                         f"(run A: {', '.join(sorted(set(a_rows.arm)))}; run B: {', '.join(sorted(set(b_rows.arm)))})")
    out = []
    for arm in wanted:
        for n in sorted(set(a_rows.n_real[a_rows.arm == arm]) & set(b_rows.n_real[b_rows.arm == arm])):
            c = compare(rows, per_image, f"{RUN_B}:{arm}", n, n, n_boot, confidence, reference=f"{RUN_A}:{arm}")
            if c is None:
                continue
            c.arm = arm
            c.capped = [x.split(":", 1)[0] for x in c.capped]  # which run's arm hit its cap
            c.word, c.sentence = describe_change(c, confidence)
            if _same_stage_dirs(a_rows, b_rows, arm, n):
                c.word = "same arm"
                c.sentence = (f"Same arm: {arm} with {n} real pairs is the same trained arm in both runs (the same "
                              f"stage folders, from the cache): the change did not touch it.")
            out.append(c)
    if not out:
        raise InputError(f"{run_a} and {run_b}: no arm with the same n_real and seed in both runs")
    return out


def config_changes(run_a: Path, run_b: Path) -> list[str]:
    """'section.key: value in A -> value in B' for every setting that differs between the runs'
    config.yaml files: what the comparison is a comparison of."""
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = (flat(run_config(r)) for r in (run_a, run_b))
    missing = "(not set)"
    return [f"{k}: {a.get(k, missing)} -> {b.get(k, missing)}" for k in sorted(a.keys() | b.keys())
            if a.get(k, missing) != b.get(k, missing)]


def _same_stage_dirs(a_rows: pd.DataFrame, b_rows: pd.DataFrame, arm: str, n_real: int) -> bool:
    """True when every seed both runs have of the arm is the same stage folder in both."""
    pick = lambda r: r[(r.arm == arm) & (r.n_real == n_real)].set_index("seed").stage_dir  # noqa: E731
    a, b = pick(a_rows), pick(b_rows)
    common = sorted(set(a.index) & set(b.index))
    return bool(common) and all(a[s] == b[s] for s in common)


def run_config(run_dir: Path) -> dict:
    """The run's resolved config (config.yaml) as a dict, {} for a folder without one."""
    import yaml

    f = Path(run_dir) / "config.yaml"
    if not f.is_file():
        return {}
    try:
        return yaml.safe_load(f.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{f}: not valid YAML ({str(e).splitlines()[0]})") from None


def _same_test_images(run_a: Path, a_images: dict[int, pd.DataFrame], run_b: Path, b_images: dict[int, pd.DataFrame]) -> None:
    first = lambda tables: sorted(map(str, next(iter(tables.values()))["image"]))  # noqa: E731
    if first(a_images) != first(b_images):
        raise InputError(f"{run_b}: its test images are not those of {run_a} (another set or split): "
                         f"nothing to pair")


def describe_change(c: Comparison, confidence: float = 0.95) -> tuple[str, str]:
    """(better | worse | no detectable difference | inconclusive, one sentence) for run B's arm
    against run A's."""
    pts = lambda v: f"{v * 100:+.1f}"  # noqa: E731
    numbers = (f"F1 {c.f1 * 100:.1f} vs {c.reference_f1 * 100:.1f} % (Δ {pts(c.delta_f1)} points, {confidence:.0%} "
               f"interval {pts(c.ci_low)} to {pts(c.ci_high)}; precision {c.precision * 100:.1f} vs "
               f"{c.reference_precision * 100:.1f}, recall {c.recall * 100:.1f} vs {c.reference_recall * 100:.1f}; "
               f"{c.seeds} seed{'s' if c.seeds > 1 else ''}, {c.images} test images)")
    who = f"{c.arm} with {c.n_real} real pairs, run B against run A"
    if c.capped:
        return "inconclusive", (f"Inconclusive: {who}: the arm of run {' and '.join(c.capped)} reached its step cap "
                                f"before its validation plateau; {numbers}.")
    if c.ci_low > 0:
        word = "better"
    elif c.ci_high < 0:
        word = "worse"
    else:
        word = "no detectable difference"
    sentence = f"{word[0].upper()}{word[1:]}: {who}, {numbers}."
    if c.seeds == 1:
        sentence += " One seed: the interval covers the test images, not another training seed."
    return word, sentence


def format_comparisons(run_a: Path, run_b: Path, found: list[Comparison]) -> str:
    changes = config_changes(run_a, run_b)
    lines = [f"run A: {run_a}", f"run B: {run_b}",
             "settings changed from A to B: " + ("; ".join(changes) if changes else "none (the same config)"), "",
             f"{'arm':<28} {'real pairs':>10} {'seeds':>5} {'F1 A':>6} {'F1 B':>6} {'ΔF1':>6}  {'interval':<16} word"]
    for c in found:
        lines.append(f"{c.arm:<28} {c.n_real:>10} {c.seeds:>5} {c.reference_f1 * 100:>6.1f} {c.f1 * 100:>6.1f} "
                     f"{c.delta_f1 * 100:>+6.1f}  {c.ci_low * 100:+.1f} to {c.ci_high * 100:+.1f}{'':<3} {c.word}")
    lines.append("")
    lines += [c.sentence for c in found]
    return "\n".join(lines)
