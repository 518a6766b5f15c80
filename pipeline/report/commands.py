"""CLI: (re)build the report of a run folder; list the runs under runs/."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from ..cli import user_errors

    @app.command()
    @user_errors
    def report(
        run_dir: Path = typer.Argument(..., help="a run folder: runs/<set>/<run-id>"),
        partial: bool = typer.Option(False, "--partial", help="a run still going on: the arms it has finished so "
                                                              "far, into <run folder>/partial/"),
    ) -> None:
        """Write report.html (self-contained) and report.md into a run folder; with --partial, of the
        arms a running study has finished so far."""
        if partial:
            from .partial import build_partial_report

            html, md, done, expected = build_partial_report(run_dir)
            typer.echo(f"{done} of {expected} arms finished\nwrote {html}\nwrote {md}")
            return
        from .build import build_report

        html, md = build_report(run_dir)
        typer.echo(f"wrote {html}\nwrote {md}")

    @app.command()
    @user_errors
    def compare(
        run_a: Path = typer.Argument(..., help="the run before the change: runs/<set>/<run-id>"),
        run_b: Path = typer.Argument(..., help="the run with the change, same set and test images"),
        arm: list[str] = typer.Option(None, "--arm", help="only this arm (repeatable), e.g. joint:copypaste"),
    ) -> None:
        """Is each arm better in run B than in run A (a setting changed between them)? ΔF1 paired by
        seed, with the verdict's bootstrap interval over seeds and test images. Writes nothing."""
        from .compare import compare_runs, format_comparisons

        typer.echo(format_comparisons(run_a, run_b, compare_runs(run_a, run_b, arm or None)))

    @app.command()
    @user_errors
    def runs(
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="the runs folder (config runtime.runs_dir)"),
        set_name: str | None = typer.Option(None, "--set", help="only the runs of this set (its folder name under runs/)"),
    ) -> None:
        """List runs: set, date, config, synthesis methods, verdict, folder (* = runs/<set>/latest)."""
        from .runs import find_runs, format_runs

        if not runs_dir.is_dir():
            from ..data.images import InputError

            raise InputError(f"{runs_dir}: no such runs folder (run from the folder you ran synth-pretrain in, or pass --runs-dir)")
        typer.echo(format_runs(find_runs(runs_dir, set_name)))
