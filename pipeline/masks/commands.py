"""CLI: build a shape bank from a labeled set; write random-placement masks (+ their statistics)."""

from __future__ import annotations

from pathlib import Path

import typer

# Before every command took positional `section.key=value` overrides, these two took -o/--override.
# Still accepted (hidden) so existing scripts keep working; positional overrides win on conflict.
LEGACY_OVERRIDE = typer.Option(
    None, "--override", "-o", hidden=True, help="deprecated: pass section.key=value positionally"
)


def register(app: typer.Typer) -> None:
    from ..cli import fail, user_errors

    def _config(config: str, overrides: list[str] | None, legacy: list[str] | None, n_train: int | None):
        from ..config import load_config

        cfg = load_config(config, [*(legacy or []), *(overrides or [])])
        if n_train is not None:
            cfg.data.n_train = n_train
        return cfg

    def _validated_training_masks(set_dir: Path, cfg):
        """Validate the set (every problem printed, one per line) and load its training masks."""
        from ..data.labeled_set import validate_set
        from .shape_bank import training_masks

        report = validate_set(set_dir, cfg.data.max_image_pixels, cfg.data.max_instances)
        if not report.ok:
            for err in report.errors:
                typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            fail(f"{set_dir}: {len(report.errors)} problem(s) found", 1)
        return training_masks(set_dir, cfg.data)

    @app.command("shape-bank")
    @user_errors
    def shape_bank(
        set_dir: Path = typer.Argument(..., help="labeled-set folder (images/, masks/)"),
        out_dir: Path = typer.Argument(..., help="folder to write the shape bank into"),
        config: str = typer.Option("default", help="config name (configs/) or YAML path"),
        n_train: int = typer.Option(None, help="real training masks to use (default: data.n_train)"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value config overrides"),
        legacy: list[str] | None = LEGACY_OVERRIDE,
    ) -> None:
        """Measure every object of the training masks and store their shapes and statistics."""
        from .shape_bank import build_shape_bank

        cfg = _config(config, overrides, legacy, n_train)
        stems, masks = _validated_training_masks(set_dir, cfg)
        bank = build_shape_bank(masks, cfg.shape_bank, stems)
        bank.save(out_dir)
        typer.echo(f"shape bank: {len(bank)} shapes from {len(stems)} training masks -> {out_dir}")

    @app.command("masks")
    @user_errors
    def masks(
        set_dir: Path = typer.Option(..., "--set", help="labeled-set folder the shapes come from"),
        out: Path = typer.Option(..., "--out", help="folder for the mask store (+ shape_bank/, stats/)"),
        count: int = typer.Option(None, help="number of masks (default: masks.count)"),
        size: int = typer.Option(None, help="square mask side in pixels (default: masks.size)"),
        seed: int = typer.Option(None, help="random stream (default: masks.seed)"),
        workers: int = typer.Option(None, help="processes (default: masks.workers)"),
        config: str = typer.Option("default", help="config name (configs/) or YAML path"),
        n_train: int = typer.Option(None, help="real training masks to use (default: data.n_train)"),
        shard_size: int = typer.Option(500, help="masks per shard (the unit of resume)"),
        stats: bool = typer.Option(False, "--stats", help="also write real-vs-synthetic statistics and plots"),
        source: str = typer.Option("placement", help="placement (shape-bank shapes on empty canvases) or realmask "
                                                     "(the training masks, augmented)"),
        overrides: list[str] | None = typer.Argument(None, help="section.key=value config overrides"),
        legacy: list[str] | None = LEGACY_OVERRIDE,
    ) -> None:
        """Synthetic masks from the training split (random placement of its shapes, or its own masks
        augmented), as a resumable MaskStore."""
        from .placement import check_store_settings, store_settings, write_placement_masks
        from .shape_bank import build_shape_bank

        if source not in ("placement", "realmask"):
            fail(f"--source {source}: this command makes placement or realmask masks (the run makes the others)")

        cfg = _config(config, overrides, legacy, n_train)
        updates = {k: v for k, v in {"count": count, "size": size, "seed": seed, "workers": workers}.items() if v is not None}
        mcfg = cfg.masks.model_copy(update=updates)
        type(mcfg).model_validate(mcfg.model_dump())  # re-check the command-line values
        stems, real = _validated_training_masks(set_dir, cfg)
        bank = build_shape_bank(real, cfg.shape_bank, stems)
        if source == "realmask":
            from .realmask import write_realmask_masks

            store = write_realmask_masks(real, out, mcfg, mcfg.count, mcfg.seed, bank.min_area, shard_size=shard_size,
                                         progress=cfg.runtime.progress)
            typer.echo(f"realmask masks: {len(store)} masks of {mcfg.size}x{mcfg.size} -> {out}")
            if stats:
                paths = write_stats_report(real, store, mcfg.size, out / "stats", min_area=bank.min_area)
                typer.echo(f"statistics: {paths['table']}, {paths['plot']}, {paths['grid']}")
            return
        # refuse a folder of other masks before anything in it is replaced (its shape bank included)
        check_store_settings(out, store_settings(bank, mcfg, mcfg.count, mcfg.seed, shard_size))
        bank.save(out / "shape_bank")
        store = write_placement_masks(
            bank, out, mcfg, mcfg.count, mcfg.seed, shard_size=shard_size, workers=mcfg.workers,
            progress=cfg.runtime.progress,
        )
        typer.echo(f"placement masks: {len(store)} masks of {mcfg.size}x{mcfg.size} -> {out}")
        if stats:
            paths = write_stats_report(real, store, mcfg.size, out / "stats", min_area=bank.min_area)
            table = paths["table"]
            typer.echo(f"statistics: {table}, {paths['plot']}, {paths['grid']}")


def write_stats_report(real_masks, store, canvas: int, out_dir: Path, min_area: int = 1, max_synthetic: int = 2000) -> dict:
    """KS table (csv) + histogram plot + example grid for real training masks vs a MaskStore."""
    from ..io import write_text
    from .stats import compare_mask_stats, plot_mask_grid, plot_mask_stats, real_crops

    synthetic = []
    for _, arr in store.iter_shards():
        synthetic.extend(arr[: max_synthetic - len(synthetic)])
        if len(synthetic) >= max_synthetic:
            break
    table = compare_mask_stats(real_masks, synthetic, canvas, min_area=min_area)
    out_dir = Path(out_dir)
    write_text(out_dir / "mask_stats.csv", table.to_csv(index=False))
    plot = plot_mask_stats(real_masks, synthetic, canvas, out_dir / "mask_stats.png", min_area=min_area)
    grid = plot_mask_grid(real_crops(real_masks, canvas, 1, seed=1), synthetic, out_dir / "mask_grid.png")
    return {"table": out_dir / "mask_stats.csv", "plot": plot, "grid": grid, "frame": table}
