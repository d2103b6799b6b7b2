"""What each datasite answered, round by round: the truth behind a run's exit code and report.

Flower's strategies drop error replies quietly (a histogram of two error
replies is "2/2 results" and an empty aggregate). The grid records here every
reply, error reply, missing reply and request to an excluded datasite, so the
server can log one WARNING per error, print a summary, and write it all into
the CLI's JSON and ``report.json``.

Rounds are Flower's: the instruction's ``group_id`` (legacy strategies), else
the ``server-round`` a Message-API strategy puts in the instruction's config.
An app that sends its own messages without either (a query app: Kaplan-Meier,
federated analytics) has its exchanges numbered instead, one per push, in the
order they were sent, so three queries are three rounds, not one "-".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flwr.app import Message

NO_ROUND = "-"
# Our clients write "ClientApp raised KeyError"; Flower's SuperNode writes "... raised an exception: KeyError ...".
_ERROR_TYPE = re.compile(r"raised (?:an exception:?\s*)?([A-Za-z_][A-Za-z0-9_.]{0,99})")


def round_of(message: Message) -> str:
    """Flower's round of an instruction: its group id, or the ``server-round`` in its config."""
    if message.metadata.group_id:
        return message.metadata.group_id
    if message.has_content():
        for record in message.content.config_records.values():
            value = record.get("server-round")
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
    return NO_ROUND


def error_type(message: Message) -> str:
    """The exception type named by an error reply (peer-written text: only a safe identifier is kept)."""
    match = _ERROR_TYPE.search(message.error.reason or "")
    return match.group(1) if match else f"error code {int(message.error.code)}"


@dataclass
class SiteRound:
    replies: int = 0
    errors: int = 0
    missing: int = 0
    excluded: int = 0
    error_types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replies": self.replies,
            "errors": self.errors,
            "missing": self.missing,
            "excluded": self.excluded,
            "error_types": dict(self.error_types),
        }


class Tally:
    """Per round, per datasite: replies, error replies (by type), missing replies, excluded requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: dict[str, dict[str, SiteRound]] = {}
        self._exchanges = 0  # pushes of round-less requests so far
        self._exchange_of: dict[str, str] = {}  # message id of a round-less request -> its exchange's number

    def begin_push(self, messages: Iterable[Message]) -> None:
        """Number the round-less requests of one push (they already carry their message ids)."""
        roundless = [m.metadata.message_id for m in messages if round_of(m) == NO_ROUND]
        if roundless:
            with self._lock:
                self._exchanges += 1
                self._exchange_of.update(dict.fromkeys(roundless, str(self._exchanges)))

    def round_of(self, message: Message) -> str:
        """The round a request counts in: Flower's (``round_of``), else the number of the exchange it was sent in."""
        found = round_of(message)
        if found == NO_ROUND:
            with self._lock:
                return self._exchange_of.get(message.metadata.message_id, NO_ROUND)
        return found

    def _site(self, rnd: str, site: str) -> SiteRound:
        return self._rounds.setdefault(rnd, {}).setdefault(site, SiteRound())

    def reply(self, rnd: str, site: str, kind: str | None = None) -> None:
        """A reply arrived; ``kind`` is the error type of an error reply, None for a good one."""
        with self._lock:
            entry = self._site(rnd, site)
            entry.replies += 1
            if kind is not None:
                entry.errors += 1
                entry.error_types[kind] = entry.error_types.get(kind, 0) + 1

    def missing(self, rnd: str, site: str) -> None:
        with self._lock:
            self._site(rnd, site).missing += 1

    def excluded(self, rnd: str, site: str) -> None:
        with self._lock:
            self._site(rnd, site).excluded += 1

    def rounds(self) -> list[dict[str, Any]]:
        """JSON-ready: ``[{"round": "1", "datasites": {email: {...}}}, ...]`` in the order rounds began."""
        with self._lock:
            return [
                {"round": rnd, "datasites": {site: entry.as_dict() for site, entry in sorted(sites.items())}}
                for rnd, sites in self._rounds.items()
            ]

    def summary(self) -> dict[str, Any]:
        """Totals over the run, with error types counted."""
        totals: dict[str, Any] = {"replies": 0, "errors": 0, "missing": 0, "excluded": 0, "error_types": {}}
        with self._lock:
            for sites in self._rounds.values():
                for entry in sites.values():
                    for key in ("replies", "errors", "missing", "excluded"):
                        totals[key] += getattr(entry, key)
                    for kind, n in entry.error_types.items():
                        totals["error_types"][kind] = totals["error_types"].get(kind, 0) + n
        return totals
