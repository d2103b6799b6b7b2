"""Backends for the conformance suite (tests/live): the fake (default and strict profiles) and real Google Drive.

Real Drive needs two accounts (a third is optional), each an authorized-user token file:

    SYFT_FLWR_LIVE_A_TOKEN, SYFT_FLWR_LIVE_A_EMAIL     first account
    SYFT_FLWR_LIVE_B_TOKEN, SYFT_FLWR_LIVE_B_EMAIL     second account
    SYFT_FLWR_LIVE_C_TOKEN, SYFT_FLWR_LIVE_C_EMAIL     optional third account
    SYFT_FLWR_LIVE_WORKSPACE=1                         A and C are in one Google Workspace organisation

Without them the ``google`` backend is skipped with that reason. Everything a test creates is
deleted at the end (folders are named ``sfg-live-<random>``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for

ENV = {who: (f"SYFT_FLWR_LIVE_{who}_TOKEN", f"SYFT_FLWR_LIVE_{who}_EMAIL") for who in "ABC"}
FAKE_ACCOUNTS = {"A": "a.live@gmail.com", "B": "b.live@example.com", "C": "c.live@workspace.example"}


def google_missing() -> str | None:
    missing = [name for who in "AB" for name in ENV[who] if not os.environ.get(name)]
    return f"real Google Drive needs {', '.join(missing)} (see tests/helpers/live_backends.py)" if missing else None


@dataclass
class Backend:
    """Accounts on one Drive: ``api("A")``, ``email("A")``, ``transport("A")``; cleans up after itself."""

    name: str
    emails: dict[str, str]
    make_api: Callable[[str], DriveApi]
    lag: float  # how long to wait for eventual consistency before calling something missing
    strict: bool = False
    server: FakeDriveServer | None = None
    created: list[tuple[str, str]] = field(default_factory=list)  # (who, file id)
    _apis: dict[str, DriveApi] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.server is None

    def has(self, who: str) -> bool:
        return who in self.emails

    def email(self, who: str) -> str:
        return self.emails[who]

    def api(self, who: str) -> DriveApi:
        if who not in self._apis:
            self._apis[who] = self.make_api(who)
        return self._apis[who]

    def transport(self, who: str) -> DriveTransport:
        return DriveTransport(self.api(who), self.email(who))

    def track(self, who: str, file_id: str) -> str:
        self.created.append((who, file_id))
        return file_id

    def folder(self, who: str, properties: dict[str, str] | None = None, parent: str | None = None) -> str:
        made = self.api(who).create_folder(
            f"sfg-live-{uuid.uuid4().hex[:8]}", parent_id=parent, properties=properties, fields="id"
        )
        return self.track(who, str(made["id"]))

    def eventually(self, probe: Callable[[], Any], what: str, timeout: float | None = None) -> tuple[Any, float]:
        """``probe()`` until it returns something truthy; (result, seconds it took)."""
        started = time.monotonic()
        limit = timeout if timeout is not None else max(5.0, 4 * self.lag)
        while True:
            got = probe()
            if got:
                return got, time.monotonic() - started
            if time.monotonic() - started > limit:
                raise AssertionError(f"{what}: not seen within {limit:.0f}s on {self.name}")
            time.sleep(0.2 if not self.live else 1.0)

    def cleanup(self) -> None:
        for who, file_id in reversed(self.created):
            try:
                self.api(who).delete(file_id, missing_ok=True)
            except DriveError:
                pass


def fake_backend(profile: str) -> Iterator[Backend]:
    with FakeDriveServer(profile=profile) as server:
        # The default fake treats gmail spellings as different accounts: use the canonical ones there.
        emails = {k: (v if profile == "strict" else canonical_email(v)) for k, v in FAKE_ACCOUNTS.items()}
        quick = RetryPolicy(initial_wait=0.05, max_wait=0.5, max_total=30.0)
        backend = Backend(
            f"fake-{profile}",
            emails,
            lambda who: drive_api_for(server.url, emails[who], retry=quick),
            lag=server.faults.list_lag if server.faults.lag_all or server.faults.list_lag else 0.5,
            strict=profile == "strict",
            server=server,
        )
        try:
            yield backend
        finally:
            backend.cleanup()


def google_backend() -> Iterator[Backend]:
    from syft_flwr_gdrive.transport.drive.auth import load_credentials

    reason = google_missing()
    if reason:
        pytest.skip(reason)
    emails = {
        who: os.environ[ENV[who][1]].strip().lower()
        for who in "ABC"
        if os.environ.get(ENV[who][1]) and os.environ.get(ENV[who][0])
    }

    def make_api(who: str) -> DriveApi:
        return DriveApi(load_credentials(token_file=os.environ[ENV[who][0]]))

    backend = Backend("google", emails, make_api, lag=15.0, strict=True)
    try:
        yield backend
    finally:
        backend.cleanup()
