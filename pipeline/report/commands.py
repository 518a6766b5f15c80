"""CLI: (re)build the report of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command()
    @user_errors
    def report(run_dir: Path = typer.Argument(..., help="a run folder: runs/<set>/<run-id>")) -> None:
        """Write report.html (self-contained) and report.md into a run folder."""
        from .build import build_report

        html, md = build_report(run_dir)
        typer.echo(f"wrote {html}\nwrote {md}")
