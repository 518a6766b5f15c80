"""CLI: train a mask-to-image generator on a labeled set; generate synthetic pairs from masks."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command("train-generator")
    @user_errors
    def train_generator_cmd(
        set_dir: Path = typer.Option(..., "--set", help="labeled-set folder (images/, masks/)"),
        model: str = typer.Option("spade", "--model", help="spade | ugatit | pix2pix"),
        out: Path = typer.Option(..., "--out", help="run folder; an existing one is resumed"),
        config: str = typer.Option("default", "--config", help="config name (smoke/default/full) or YAML path"),
        judge: Path = typer.Option(None, "--judge", help="a finished real_only arm folder (metrics.json, best.pt) of "
                                   "this set: train to its fidelity plateau on the validation masks (generator.patience); "
                                   "without it, generator.steps steps"),
        overrides: list[str] = typer.Argument(None, help="section.key=value overrides"),
    ) -> None:
        """Train SPADE or U-GAT-IT on the set's train split (resumes if --out holds a run)."""
        import torch

        from ..config import load_config
        from ..data.labeled_set import SetInvalid, load_pairs, validate_set
        from ..data.splits import splits_for
        from ..device import pick_device
        from .training_loop import train_generator

        cfg = load_config(config, [*(overrides or []), f"generator.model={model}"])
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        report = validate_set(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
        if not report.ok:
            raise SetInvalid(report)
        d = cfg.data
        splits = splits_for(report, d)
        pairs = load_pairs(report, splits["train"])
        val = load_pairs(report, splits["val"]) if judge is not None else None
        typer.echo(f"{report.summary()}; training {model} on {len(pairs)} train pairs"
                   + (f", judged by {judge} on {len(val)} validation pairs" if judge is not None else ""))
        final = train_generator(cfg, pairs, out, device=pick_device(cfg.runtime.device), progress=cfg.runtime.progress,
                                judge=judge, val_pairs=val)
        typer.echo(f"generator checkpoint: {final}")

    @app.command("generate")
    @user_errors
    def generate_cmd(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="final.pt of train-generator"),
        masks_dir: Path = typer.Option(..., "--masks", help="MaskStore folder"),
        out: Path = typer.Option(..., "--out", help="PairStore folder; finished shards are kept"),
        count: int = typer.Option(None, "--count", help="pairs to write (default: generation.count)"),
        styles: int = typer.Option(None, "--styles", help="images per mask (default: generation.styles_per_mask)"),
        config: str = typer.Option("default", "--config", help="config name or YAML path"),
        overrides: list[str] = typer.Argument(None, help="section.key=value overrides"),
    ) -> None:
        """Generate synthetic (image, mask) pairs from a mask store with a trained generator."""
        import torch

        from ..config import load_config
        from ..data.store import MaskStore
        from ..device import pick_device
        from ..errors import InputError
        from .generate import generate_pairs

        extra = [f"generation.count={count}"] if count is not None else []
        extra += [f"generation.styles_per_mask={styles}"] if styles is not None else []
        cfg = load_config(config, [*(overrides or []), *extra])
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        if not (masks_dir / "manifest.parquet").is_file() and not any(masks_dir.glob("shard_*.parquet")):
            raise InputError(f"{masks_dir}: not a mask store (no manifest.parquet or shard pieces)")
        store = generate_pairs(
            checkpoint, MaskStore(masks_dir), out, cfg.generation,
            device=pick_device(cfg.runtime.device), progress=cfg.runtime.progress,
        )
        typer.echo(f"wrote {len(store)} synthetic pairs to {out}")
