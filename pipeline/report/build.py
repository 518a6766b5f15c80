"""The report: one self-contained HTML file (images embedded) and a Markdown summary.

It reads only files of a run folder, so it can be rebuilt at any time with
``synth-pretrain report RUN_DIR``:

* ``config.yaml``, ``set.json``, ``splits.json``, ``stages.json`` (written by the stages);
* ``results.csv``: the verdict rows first (``row`` = verdict / label_efficiency), then one row per
  (arm, seed, n_real) with the object-level test metrics (``row`` = seed);
* ``verdict.json``: the same verdicts with their sentences (pipeline/evaluation/verdict.py);
* optional ``quality.json`` (synthetic-data quality), ``samples.png`` (synthetic sample grid),
  ``realism.png`` (a real crop beside synthetic images, same scale), ``mask_stats.png`` (synthetic
  vs real mask statistics), ``sizes.npz`` (equivalent diameters per arm and of the ground truth),
  ``size_bins.csv`` (recall and precision by object size, pipeline/report/sizes.py) and
  ``overlays/*.png`` (best and worst test images).

Object sizes are shown in pixels and, when the set's ``set.yaml`` gives ``pixel_size`` /
``pixel_unit`` (recorded in ``set.json``), in those units too: an engineer thinks in millimetres.
A finished run folder under ``runs/<set>/`` also moves ``runs/<set>/latest`` (pipeline/report/runs.py).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from ..io import read_json, write_text  # noqa: E402
from ..run_layout import stage_path  # noqa: E402


def arm_label(arm: str) -> str:
    """Readable arm name: ``pretrained:spade`` -> 'spade pairs: synthetic pretraining, then real fine-tuning'."""
    from ..segmentation.arms import ARMS

    base, _, method = str(arm).partition(":")
    label = ARMS[base].label if base in ARMS else base
    return f"{method} pairs: {label}" if method else label


def split_results(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdict rows, per-seed rows) of a results.csv (files without a ``row`` column: all per-seed)."""
    if "row" not in results.columns:
        return results.iloc[0:0], results
    return results[results.row != "seed"].reset_index(drop=True), results[results.row == "seed"].reset_index(drop=True)


METRICS = ["f1", "precision", "recall", "mean_matched_iou", "pixel_iou", "count_rel_error", "size_wasserstein"]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _file_png(path: Path) -> str | None:
    return base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def summarize(results: pd.DataFrame, reference: str = "real_only") -> pd.DataFrame:
    """Mean and std over seeds per (n_real, arm), plus the paired F1 difference to ``reference``."""
    cols = [m for m in METRICS if m in results.columns]
    g = results.groupby(["n_real", "arm"], sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std")).join(g.size().rename("seeds"))
    out = out.reset_index()
    diffs = []
    for _, row in out.iterrows():
        base = results[(results.arm == reference) & (results.n_real == row.n_real)].set_index("seed")["f1"]
        arm = results[(results.arm == row.arm) & (results.n_real == row.n_real)].set_index("seed")["f1"]
        d = (arm - base).dropna()
        diffs.append(
            {
                "f1_diff_mean": d.mean() if len(d) else np.nan,
                "f1_diff_std": d.std(ddof=1) if len(d) > 1 else np.nan,
                "seeds_above_baseline": int((d > 0).sum()),
            }
        )
    return pd.concat([out, pd.DataFrame(diffs)], axis=1)


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    if pd.isna(mean):
        return "–"
    s = f"{mean * scale:.{digits}f}"
    return s + (f" ± {std * scale:.{digits}f}" if not pd.isna(std) else "")


def _metric_plot(results: pd.DataFrame) -> str:
    arms = list(dict.fromkeys(results.arm))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, metric in zip(axes, ["precision", "recall", "f1"]):
        for i, arm in enumerate(arms):
            vals = results[results.arm == arm][metric].to_numpy() * 100
            ax.bar(i, vals.mean(), color=f"C{i}", alpha=0.75)
            ax.scatter(np.full(len(vals), i), vals, color="k", s=14, zorder=3)
        ax.set_xticks(range(len(arms)), [a.replace("_", "\n") for a in arms], fontsize=8)
        ax.set_title(f"object {metric} @ IoU 0.5 (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("test set, bars = mean over seeds, dots = single seeds", fontsize=9)
    return _png(fig)


def _pixel(set_info: dict) -> tuple[float | None, str]:
    """(pixel size, unit) from set.json; (None, 'px') when the set does not say (or says px)."""
    size, unit = set_info.get("pixel_size"), str(set_info.get("pixel_unit") or "px")
    if not size or unit == "px":
        return None, "px"
    return float(size), unit


def _size_plot(sizes: dict[str, np.ndarray], object_name: str, pixel_size: float | None = None,
               unit: str = "px") -> str | None:
    """Histogram of equivalent diameters, ground truth against each arm, in units when known."""
    if "ground_truth" not in sizes:
        return None
    scale = pixel_size or 1.0
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    gt = sizes["ground_truth"] * scale
    hi = np.percentile(gt, 99) if len(gt) else scale
    bins = np.linspace(0, max(hi, scale), 30)
    ax.hist(gt, bins=bins, histtype="stepfilled", alpha=0.3, color="k", label="ground truth")
    for i, (name, d) in enumerate((k, v) for k, v in sizes.items() if k != "ground_truth"):
        ax.hist(d * scale, bins=bins, histtype="step", lw=1.6, color=f"C{i}", label=name)
    ax.set_xlabel(f"{object_name} equivalent diameter ({unit})")
    ax.set_ylabel("objects")
    ax.legend(fontsize=8)
    ax.set_title("size distribution on the test set (seed 0)")
    return _png(fig)


def _size_bins(run_dir: Path, pixel_size: float | None, unit: str) -> tuple[dict | None, str | None]:
    """The recall/precision-by-size table (largest n_real, pooled over seeds: ``{"arms": [...],
    "bins": [{"size", "n_gt", "arms": [cell per arm]}]}``) and its plot."""
    from .sizes import bin_label, pooled_by_size

    f = run_dir / "size_bins.csv"
    if not f.is_file():
        return None, None
    pooled = pooled_by_size(pd.read_csv(f))
    if pooled.empty:
        return None, None

    def pct(v: float) -> str:
        return "–" if pd.isna(v) else f"{v * 100:.0f}"

    arms = list(dict.fromkeys(pooled.arm))
    bins = pooled.drop_duplicates("bin").sort_values("bin")
    rows = []  # one per size bin; per arm "recall (found/true)" and "precision (matching/predicted)"
    for b in bins.itertuples():
        cells = []
        for arm in arms:
            r = pooled[(pooled.arm == arm) & (pooled.bin == b.bin)].iloc[0]
            cells.append({"recall": pct(r.recall), "found": f"{int(r.tp_gt)}/{int(r.n_gt)}",
                          "precision": pct(r.precision), "matching": f"{int(r.tp_pred)}/{int(r.n_pred)}"})
        # the same test objects under every seed: the count per test set, the fractions summed over seeds
        rows.append({"size": bin_label(b.lo_px, b.hi_px, pixel_size, unit), "n_gt": int(b.n_gt) // max(int(b.seeds), 1),
                     "arms": cells})
    rows = {"arms": arms, "bins": rows}
    labels = [bin_label(lo, hi, pixel_size, unit).replace(" (", "\n(") for lo, hi in zip(bins.lo_px, bins.hi_px)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, metric, what in ((axes[0], "recall", "true objects of this size found"),
                             (axes[1], "precision", "predicted objects of this size that are real")):
        for i, arm in enumerate(dict.fromkeys(pooled.arm)):
            g = pooled[pooled.arm == arm].sort_values("bin")
            ax.plot(g["bin"], g[metric] * 100, "-o", color=f"C{i}", label=arm)
        ax.set_xticks(bins["bin"], labels, fontsize=8)
        ax.set_title(f"object {metric} by size (%): {what}", fontsize=9)
        ax.set_xlabel("equivalent diameter" + ("" if pixel_size is None else f" (px and {unit})"), fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_ylim(-3, 103)
    axes[0].legend(fontsize=8)
    return rows, _png(fig)


def _use_model(run_dir: Path, pixel_size: float | None, unit: str) -> dict | None:
    """What the verdict recommends using: the checkpoint ``predict``/``export`` pick for this run
    folder by default (arm ``best``: highest mean validation F1 at the largest n_real, lowest seed;
    pipeline/export/model_source.py decides, so the report cannot disagree with the commands), its
    post-processing settings, and the two commands, ready to paste (absolute, quoted paths)."""
    import shlex

    from ..config import ConfigError
    from ..data.images import InputError
    from ..export.model_source import BEST, resolve_model

    try:
        src = resolve_model(run_dir, BEST)
    except (InputError, ConfigError) as e:
        return {"error": str(e)}
    except (FileNotFoundError, KeyError, ValueError) as e:  # an old or hand-made results.csv
        return {"error": f"results.csv does not name the arms' checkpoints ({type(e).__name__}: {e})"}
    d = src.description
    arm, seed = str(d.get("arm")), int(d.get("seed", 0))
    run = shlex.quote(str(run_dir.resolve()))
    pick = f"--arm {shlex.quote(arm)} --seed {seed}"
    units = f" --pixel-size {pixel_size:g} --pixel-unit {shlex.quote(unit)}" if pixel_size else ""
    return {
        "arm": arm, "label": arm_label(arm), "seed": seed, "n_real": d.get("n_real"),
        "checkpoint": str(src.checkpoint.resolve()),
        "fg_threshold": f"{src.fg_threshold:g}", "boundary_threshold": f"{src.boundary_threshold:g}",
        "min_object_area": src.min_object_area,
        "predict": f"synth-pretrain predict {run} YOUR_IMAGES/ predictions/ {pick}{units}",
        "export": f"synth-pretrain export {run} --format onnx --out exported/ {pick}",
    }


def _stage_folder(path: str) -> str:
    """A stage's folder as it sits under runs/<set>/ (``stages/<stage>/<key>``), whatever folder the
    run was started from: the part of the recorded path from ``stages`` on."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("stages"):]) if "stages" in parts else str(path)


def _stage_plot(stages: list[dict]) -> str | None:
    if not stages:
        return None
    frame = pd.DataFrame(stages)
    agg = frame.groupby("stage", sort=False)[["seconds", "compute_seconds"]].sum()
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(agg) + 1))
    ax.barh(agg.index[::-1], agg["compute_seconds"][::-1] / 60, color="C7", label="compute (first run)")
    ax.barh(agg.index[::-1], agg["seconds"][::-1] / 60, color="C0", label="this run")
    ax.set_xlabel("minutes")
    ax.legend(fontsize=8)
    return _png(fig)


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        from ..data.images import InputError

        raise InputError(f"{run_dir}: no results.csv; is this a finished run folder? (for a run still going on: "
                         f"synth-pretrain report {run_dir} --partial)")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    set_info = read_json(run_dir / "set.json") if (run_dir / "set.json").is_file() else {}
    stages = read_json(run_dir / "stages.json") if (run_dir / "stages.json").is_file() else []
    quality = read_json(run_dir / "quality.json") if (run_dir / "quality.json").is_file() else {}
    quality = {k: v for k, v in quality.items() if k != "details"}
    partial = read_json(run_dir / "partial.json") if (run_dir / "partial.json").is_file() else None
    manifest = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    verdict_rows, results = split_results(pd.read_csv(run_dir / "results.csv"))
    summary = summarize(results)
    pixel_size, unit = _pixel(set_info)
    sizes = {}
    if (run_dir / "sizes.npz").is_file():
        with np.load(run_dir / "sizes.npz") as z:
            sizes = {k: z[k] for k in z.files}

    rows = []
    for _, r in summary.iterrows():
        rows.append(
            {
                "n_real": int(r.n_real),
                "arm": r.arm,
                "label": arm_label(r.arm),
                "seeds": int(r.seeds),
                "f1": _pm(r.f1_mean, r.f1_std),
                "precision": _pm(r.precision_mean, r.precision_std),
                "recall": _pm(r.recall_mean, r.recall_std),
                "iou": _pm(r.get("mean_matched_iou_mean", np.nan), r.get("mean_matched_iou_std", np.nan)),
                "count": _pm(r.get("count_rel_error_mean", np.nan), r.get("count_rel_error_std", np.nan)),
                "diff": "" if r.arm == "real_only" else _pm(r.f1_diff_mean, r.f1_diff_std),
                "above": "" if r.arm == "real_only" else f"{r.seeds_above_baseline}/{int(r.seeds)}",
            }
        )
    verdicts = verdict_rows[verdict_rows.row == "verdict"].to_dict("records") if len(verdict_rows) else []
    efficiency = verdict_rows[verdict_rows.row == "label_efficiency"].to_dict("records") if len(verdict_rows) else []
    overlays = sorted((run_dir / "overlays").glob("*.png")) if (run_dir / "overlays").is_dir() else []
    size_rows, size_bins_plot = _size_bins(run_dir, pixel_size, unit)
    env = Environment(loader=PackageLoader("pipeline.report", "templates"), autoescape=select_autoescape(["html"]))
    context = {
        "run_dir": str(run_dir),
        "partial": partial,
        "notices": manifest.get("notices") or [],
        "more_seeds": None if partial else _more_seeds(results, cfg, run_dir),  # a partial run may be adding seeds
        "set": set_info,
        "config_yaml": yaml.safe_dump(cfg, sort_keys=False),
        "rows": rows,
        "verdicts": verdicts,
        "efficiency": efficiency,
        "plateau": _plateau_rows(results),
        "curves_plot": _curves_plot(run_dir, results),
        "generators": _generator_training(run_dir, stages),
        "filtering": _filtering(run_dir, stages),
        "efficiency_plot": _efficiency_plot(results),
        "per_seed": results.round(4).to_dict("records"),
        "per_seed_columns": list(results.round(4).columns),
        "quality": quality,
        "metric_plot": _metric_plot(results),
        "size_plot": _size_plot(sizes, set_info.get("object_name", "object"), pixel_size, unit),
        "size_rows": size_rows,
        "size_bins_plot": size_bins_plot,
        "pixel_size": pixel_size,
        "pixel_unit": unit,
        "use_model": _use_model(run_dir, pixel_size, unit),
        "stage_plot": _stage_plot(stages),
        "stages": [{**s, "folder": _stage_folder(s.get("path", ""))} for s in stages],
        "samples": _file_png(run_dir / "samples.png"),
        "realism": _file_png(run_dir / "realism.png"),
        "style_grid": _file_png(run_dir / "style_grid.png"),
        "mask_stats": _file_png(run_dir / "mask_stats.png"),
        "overlays": [(p.stem.replace("_", " "), _file_png(p)) for p in overlays],
    }
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    write_text(html_path, env.get_template("report.html.j2").render(**context))
    write_text(md_path, env.get_template("report.md.j2").render(**context))
    if (run_dir / "run.json").is_file():  # a run of the flow under runs/<set>/ (not a hand-made folder)
        from .runs import update_latest

        update_latest(run_dir.parent)
    return html_path, md_path


def _arm_seconds(results: pd.DataFrame) -> pd.Series:
    """Training seconds of each (arm, seed, n_real) row: every phase's time, including time spent
    before a resume (``arm_seconds`` only counts the last call, so it is the fallback for results
    that predate phase times)."""
    phases = [c for c in results.columns if c.endswith("_seconds") and c != "arm_seconds"]
    total = results[phases].sum(axis=1, min_count=1) if phases else pd.Series(np.nan, index=results.index)
    if "arm_seconds" in results:
        total = total.fillna(results["arm_seconds"])
    return total


def _more_seeds(results: pd.DataFrame, cfg: dict, run_dir: Path, seeds: int = 3) -> dict | None:
    """When every arm ran one seed: the command for a verdict across ``seeds`` seeds and what it would
    cost here. ``study`` with this run's resolved config reuses its finished arms from the stage cache
    (arm keys leave out the seed list), so only the other seeds train; each is estimated at this run's
    time for the same arm, scheduled longest first on the run's workers, as the flow submits them."""
    if results.empty or "seed" not in results or results.groupby(["arm", "n_real"])["seed"].nunique().max() > 1:
        return None
    runtime = cfg.get("runtime", {})
    workers = int(runtime.get("dask_workers" if runtime.get("task_runner") == "dask" else "max_parallel_tasks", 1))
    seconds = _arm_seconds(results)
    minutes = None
    if seconds.notna().all():
        loads = [0.0] * max(1, workers)
        for t in sorted(list(seconds) * (seeds - 1), reverse=True):
            loads[loads.index(min(loads))] += t
        minutes = round(max(loads) / 60)
    base = results["arm"].str.split(":").str[0]  # joint:copypaste -> the arm joint, the method copypaste
    methods = sorted({a.split(":", 1)[1] for a in results["arm"] if ":" in a})
    command = (f"synth-pretrain study --config {run_dir.resolve() / 'config.yaml'} "
               + "".join(f"-s {m} " for m in methods) + f"--arms {','.join(dict.fromkeys(base))} "
               + f"--seeds {','.join(str(s) for s in range(seeds))}")
    return {"seeds": seeds, "minutes": minutes, "workers": workers, "command": command}


def _plateau_rows(results: pd.DataFrame) -> list[dict]:
    """Per arm and n_real: steps each phase ran (median and range over seeds) and how it stopped."""
    rows = []
    for (n, arm), g in results.groupby(["n_real", "arm"], sort=False):
        phases = [c[: -len("_steps")] for c in g.columns if c.endswith("_steps") and g[c].notna().any()
                  and f"{c[: -len('_steps')]}_stop" in g.columns]
        parts = []
        for ph in phases:
            steps, stops = g[f"{ph}_steps"].dropna().astype(int), g[f"{ph}_stop"].dropna()
            if steps.empty:
                continue
            caps = int((stops == "cap").sum())
            # bf16 or fp32 (runtime.precision: auto follows the CPU): a runtime choice, not in the stage key
            precision = sorted(set(g[f"{ph}_precision"].dropna())) if f"{ph}_precision" in g.columns else []
            parts.append(f"{ph}: {int(steps.median())} steps ({steps.min()}–{steps.max()}), "
                         + ("all on patience" if caps == 0 else f"<b>{caps} of {len(stops)} at the cap</b>")
                         + (f", {' / '.join(precision)}" if precision else ""))
        total = _arm_seconds(g)
        minutes = f"{total.median() / 60:.1f}" if total.notna().any() else ""
        validation = [f"{ph}_validation_s" for ph in phases if f"{ph}_validation_s" in g.columns]
        if minutes and validation and g[validation].notna().all().all():
            share = g[validation].sum(axis=1) / total  # the evaluations' share of the training time
            minutes += f" ({100 * share.median():.0f} % validating)"
        rows.append({"n_real": int(n), "arm": arm, "phases": "; ".join(parts), "minutes": minutes})
    return rows


def _curves_plot(run_dir: Path, results: pd.DataFrame) -> str | None:
    """Validation F1 against step for every arm and seed (largest n_real), phases one after another,
    each phase's stopping point marked: people look at these before they believe a number."""
    if "checkpoint" not in results:
        return None
    top = results[results.n_real == results.n_real.max()]
    arms = list(dict.fromkeys(top.arm))
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 3.4), sharey=True, squeeze=False)
    drawn = False
    for ax, arm in zip(axes[0], arms):
        for _, r in top[top.arm == arm].iterrows():
            arm_dir = stage_path(run_dir, str(r.checkpoint)).parent.parent
            offset = 0
            for phase in ("pretrain", "train", "joint", "finetune"):
                log = arm_dir / phase / "log.csv"
                if not log.is_file():
                    continue
                frame = pd.read_csv(log)
                line, = ax.plot(frame.step + offset, frame.val_f1 * 100, lw=1.2, color=f"C{int(r.seed) % 10}",
                                ls="--" if phase == "pretrain" else "-")
                ax.axvline(offset + frame.step.iloc[-1], color=line.get_color(), lw=0.5, alpha=0.4)
                offset += int(frame.step.iloc[-1])
                drawn = True
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("step (phases in order; dashed: synthetic pretraining)", fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation object F1 (%)")
    fig.suptitle("training curves, colour = seed, thin vertical line = where a phase stopped", fontsize=9)
    return _png(fig) if drawn else (plt.close(fig) or None)


def _generator_training(run_dir: Path, stages: list[dict], snapshots: int = 3) -> list[dict]:
    """Per trained generator of the run: its losses against step (a running mean over ~2 % of the
    steps, raw values faint behind), its fidelity over training where a judge scored it (``eval.csv``:
    the real-only segmenter's object F1 on generated held-out layouts, the step final.pt was taken
    from marked) and a few of the sample grids it wrote while training (first, best, last), so a user
    sees whether it was still changing when it stopped."""
    import json

    out, seen = [], set()
    for entry in stages:
        if not entry["stage"].startswith("train generator"):
            continue
        d = stage_path(run_dir, entry["path"])
        log = d / "log.jsonl"
        if d in seen or not log.is_file():
            continue  # copy-paste has no training; a generator used twice is shown once
        seen.add(d)
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        frame = pd.DataFrame(rows)
        losses = [c for c in frame.columns if c not in ("step", "sec", "lr_scale") and frame[c].dtype.kind == "f"]
        if frame.empty or not losses:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        window = max(1, len(frame) // 50)
        for i, c in enumerate(losses):
            ax.plot(frame.step, frame[c], color=f"C{i}", alpha=0.2, lw=0.6)
            ax.plot(frame.step, frame[c].rolling(window, min_periods=1).mean(), color=f"C{i}", lw=1.4, label=c)
        ax.set_xlabel("generator step")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=min(4, len(losses)))
        training = read_json(d / "training.json") if (d / "training.json").is_file() else {}
        evals = pd.read_csv(d / "eval.csv") if (d / "eval.csv").is_file() else pd.DataFrame()
        best_step = None
        if not evals.empty and "fidelity_f1" in evals:
            best_step = training.get("best_step") or int(evals.step[evals.fidelity_f1 == evals.fidelity_f1.max()].max())
        grids = sorted((d / "samples").glob("step_*.png"))
        n = min(snapshots, len(grids))
        picks = [grids[round(i * (len(grids) - 1) / max(1, n - 1))] for i in range(n)]  # first, ..., last
        best_grid = d / "samples" / f"step_{best_step:07d}.png" if best_step is not None else None
        if best_grid is not None and best_grid.is_file() and best_grid not in picks:
            picks = sorted([picks[0], best_grid, picks[-1]] if len(picks) > 1 else [best_grid, *picks])
        samples = []
        for p in dict.fromkeys(picks):
            step = int(p.stem.split("_")[-1])
            samples.append((step, _file_png(p), " (best fidelity: final.pt)" if step == best_step else ""))
        out.append({"name": entry["stage"].removeprefix("train generator").strip(" ()") or "generator",
                    "steps": int(frame.step.max()), "plot": _png(fig),
                    "fidelity_plot": _generator_fidelity_plot(evals, best_step) if best_step is not None else None,
                    "stop": _generator_stop(training), "samples": samples})
    return out


def _filtering(run_dir: Path, stages: list[dict]) -> list[dict]:
    """Per filtered synthetic store of the run (``filter pairs (<method>)`` stages,
    pipeline/quality/filtering.py): how many pairs the arms trained on out of how many, the fidelity
    at the cut, and what the cut did to the pairs' mean fidelity and to how often their objects touch.
    The verdict above is for the filtered pairs; a user reads here what was thrown away, since a cut
    that keeps the easy, isolated layouts can cost exactly the touching objects F1 depends on."""
    out, seen = [], set()
    for entry in stages:
        if not entry["stage"].startswith("filter pairs"):
            continue
        f = stage_path(run_dir, entry["path"]) / "filtering.json"
        if f in seen or not f.is_file():
            continue
        seen.add(f)
        s = read_json(f)
        fid, touch = s.get("mean_fidelity", {}), s.get("mean_touching_fraction", {})
        out.append({
            "method": entry["stage"].removeprefix("filter pairs").strip(" ()") or "synthetic",
            "pairs_in": int(s["pairs_in"]), "kept": int(s["kept"]), "pairs_out": int(s["pairs_out"]),
            "copies": int(s.get("copies_added", 0)),
            "kept_pct": f"{100 * s['kept'] / max(1, s['pairs_in']):.0f}",
            "cut": f"{s['thresholds']['min_fidelity_kept']:.2f}" if s.get("thresholds") else "",
            "fidelity": f"{fid['before']:.2f} → {fid['kept']:.2f}" if {"before", "kept"} <= fid.keys() else "",
            "touching": f"{touch['before']:.2f} → {touch['written']:.2f}" if {"before", "written"} <= touch.keys() else "",
        })
    return out


def _generator_fidelity_plot(evals: pd.DataFrame, best_step: int) -> str:
    """Object F1 (and precision, recall) of the judge on the generator's images of held-out layouts
    at every evaluation; a star and a dashed line at the step whose EMA weights became final.pt."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    ax.plot(evals.step, evals.fidelity_f1 * 100, "-o", ms=3, lw=1.4, color="C0", label="fidelity F1")
    for i, c in enumerate(("precision", "recall")):
        if c in evals:
            ax.plot(evals.step, evals[c] * 100, lw=0.8, alpha=0.6, color=f"C{i + 1}", label=c)
    best = evals[evals.step == best_step]
    ax.axvline(best_step, color="C3", ls="--", lw=0.9)
    if not best.empty:
        ax.plot(best_step, float(best.fidelity_f1.iloc[0]) * 100, "*", ms=13, color="C3",
                label=f"best: step {best_step} (final.pt)")
    ax.set_xlabel("generator step")
    ax.set_ylabel("real-only judge's object F1\non held-out layouts (%)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _generator_stop(training: dict) -> str | None:
    """One sentence: how long the generator trained, why it stopped, which weights it kept."""
    if not training:
        return None
    run, cap = training.get("steps_run"), training.get("max_steps")
    if training.get("best_step") is None:
        return f"{run} of {cap} steps (no judge: a fixed number of steps); final.pt holds the last EMA weights."
    why = ("at its fidelity plateau" if training.get("stop_reason") == "patience"
           else "<b>at the cap</b> (still improving, or patience 0)")
    minutes = f", {training['time_s'] / 60:.1f} min" if training.get("time_s") is not None else ""
    return (f"{run} of {cap} steps{minutes}, stopped {why}; final.pt holds the EMA weights of step "
            f"{training['best_step']} (fidelity F1 {training['best_fidelity_f1']:.3f}).")


def _efficiency_plot(results: pd.DataFrame) -> str | None:
    """Test F1 against the number of real pairs per arm (dots: seeds), when more than one ran."""
    if results.n_real.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, arm in enumerate(dict.fromkeys(results.arm)):
        g = results[results.arm == arm]
        mean = g.groupby("n_real").f1.mean() * 100
        ax.plot(mean.index, mean.values, "-o", color=f"C{i}", label=arm)
        ax.scatter(g.n_real, g.f1 * 100, color=f"C{i}", s=10, alpha=0.5)
    ax.set_xlabel("real training pairs")
    ax.set_ylabel("test object F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def results_markdown_table(results: pd.DataFrame) -> str:
    """The summary table as Markdown (used by the report, the flow's artifact and docs)."""
    s = summarize(split_results(results)[1])
    lines = [
        "| real pairs | arm | seeds | F1@0.5 (%) | precision (%) | recall (%) | ΔF1 vs real_only | seeds above |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in s.iterrows():
        diff = "" if r.arm == "real_only" else _pm(r.f1_diff_mean, r.f1_diff_std)
        above = "" if r.arm == "real_only" else f"{r.seeds_above_baseline}/{int(r.seeds)}"
        lines.append(
            f"| {int(r.n_real)} | {r.arm} | {int(r.seeds)} | {_pm(r.f1_mean, r.f1_std)} | "
            f"{_pm(r.precision_mean, r.precision_std)} | {_pm(r.recall_mean, r.recall_std)} | {diff} | {above} |"
        )
    return "\n".join(lines)
