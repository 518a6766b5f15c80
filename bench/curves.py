"""The study's curves from its CSVs: test F1 against the number of real pairs and of synthetic pairs.

Left panel: every arm of the ``--real`` CSVs against ``n_real``. Right panel: the ``--arm`` rows of
each ``--synthetic COUNT=CSV`` against COUNT, with the real-only arms at the same ``n_real`` as
horizontal bands (they do not depend on synthetic pairs). Dots are single seeds, lines the means.
Also writes a markdown table with the paired (same seed) F1 difference to the long baseline.

    python bench/curves.py --real docs/results/emps_cpu_nreal25.csv docs/results/emps_cpu_nreal50.csv \\
        docs/results/emps_cpu_synthesis_all.csv --synthetic 800=docs/results/emps_cpu_synthesis_all.csv \\
        2000=docs/results/emps_cpu_synth2000.csv --arm pretrained:spade --out docs/results/curves_emps_cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REAL_ONLY = ("baseline", "long_baseline")


def paired_gain(frame: pd.DataFrame, arm_rows: pd.DataFrame, ref: str = "long_baseline") -> pd.Series:
    """F1 of ``arm_rows`` minus the ``ref`` arm's F1 for the same seed and n_real."""
    long = frame[frame.arm == ref].set_index(["n_real", "seed"])["f1"]
    own = arm_rows.set_index(["n_real", "seed"])["f1"]
    return (own - long.reindex(own.index)).dropna()


def fmt(values: pd.Series) -> str:
    v = values.to_numpy() * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else (f"{v[0]:.1f}" if len(v) else "–")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", nargs="+", required=True, help="study CSVs with several n_real")
    ap.add_argument("--synthetic", nargs="*", default=[], help="COUNT=CSV: study CSVs at a synthetic-pair count")
    ap.add_argument("--arm", default="pretrained:spade", help="arm of the synthetic-pairs curve")
    ap.add_argument("--synthetic-n-real", type=int, default=100)
    ap.add_argument("--title", default="")
    ap.add_argument("--out", required=True, help="writes <out>.png and <out>.md")
    args = ap.parse_args(argv)

    real = pd.concat([pd.read_csv(p) for p in args.real], ignore_index=True).drop_duplicates(["arm", "seed", "n_real"])
    synth = []
    for item in args.synthetic:
        count, path = item.split("=", 1)
        rows = pd.read_csv(path)
        synth.append(rows[rows.arm == args.arm].assign(count=int(count)))
    synth = pd.concat(synth, ignore_index=True) if synth else pd.DataFrame(columns=["count", "f1", "seed", "n_real"])

    fig, axes = plt.subplots(1, 2 if len(synth) else 1, figsize=(11 if len(synth) else 5.5, 3.8), squeeze=False)
    ax = axes[0, 0]
    head = ("| arm | seeds | F1@0.5 (%) | minus baseline, same seed (points) | seeds above baseline | "
            "minus long baseline, same seed (points) | seeds above long baseline |")
    lines = ["| real pairs " + head, "|---" * 8 + "|"]

    def cells(frame: pd.DataFrame, g: pd.DataFrame, arm: str) -> str:
        out = []
        for ref in REAL_ONLY:
            gain = paired_gain(frame, g, ref) if arm not in REAL_ONLY[: REAL_ONLY.index(ref) + 1] else pd.Series(dtype=float)
            out += [fmt(gain) if len(gain) else "", f"{int((gain > 0).sum())}/{len(gain)}" if len(gain) else ""]
        return f"| {arm} | {len(g)} | {fmt(g.f1)} | " + " | ".join(out) + " |"

    for i, arm in enumerate(dict.fromkeys(real.arm)):
        rows = real[real.arm == arm].sort_values("n_real")
        means = rows.groupby("n_real")["f1"].mean() * 100
        ax.plot(means.index, means.values, "-o", color=f"C{i}", label=arm)
        ax.scatter(rows.n_real, rows.f1 * 100, color=f"C{i}", s=10, alpha=0.6)
        for n, g in rows.groupby("n_real"):
            lines.append(f"| {n} " + cells(real, g, arm))
    ax.set_xlabel("real training pairs")
    ax.set_ylabel("test object F1 @ IoU 0.5 (%)")
    ax.set_xticks(sorted(real.n_real.unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("vs number of real pairs", fontsize=10)

    if len(synth):
        lines += ["", "| synthetic pairs " + head, "|---" * 8 + "|"]
        ax = axes[0, 1]
        ref = real[real.n_real == args.synthetic_n_real]
        for i, arm in enumerate(REAL_ONLY):
            v = ref[ref.arm == arm].f1 * 100
            if len(v):
                ax.axhspan(v.min(), v.max(), color=f"C{i}", alpha=0.15)
                ax.axhline(v.mean(), color=f"C{i}", ls="--", label=f"{arm} (seed range)")
        means = synth.groupby("count")["f1"].mean() * 100
        ax.plot(means.index, means.values, "-o", color="C3", label=args.arm)
        ax.scatter(synth["count"], synth.f1 * 100, color="C3", s=10, alpha=0.6)
        for count, g in synth.groupby("count"):
            lines.append(f"| {count} " + cells(pd.concat([ref, g]), g, args.arm))
        ax.set_xscale("log")
        ax.set_xticks(sorted(synth["count"].unique()), [str(c) for c in sorted(synth["count"].unique())])
        ax.set_xlabel(f"synthetic pairs ({args.synthetic_n_real} real pairs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("vs number of synthetic pairs", fontsize=10)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
