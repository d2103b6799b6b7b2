"""Housekeeping on Drive: remove this participant's leftover message files."""

from __future__ import annotations

from dataclasses import dataclass

from syft_flwr_gdrive.drive import layout
from syft_flwr_gdrive.drive.transport import DriveTransport


@dataclass(frozen=True)
class CleanResult:
    found: int
    deleted: int
    names: tuple[str, ...]


def clean(transport: DriveTransport, *, app: str | None = None, dry_run: bool = False) -> CleanResult:
    """Delete every message file this account owns (of one app, or of all apps).

    Only files carrying our metadata are touched, and only the account's own:
    Drive allows nothing else, and peers clean their own.
    """
    files = transport.my_message_files()
    if app is not None:
        wanted = layout.app_hash(app)
        files = [f for f in files if (f.get("properties") or {}).get(layout.P_APP) == wanted]
    names = tuple(str(f.get("name", f["id"])) for f in files)
    if dry_run or not files:
        return CleanResult(len(files), 0, names)
    transport.delete([str(f["id"]) for f in files])
    return CleanResult(len(files), len(files), names)
