"""Who a bearer token stands for: the fake's own ``fake:<email>[#<app>]`` tokens.

The fake trusts the identity a token states (it is a test double, not an authorization
server): ``fake:alice@example.com`` is Alice, and ``#<app>`` names the OAuth app, whose
``appProperties`` only that app sees, as on Drive.
"""

from __future__ import annotations

import re
import urllib.parse


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
