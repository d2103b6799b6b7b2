"""``FakeDriveServer``: the one object tests and demos hold.

Starts the store, the fault engine, the routes and the threaded HTTP server on
127.0.0.1, and stops them again without hanging (idle keep-alive connections are shut,
threads joined with timeouts). Point the real ``googleapiclient`` at :attr:`url`.
"""

from __future__ import annotations

import os
import threading

from .dispatch import Api
from .faults import PROFILES
from .faults import FaultConfig
from .faults import FaultEngine
from .httpd import FakeHTTPServer
from .oauth import AccessTokens
from .oauth import fake_token_for
from .records import now
from .store import Store


def with_profile(faults: FaultConfig | None, profile: str) -> FaultConfig:
    """``faults`` with the profile's settings wherever ``faults`` keeps the default value."""
    if profile not in PROFILES:
        raise ValueError(f"unknown Drive profile {profile!r}; choose one of {sorted(PROFILES)}")
    if faults is None:
        return FaultConfig.for_profile(profile)
    defaults = FaultConfig()
    for name, value in PROFILES[profile].items():
        if getattr(faults, name) == getattr(defaults, name):
            setattr(faults, name, value)
    return faults.validate()


class FakeDriveServer:
    """An in-process fake of the Google Drive v3 REST API.

    Args:
        host, port: where to listen (port 0 picks a free port).
        data_dir: keep files and metadata here (a restarted server sees them again);
            None uses a temporary directory removed by :meth:`stop`.
        faults: initial :class:`FaultConfig` (live: change ``server.faults`` at any time).
        strict_tokens: accept only tokens registered with :meth:`add_user`; otherwise any
            ``fake:<email>`` bearer token is that user.
        body_timeout: seconds a request body may stall before the connection is dropped.
        idle_timeout: seconds an idle keep-alive connection is kept open.
        profile: ``"default"`` or ``"strict"`` (only what Drive's documentation promises: lag on
            every change, a write limit, hidden owner emails, ... see ``faults.PROFILES``). Its
            settings fill the fields that ``faults`` leaves at their defaults.
        access_token_ttl: seconds an access token issued by ``POST /token`` lives (Google's hour
            by default); a call with an expired one answers Drive's 401 and the client refreshes.
            ``fake:`` tokens never expire.
        access_token_accepted_for: seconds the fake accepts an issued access token (default: its
            whole ``access_token_ttl``). Shorter, tokens stop working before their announced expiry,
            so clients meet the 401 -> refresh -> resend path (see ``oauth.AccessTokens``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | os.PathLike | None = None,
        faults: FaultConfig | None = None,
        strict_tokens: bool = False,
        body_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        profile: str = "default",
        access_token_ttl: float = 3600.0,
        access_token_accepted_for: float | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.data_dir = data_dir
        self.profile = profile
        self._engine = FaultEngine(with_profile(faults, profile))
        self._access_tokens = AccessTokens(access_token_ttl, access_token_accepted_for)
        self.strict_tokens = strict_tokens
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self._pending_users: dict[str, tuple[str, str | None]] = {}
        self.store: Store | None = None
        self.api: Api | None = None
        self._httpd: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeDriveServer:
        if self._httpd is not None:
            return self
        self.store = Store(self.data_dir, faults=self._engine)
        self.api = Api(self.store, self._engine, self.strict_tokens, self._access_tokens)
        self.api.tokens.update(self._pending_users)
        for email, _ in set(self._pending_users.values()):
            self.store.ensure_user(email)
        try:
            self._httpd = FakeHTTPServer(
                (self.host, self._port), self.api, self._engine, self.body_timeout, self.idle_timeout
            )
        except BaseException:
            self.store.close()
            raise
        self._engine.halt_waits(False)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-drive-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close connections, join threads (bounded by ``timeout``), close the store."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        self._engine.halt_waits()  # a request waiting on its link ends now, not after its slice
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.api is not None:
            self.api.sessions.close_all()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> FakeDriveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ facts

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL for the discovery document's ``rootUrl``, e.g. ``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def add_user(self, email: str, token: str | None = None, app: str | None = None) -> str:
        """Register ``email`` with a token (default ``fake_token_for(email, app)``); returns the token.

        ``app`` is the OAuth app the token stands for (``appProperties`` are private per app)."""
        email = email.strip().lower()
        token = token or fake_token_for(email, app)
        self._pending_users[token] = (email, app)
        if self.api is not None and self.store is not None:
            self.api.tokens[token] = (email, app)
            self.store.ensure_user(email)
        return token

    @property
    def access_token_ttl(self) -> float:
        """Seconds an access token issued by the token endpoint lives."""
        return self._access_tokens.ttl

    def revoke_refresh_tokens(self, email: str) -> int:
        """Revoke ``email``'s refresh token, as when a user removes the app's access in their Google account.

        From now on ``POST /token`` answers ``invalid_grant`` ("Token has been expired or revoked.")
        for it, and the access tokens it was issued answer 401. Its ``fake:`` tokens keep working
        (they stand for no grant). Returns how many live access tokens ended."""
        email = email.strip().lower()
        if self.store is not None:
            email = self.store.account(email)
        return self._access_tokens.revoke(email)

    @property
    def faults(self) -> FaultConfig:
        """The live fault configuration: mutate it (``server.faults.error_rate = 0.2``) or replace it."""
        return self._engine.config

    @faults.setter
    def faults(self, cfg: FaultConfig) -> None:
        self._engine.config = cfg

    def reset_quota(self) -> None:
        self._engine.reset_quota()

    def owned_files(self, email: str, folders: bool = False) -> list[dict]:
        """What ``email`` owns on this Drive now (File resources as the owner sees them, oldest first;
        trashed files and, unless ``folders``, folders left out).

        For tests that ask what *exists*: read from the store, so it is current and consistent whatever the
        profile, while ``files.list`` lags under ``strict`` (a file changed within ``list_lag`` may be missing,
        or still listed after its deletion; two listings may disagree). No fault applies, no request counts."""
        if self.store is None:
            raise RuntimeError("server is not running")
        return self.store.owned_by(email, folders)

    def listings_settle_in(self) -> float:
        """Seconds until every ``files.list`` shows the current state, if nothing changes meanwhile (0.0:
        it does now): ``faults.list_lag`` after the last change. A test that asks what a participant's
        listing shows (rather than what exists) waits this out first."""
        lag = float(self.faults.list_lag)
        last = self.store.last_change_time() if self.store is not None else None
        if lag <= 0 or last is None:
            return 0.0
        return max(0.0, last + lag - now())

    def stats(self) -> dict:
        """Requests by ``"METHOD route"``, by user and by status; injected faults; store size."""
        if self.api is None:
            return {"requests": {}, "by_user": {}, "statuses": {}, "faults": self._engine.counts(), "store": {}}
        return self.api.stats()
