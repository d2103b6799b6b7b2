"""Honest and hostile participants of one shared directory (the ``dir`` transport), for the attack scenarios.

Every actor is real: a ``DirectoryTransport`` and a ``Mailbox`` with its own keys on a real directory,
an OS process of another account, or a victim polling in a process of its own with bounded memory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from syft_flwr_gdrive.transport.directory import app_folder

REPO = Path(__file__).resolve().parents[2]
APP = "flwr/hostile-dir"
RUN = 1_790_000_000_000 << 20  # shaped like syftbox_server.new_run_id(): milliseconds, then 20 random bits
NOBODY = 65534  # another account of this machine (the attacker), for the scenarios that need two uids
VICTIM = REPO / "tests" / "reliability" / "_dir_victim.py"


def participant(
    root: Path,
    email: str,
    peers: Sequence[str],
    *,
    pins: Path | None = None,
    encryption: bool = True,
    app: str = APP,
) -> Mailbox:
    """An honest participant of ``app``: its own keys (pins kept in ``pins``, or in memory)."""
    sealer = Sealer(Identity.ephemeral(), PinStore(pins)) if encryption else None
    return Mailbox(DirectoryTransport(root, email), app, peers, Ledger(None), sealer=sealer)


class LookAlike(DirectoryTransport):
    """Eve's transport: a real participant whose folder is named like another's address, spelled otherwise
    (``DS@x.com``, ``d.s@gmail.com``, ``ds@googlemail.com``). It reads what is addressed to that address."""

    def __init__(self, root: Path, impersonated: str, folder: str) -> None:
        super().__init__(root, impersonated)
        self.home = self.root / folder

    def prepare(self, app: str, peers: Sequence[str]) -> None:  # Eve checks nothing about her own folder
        (self.home / app_folder(app)).mkdir(parents=True, exist_ok=True)


def look_alike(root: Path, impersonated: str, folder: str, peers: Sequence[str], *, app: str = APP) -> Mailbox:
    """Eve, as ``impersonated`` under the folder ``folder``, with keys of her own."""
    return Mailbox(
        LookAlike(root, impersonated, folder),
        app,
        peers,
        Ledger(None),
        sealer=Sealer(Identity.ephemeral(), PinStore(None)),
    )


def app_dir(root: Path, owner: str) -> Path:
    return root / owner / app_folder(APP)


# -- another account ------------------------------------------------------------------------------


@contextmanager
def directory_for_accounts() -> Iterator[Path]:
    """A shared directory every account of this machine may write in (as /tmp: sticky), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="sfg-shared-", dir="/tmp"))
    try:
        root.chmod(0o1777)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_nobody(script: str, *args: str, data: bytes = b"") -> subprocess.CompletedProcess:
    """Run a shell ``script`` (``$1``... are ``args``) as the account ``nobody``, ``data`` on its stdin."""
    return subprocess.run(
        ["/bin/sh", "-c", script, "sh", *args],
        input=data,
        capture_output=True,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd="/",
        timeout=30,
        check=True,
    )


def folders_writable_by_everyone(folder: Path) -> None:
    """A share where everyone may add files in everyone's folders (a misconfigured export, a group-writable
    tree); the files already there stay writable by their owners only (umask 022)."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o777)


# -- the victim, in a process of its own ----------------------------------------------------------


def victim(task: dict[str, Any], *, timeout: float = 60.0, memory_mib: int = 2048) -> dict[str, Any]:
    """Run ``_dir_victim.py`` on ``task`` with at most ``memory_mib`` of address space; its JSON answer.

    A victim that hangs is killed after ``timeout`` seconds and answers ``{"outcome": "hung"}``; one that
    dies (out of memory) ``{"outcome": "died", ...}``."""
    task = {**task, "memory_mib": memory_mib}
    try:
        proc = subprocess.run(
            [sys.executable, str(VICTIM), json.dumps(task)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "hung"}
    if proc.returncode != 0:
        return {"outcome": "died", "code": proc.returncode, "stderr": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
