"""Thin command-line interface. The work happens in the stage modules.

Each stage package that has commands exposes ``register(app)`` in a ``commands`` module; adding a
stage's commands is one line in :data:`COMMAND_MODULES`. Heavy imports happen inside commands, so
``synth-pretrain --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from functools import wraps

import typer

from .errors import USER_ERRORS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    help="Synthetic (mask, image) pairs from ~100 labeled images -> pretrain -> fine-tune -> object-level report.",
)

COMMAND_MODULES = [
    "pipeline.data.commands",
    "pipeline.masks.commands",
    "pipeline.generators.commands",
    "pipeline.segmentation.commands",
    "pipeline.evaluation.commands",
    "pipeline.quality.commands",
    "pipeline.report.commands",
    "pipeline.export.commands",
    "flows.commands",
]


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, no traceback, non-zero exit."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def user_errors(fn):
    """Turn the pipeline's user-facing errors into one-line messages (no traceback)."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            lines = str(e).splitlines() or ["invalid input"]
            for line in lines[:-1]:
                typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
            fail(lines[-1])
        except FileNotFoundError as e:
            fail(f"{e.filename}: file not found")
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume", 130)

    return wrapper


def _register_all() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a local run starts Prefect's temporary server; on a busy 2-core machine it needs longer than 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    app(prog_name="synth-pretrain")


if __name__ == "__main__":
    sys.exit(main())
