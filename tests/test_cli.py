"""Command-line conventions that hold for every command."""

from __future__ import annotations

import pytest
import typer.main

from pipeline.cli import app


def _commands() -> dict:
    group = typer.main.get_command(app)
    return dict(group.commands)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_config_overrides_are_positional_everywhere(name):
    """A command that reads a config takes `section.key=value` overrides positionally (as the
    README documents), and shows no other way to pass them."""
    cmd = _commands()[name]
    params = {p.name: p for p in cmd.params}
    if "config" not in params:
        return
    overrides = params.get("overrides")
    positional = overrides is not None and overrides.param_type_name == "argument" and overrides.nargs == -1
    assert positional, f"{name}: no positional overrides"
    visible = [o for p in cmd.params if p.param_type_name == "option" and not p.hidden for o in p.opts]
    assert "--override" not in visible and "-o" not in visible
