"""Who a bearer token stands for, and the OAuth 2.0 token endpoint that issues them.

Two kinds of token. The fake's own ``fake:<email>[#<app>]`` tokens need no registration and never
expire (tests use them). Access tokens issued by ``POST /token`` (a refresh-token grant, as
google-auth sends it to oauth2.googleapis.com/token) are opaque and expire, so a client built
like a real one (``Credentials(refresh_token=..., token_uri=...)``) refreshes as it would against
Google. The fake trusts the identity a request states (it is a test double, not an authorization
server): ``fake:alice@example.com`` and the refresh token ``alice@example.com`` are Alice, and
``#<app>`` or the OAuth client id names the app, whose ``appProperties`` only that app sees, as
on Drive.
"""

from __future__ import annotations

import collections
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass

from .wire import Request
from .wire import Response


def fake_token_for(email: str, app: str | None = None) -> str:
    """The bearer token that means ``email`` to the fake without any registration.

    ``fake:<email>``, percent-encoded where needed (httplib2 mangles header values that
    contain a backslash; ``fake:alice@example.com`` stays readable and valid as is).
    ``app`` names the OAuth app the token belongs to (``fake:<email>#<app>``): like Drive,
    the fake shows ``appProperties`` only to the app that wrote them. Default: one app."""
    token = "fake:" + urllib.parse.quote(email.strip().lower(), safe="@.+-_!$&*=?^`{|}~/")
    if app:
        if not _APP_RE.fullmatch(app):
            raise ValueError(f"app ids are [A-Za-z0-9._-]+, got {app!r}")
        token += "#" + app
    return token


_APP_RE = re.compile(r"[A-Za-z0-9._-]+")


def parse_fake_token(token: str) -> tuple[str, str | None] | None:
    """(email, app) of a ``fake:`` token, or None if it is not one."""
    if not token.startswith("fake:"):
        return None
    body, app = token[5:].strip(), None
    if "#" in body:
        body, app = body.rsplit("#", 1)
        if not _APP_RE.fullmatch(app):
            return None
    email = urllib.parse.unquote(body).lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        return None
    return email, app


# ---------------------------------------------------------------------- the token endpoint

#: where Google's token endpoint (oauth2.googleapis.com/token) lives on the fake: ``<url>token``
TOKEN_PATH = "/token"
#: its name in the HTTP layer; not a Drive route: never faulted, not counted among Drive calls
TOKEN_ROUTE = "oauth.token"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
#: Drive's message for a missing, unknown, expired or revoked access token
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_TOKEN_HEADERS = [
    ("Content-Type", "application/json; charset=utf-8"),
    ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
]


class TokenError(Exception):
    """A refusal of the token endpoint, answered as Google's ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return Response(self.status, list(_TOKEN_HEADERS), json.dumps(body).encode())


@dataclass(frozen=True)
class Grant:
    """What an issued access token stands for, and until when it is accepted (``time.monotonic()``)."""

    email: str
    app: str | None
    expires: float


class AccessTokens:
    """The access tokens the endpoint issued: opaque, expiring after ``ttl`` seconds, revocable per account.

    The refresh token is the account's email and the OAuth client id names the app: the fake
    trusts the identity a request states, as it does for ``fake:`` tokens. Revoking an account's
    refresh tokens refuses its refreshes (``invalid_grant``) and ends the access tokens it holds.

    ``accepted_for`` (default ``ttl``) is how long a token is accepted: shorter, a token stops working
    before the expiry its answer announced, as Google may end one early. google-auth refreshes a
    token 3 min 45 s before its announced expiry, so with a ``ttl`` under that it refreshes before
    every call and never meets a 401; a ``ttl`` above it with a short ``accepted_for`` makes clients
    use tokens the fake already refuses, so the 401 -> refresh -> resend path runs on every token.
    """

    def __init__(self, ttl: float = 3600.0, accepted_for: float | None = None) -> None:
        if not ttl > 0:
            raise ValueError(f"access_token_ttl must be > 0 seconds, got {ttl!r}")
        if accepted_for is not None and not 0 < accepted_for <= ttl:
            raise ValueError(f"access_token_accepted_for must be in (0, access_token_ttl], got {accepted_for!r}")
        self.ttl = float(ttl)
        self.accepted_for = float(accepted_for) if accepted_for is not None else self.ttl
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._revoked: set[str] = set()
        self.issued: collections.Counter[str] = collections.Counter()  # email -> access tokens issued
        self.refused: collections.Counter[str] = collections.Counter()  # OAuth error -> refusals

    def issue(self, email: str, app: str | None) -> str:
        """A new access token for ``email`` (and ``app``), valid for ``ttl`` seconds."""
        now = time.monotonic()
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            if email in self._revoked:
                raise TokenError("invalid_grant", "Token has been expired or revoked.")
            for old in [t for t, g in self._grants.items() if g.expires <= now]:
                del self._grants[old]  # expired ones answer 401 like unknown ones: no need to keep them
            self._grants[token] = Grant(email, app, now + self.accepted_for)
            self.issued[email] += 1
        return token

    def holder(self, token: str) -> tuple[str, str | None] | None:
        """(email, app) of a live issued token; None if unknown, expired or revoked."""
        with self._lock:
            grant = self._grants.get(token)
        if grant is None or grant.expires <= time.monotonic():
            return None
        return grant.email, grant.app

    def revoke(self, email: str) -> int:
        """Refuse ``email``'s refresh token from now on and end its access tokens; returns how many ended."""
        with self._lock:
            self._revoked.add(email)
            ended = [t for t, g in self._grants.items() if g.email == email]
            for token in ended:
                del self._grants[token]
        return len(ended)

    def refuse(self, error: TokenError) -> TokenError:
        with self._lock:
            self.refused[error.error] += 1
        return error

    def stats(self) -> dict:
        with self._lock:
            return {"issued": dict(self.issued), "refused": dict(self.refused), "revoked": sorted(self._revoked)}


def token_form(req: Request) -> dict[str, str]:
    """The parameters of a token request: a form body (what google-auth sends) or a JSON object."""
    raw = req.body.read_all(64 * 1024)
    if req.headers.get("content-type", "").lower().startswith("application/json"):
        try:
            obj = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TokenError("invalid_request", "Invalid JSON payload received.") from None
        if not isinstance(obj, dict):
            raise TokenError("invalid_request", "Invalid JSON payload received.")
        return {str(k): str(v) for k, v in obj.items() if v is not None}
    try:
        form = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise TokenError("invalid_request", "Invalid form payload received.") from None
    return {k: v[-1] for k, v in form.items()}


def refresh_grant(form: dict[str, str]) -> tuple[str, str]:
    """(email, app) a refresh-token grant asks for, checked as Google checks it (not the revocation)."""
    grant_type = form.get("grant_type", "")
    if grant_type != "refresh_token":
        raise TokenError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    client_id = form.get("client_id", "")
    if not client_id:
        raise TokenError("invalid_request", "Could not determine client ID from request.")
    if not _APP_RE.fullmatch(client_id):
        raise TokenError("invalid_client", "The OAuth client was not found.", status=401)
    if not form.get("client_secret"):
        raise TokenError("invalid_request", "client_secret is missing.")
    refresh_token = form.get("refresh_token", "")
    if not refresh_token:
        raise TokenError("invalid_request", "Missing required parameter: refresh_token")
    email = refresh_token.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise TokenError("invalid_grant", "Bad Request")
    return email, client_id


def token_answer(access_token: str, ttl: float, scope: str | None) -> Response:
    """Google's answer to a good refresh: the token, seconds it lives, its type and scopes."""
    body = {
        "access_token": access_token,
        "expires_in": int(ttl),
        "scope": scope or DRIVE_SCOPE,
        "token_type": "Bearer",
    }
    return Response(200, list(_TOKEN_HEADERS), json.dumps(body).encode())
