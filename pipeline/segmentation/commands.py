"""CLI: train a segmentation model on a labeled set (real-only, pretrain + fine-tune, or mixed)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("train-seg")
    @user_errors
    def train_seg(
        set_dir: Path = typer.Option(..., "--set", help="labeled-set folder (images/, masks/)"),
        out: Path = typer.Option(..., "--out", help="output folder (resumes when it holds a run)"),
        synthetic: Path | None = typer.Option(None, "--synthetic", help="synthetic pair store folder"),
        pretrain: bool = typer.Option(
            False, "--pretrain", help="with --synthetic: pretrain on it, then fine-tune on the real pairs"
        ),
        config: str = typer.Option("default", "--config", help="config name (configs/) or YAML path"),
        seed: int | None = typer.Option(None, help="training seed (default segmentation.seed)"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value config overrides"),
    ) -> None:
        """Train a segmentation model: real-only baseline; --synthetic: real+synthetic mixed; --synthetic --pretrain: pretrain, then fine-tune."""
        from ..config import load_config
        from ..data.images import InputError
        from ..data.labeled_set import load_pairs, make_splits, require_valid
        from ..io import read_json, write_json
        from .dataset import MixedDataset, RealPairsDataset, SyntheticPairsDataset
        from .training import train_segmentation

        cfg = load_config(config, overrides or [])
        if pretrain and synthetic is None:
            raise InputError("--pretrain needs --synthetic PAIRSTORE_DIR")
        seg, d = cfg.segmentation, cfg.data
        seed = seg.seed if seed is None else seed
        report = require_valid(set_dir, d.max_image_pixels, d.max_instances)
        splits = make_splits(report.stems, d.n_train, d.n_val, d.n_test, d.split_seed, report.info.test)
        write_json(out / "splits.json", splits)
        train_pairs, val_pairs = load_pairs(report, splits["train"]), load_pairs(report, splits["val"])
        from .postprocess import resolve_min_area

        cfg = resolve_min_area(cfg, [m for _, m in train_pairs])
        typer.echo(f"{report.summary()}; training on {len(train_pairs)}, validating on {len(val_pairs)}")
        real = RealPairsDataset(train_pairs, seg.image_size, seg.target, seed=seed)
        if synthetic is not None:
            synth = SyntheticPairsDataset(synthetic, real.channels, seg.image_size, seg.target, seed=seed)
        if synthetic is not None and pretrain:
            pre = train_segmentation(cfg, synth, val_pairs, out / "pretrain", seg.pretrain_steps, seg.lr, seed)
            best = train_segmentation(
                cfg, real, val_pairs, out / "finetune", seg.finetune_steps, seg.finetune_lr, seed, init_from=pre
            )
        elif synthetic is not None:
            best = train_segmentation(
                cfg, MixedDataset(real, synth), val_pairs, out / "mixed", seg.finetune_steps, seg.finetune_lr, seed
            )
        else:
            best = train_segmentation(cfg, real, val_pairs, out / "baseline", seg.finetune_steps, seg.finetune_lr, seed)
        metrics = read_json(best.parent / "metrics.json")
        typer.echo(
            f"best checkpoint: {best} (val object F1@{cfg.evaluation.iou_threshold} = "
            f"{metrics['best_val_f1']:.3f} at step {metrics['best_step']})"
            if metrics["best_val_f1"] is not None
            else f"checkpoint: {best} (no validation images)"
        )
