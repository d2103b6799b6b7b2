"""The options that several commands share are declared once and reach every command as options."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import click
import pytest
import typer

from syft_flwr_gdrive.cli.app import app
from syft_flwr_gdrive.cli.shared_options import FAKE_DRIVE_OPTIONS
from syft_flwr_gdrive.cli.shared_options import PARTICIPANT_OPTIONS
from syft_flwr_gdrive.localrun.runner import FederationKnobs


def _options(command: str) -> dict[str, click.Option]:
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    found = group.commands[command]
    return {p.name: p for p in found.params if isinstance(p, click.Option) and p.name}


@pytest.mark.parametrize("command", ["server", "client"])
def test_participant_commands_take_the_shared_options_and_a_required_project(command):
    options = _options(command)
    assert set(PARTICIPANT_OPTIONS) <= set(options)
    assert options["project"].required and options["project"].opts == ["--project", "-p"]
    assert options["poll_interval"].type.name == "float" and options["verbose"].is_flag


@pytest.mark.parametrize("command", ["run", "demo"])
def test_local_federation_commands_take_every_fake_drive_knob(command):
    options = _options(command)
    assert set(FAKE_DRIVE_OPTIONS) <= set(options)
    assert options["seed"].type.name == "integer" and options["drive_profile"].default == "default"


@pytest.mark.parametrize("command", ["run", "demo"])
def test_the_fake_drive_knobs_are_the_local_federations_with_its_defaults(command):
    """The command line declares FederationKnobs' fields as options; both must say the same defaults."""
    knobs = {f.name: f.default for f in fields(FederationKnobs)}
    options = _options(command)
    assert tuple(knobs) == FAKE_DRIVE_OPTIONS
    assert {name: options[name].default for name in knobs} == knobs


CLI = Path(__file__).resolve().parents[2] / "syft_flwr_gdrive" / "cli"


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_options_are_declared_one_way_as_annotated_aliases(path):
    """Not as typer.Option(...) defaults: one style, which typer, --help and mypy all read."""
    defaults = [
        default
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
        for default in [*node.args.defaults, *node.args.kw_defaults]
    ]
    assert [ast.unparse(d) for d in defaults if d is not None and "typer." in ast.unparse(d)] == []
