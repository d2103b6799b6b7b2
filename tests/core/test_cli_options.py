"""The options that several commands share are declared once and reach every command as options."""

from __future__ import annotations

import click
import pytest
import typer

from syft_flwr_gdrive.cli.app import FAKE_DRIVE_OPTIONS
from syft_flwr_gdrive.cli.app import PARTICIPANT_OPTIONS
from syft_flwr_gdrive.cli.app import app


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
