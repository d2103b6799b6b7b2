"""The options several commands take, each declared once, as an ``Annotated`` alias (typer's own style).

A command lists the aliases it takes as parameters, so typer, ``--help`` and mypy all read one plain
signature. Options of a single command are declared the same way in that command's module. A default
goes in the signature (typer allows no default inside ``Annotated``).

Two groups travel together:
- ``server`` and ``client`` take the participant options and gather them in ``ParticipantOptions``;
- ``run`` and ``demo`` take the fake Drive knobs, one per field of ``localrun``'s ``FederationKnobs``,
  with its defaults (``tests/core/test_cli_options.py`` keeps names and defaults equal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import fields
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

# -- who I am and where Drive is ---------------------------------------------------------------------------

Email = Annotated[str | None, typer.Option(help="This participant's email; default: $SYFTBOX_EMAIL.")]
DriveUrl = Annotated[
    str | None, typer.Option(help="Drive API base URL, e.g. the fake Drive's; default: real Google Drive.")
]
# The same option worded for `doctor` and `clean` (their help has always read so).
HousekeepingDriveUrl = Annotated[
    str | None, typer.Option(help="Drive API base URL (the fake Drive's); default: real Google Drive.")
]

# -- server and client ------------------------------------------------------------------------------------

ProjectDir = Annotated[Path, typer.Option("--project", "-p", help="Flower project directory (holds pyproject.toml).")]
Report = Annotated[
    Path | None,
    typer.Option(help="Also write the JSON report printed at the end (how the run went, Drive calls) here."),
]
PollInterval = Annotated[
    float | None, typer.Option(help="Seconds between polls; default $SYFT_FLWR_POLL_INTERVAL or 3.0.")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v")]


@dataclass(frozen=True)
class ParticipantOptions:
    """Who runs a server or client, on which project, against which Drive, polling how often."""

    project: Path
    report: Path | None = None
    email: str | None = None
    drive_url: str | None = None
    poll_interval: float | None = None
    verbose: bool = False

    def settings_overrides(self) -> dict[str, Any]:
        return settings_overrides(self.email, self.drive_url, self.poll_interval)

    def publish(self, report: dict[str, Any]) -> None:
        """Print the run's JSON report, and write it where --report says."""
        text = json.dumps(report, indent=2, sort_keys=True)
        if self.report:
            self.report.write_text(text + "\n", encoding="utf-8")
        typer.echo(text)


PARTICIPANT_OPTIONS = tuple(f.name for f in fields(ParticipantOptions))


def settings_overrides(
    email: str | None, drive_url: str | None = None, poll_interval: float | None = None
) -> dict[str, Any]:
    """The options as ``Settings`` fields by name: only those given, so the environment fills the rest."""
    overrides: dict[str, Any] = {}
    if email:
        overrides["email"] = email
    if poll_interval is not None:
        overrides["poll_interval"] = poll_interval
    if drive_url:
        overrides["transport_options"] = {"drive_url": drive_url}
    return overrides


# -- run and demo: the local federation on the embedded fake Drive ------------------------------------------

FakePollInterval = Annotated[
    float, typer.Option(help="Seconds between Drive polls (the real default is 3.0; the fake answers fast).")
]
MsgTimeout = Annotated[float, typer.Option(help="Seconds the server waits for a round's replies.")]
LatencyMs = Annotated[float, typer.Option(help="Injected latency per Drive call, in milliseconds.")]
ErrorRate = Annotated[float, typer.Option(help="Fraction of Drive calls answered with 429/403/500/503.")]
DropRate = Annotated[float, typer.Option(help="Fraction of Drive connections dropped without an answer.")]
Seed = Annotated[int, typer.Option(help="Seed of the injected faults.")]
DriveProfile = Annotated[
    str,
    typer.Option(
        help="Fake Drive profile: 'default' or 'strict' (only what Drive "
        "documents: lag on every change, write limit, hidden owner "
        "emails, ...)."
    ),
]
Timeout = Annotated[float, typer.Option(help="Give up after this many seconds.")]
LocalTransport = Annotated[
    str, typer.Option(help="'p2p': an embedded fake Google Drive; 'dir': a shared directory (--dir).")
]
SharedDir = Annotated[
    Path | None, typer.Option("--dir", help="The dir transport's shared directory; default OUT/shared.")
]

FAKE_DRIVE_OPTIONS = (
    "poll_interval",
    "msg_timeout",
    "latency_ms",
    "error_rate",
    "drop_rate",
    "seed",
    "drive_profile",
    "timeout",
    "transport",
    "shared_dir",
)
