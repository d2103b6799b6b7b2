"""The participants' output, streamed as it is written: each new line of each log, with who wrote it.

``flwr run --stream`` shows the app's output as the run goes; ``run`` does the same for every
participant. The logs stay the record (a participant writes its own, so nothing is lost if ``run``
itself is killed, and no participant ever waits on ``run`` to read a pipe); this reads what each one
added since the last look, whole lines only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

from syft_flwr_gdrive.localrun.federation import Participant

# The logs' "2026-01-31 12:00:00,123" timestamps: the date is the same for the whole run, the time is kept.
_DATE = re.compile(r"^\d{4}-\d\d-\d\d (?=\d\d:\d\d:\d\d)")


def speaker(participant: Participant) -> str:
    """Who wrote a line, as the stream names it: the local part of the participant's email."""
    return participant.email.split("@", 1)[0]


class LogStream:
    """Reads the lines each participant's log gained since the last call."""

    def __init__(self, participants: Iterable[Participant]) -> None:
        self._participants = list(participants)
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}

    def new_lines(self, *, final: bool = False) -> Iterator[tuple[Participant, str]]:
        """``(participant, line)`` for every complete line added since the last call; ``final``: the last,
        unterminated line too (the process has ended)."""
        for participant in self._participants:
            path = participant.log_path
            try:
                with path.open("rb") as log:
                    log.seek(self._offsets.get(path, 0))
                    chunk = log.read()
            except OSError:
                continue
            self._offsets[path] = self._offsets.get(path, 0) + len(chunk)
            data = self._partial.pop(path, b"") + chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            if rest and not final:
                self._partial[path] = rest
            elif rest:
                lines.append(rest)
            for raw in lines:
                yield participant, _as_shown(raw.decode("utf-8", errors="replace"))


def _as_shown(line: str) -> str:
    """A line as a terminal would leave it: after its last carriage return (a progress bar's final state),
    without the date."""
    parts = [part for part in line.split("\r") if part.strip()]
    return _DATE.sub("", parts[-1] if parts else "")


def last_lines(participant: Participant, count: int = 15) -> list[str]:
    """The end of a participant's log: what it said last, usually why it stopped."""
    return [line for line in participant.log_text().splitlines() if line.strip()][-count:]
