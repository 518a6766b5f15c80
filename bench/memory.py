"""Peak memory (RSS) of the synthetic-data stages as the number of pairs grows.

Each phase runs in its own process, so its ``ru_maxrss`` is that phase's peak alone:
placement masks -> generation (trained generator) -> pretraining steps on the pairs. Memory should
stay flat from 1k to 4k pairs: masks and pairs are written shard by shard and read lazily.

    PYTHONPATH=$PWD python bench/memory.py --set ../shared/datasets/emps_sem_particles \
        --generator runs/<set>/stages/generator/<key>/final.pt --counts 1000 4000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def phase(name: str, set_dir: str, generator: str, work: str, count: int, steps: int) -> dict:
    """Run one phase here (in the child process) and return its peak RSS."""
    import torch

    from pipeline.config import load_config
    from pipeline.data.store import MaskStore

    torch.set_num_threads(2)
    cfg = load_config("default", [f"data.set={set_dir}", "runtime.progress=false", f"generation.count={count}"])
    work = Path(work)
    t0 = time.perf_counter()
    if name == "masks":
        from pipeline import context, stages
        from pipeline.masks.placement import write_placement_masks
        from pipeline.masks.shape_bank import ShapeBank

        ctx = context.prepare(cfg, run_id="memory-bench")
        bank_dir, _, _ = stages.stage_shape_bank(ctx)
        write_placement_masks(ShapeBank.load(bank_dir), work / "masks", cfg.masks, count, seed=0, progress=False)
    elif name == "generate":
        from pipeline.generators.generate import generate_pairs

        generate_pairs(generator, MaskStore(work / "masks"), work / "pairs", cfg.generation, progress=False)
    elif name == "pretrain":
        from pipeline.segmentation.dataset import SyntheticPairsDataset
        from pipeline.segmentation.training import train_segmentation

        seg = cfg.segmentation
        ds = SyntheticPairsDataset(work / "pairs", 1, seg.image_size, seg.target, seed=0)
        train_segmentation(cfg, ds, [], work / "seg", steps=steps, lr=seg.lr, seed=0, progress=False)
    return {"phase": name, "count": count, "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True)
    ap.add_argument("--generator", required=True, help="a trained generator's final.pt")
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--steps", type=int, default=40, help="pretraining steps (the loader walks the store)")
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:  # child
        print(json.dumps(phase(args.phase, args.set, args.generator, args.work, args.count, args.steps)))
        return 0
    rows = []
    for count in args.counts:
        with tempfile.TemporaryDirectory() as work:
            for name in ("masks", "generate", "pretrain"):
                out = subprocess.run([sys.executable, __file__, "--set", args.set, "--generator", args.generator,
                                      "--phase", name, "--work", work, "--count", str(count), "--steps", str(args.steps)],
                                     capture_output=True, text=True, check=True, cwd=ROOT)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    lines = ["| phase | " + " | ".join(f"{c} pairs: peak RSS (MiB) / s" for c in args.counts) + " |",
             "|---|" + "---|" * len(args.counts)]
    for name in ("masks", "generate", "pretrain"):
        cells = [next(f"{r['peak_rss_mib']:.0f} / {r['seconds']:.0f}" for r in rows if r["phase"] == name and r["count"] == c)
                 for c in args.counts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
