"""Housekeeping through the transport contract: remove this participant's leftover message files."""

from __future__ import annotations

from dataclasses import dataclass

from syft_flwr_gdrive.transport.contract import Transport


@dataclass(frozen=True)
class CleanResult:
    found: int
    deleted: int
    names: tuple[str, ...]


def clean(transport: Transport, *, app: str | None = None, dry_run: bool = False) -> CleanResult:
    """Delete every message this account stored (of one app, or of all apps).

    Only the account's own messages are touched (``Transport.my_postings``): the
    storage may allow nothing else, and peers clean their own.
    """
    postings = transport.my_postings(app)
    names = tuple(p.name or p.handle for p in postings)
    if dry_run or not postings:
        return CleanResult(len(postings), 0, names)
    transport.delete([p.handle for p in postings])
    return CleanResult(len(postings), len(postings), names)
