"""CLI: validate a labeled set; render the procedural demo set."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import fail, user_errors

    @app.command()
    @user_errors
    def validate(
        path: Path = typer.Argument(..., help="a labeled-set folder (images/ + masks/, or images/ + COCO / LabelMe / CVAT labels; optional unlabeled/, set.yaml)"),
        max_pixels: int = typer.Option(40_000_000, help="refuse images with more pixels than this"),
        max_instances: int = typer.Option(65_535, help="refuse masks with more objects than this"),
        show_notes: bool = typer.Option(True, help="list ignored files"),
    ) -> None:
        """Check a labeled set; report every problem at once, one line per file."""
        from .labeled_set import validate_set

        report = validate_set(path, max_pixels=max_pixels, max_instances=max_instances)
        if show_notes:
            for note in report.notes:
                typer.echo(f"note: {note}")
        if not report.ok:
            for err in report.errors:
                typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            fail(f"{path}: {len(report.errors)} problem(s) found", 1)
        typer.secho(f"ok: {report.summary()}", fg=typer.colors.GREEN)

    @app.command("demo-data")
    @user_errors
    def demo_data(
        out: Path = typer.Argument(..., help="folder to write the procedural demo set into"),
        n: int = typer.Option(160, help="number of images"),
        size: int = typer.Option(256, help="image side in pixels"),
        seed: int = typer.Option(0),
    ) -> None:
        """Render the procedural demo set (conveyor-belt fragments with exact instance masks)."""
        from .demo import render_demo_set

        render_demo_set(out, n_images=n, size=size, seed=seed)
        typer.echo(f"wrote procedural demo set: {out} ({n} images, {size}x{size})")
