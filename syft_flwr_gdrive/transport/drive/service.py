"""Build the googleapiclient Drive v3 service, for Google or for the fake server.

Two facts shape this module:

* Pointing the client elsewhere needs the discovery document's ``rootUrl``
  (and ``mtlsRootUrl``) rewritten. ``client_options.api_endpoint`` is not
  enough: media uploads keep the public https host and batch requests ignore
  it. We therefore load the Drive v3 document bundled with googleapiclient
  (no network fetch) and ``build_from_document`` from a patched copy.
* One ``httplib2.Http`` shared by threads hands responses to the wrong caller.
  The ``requestBuilder`` below gives every request its own
  ``AuthorizedHttp`` over a fresh ``build_http()`` (which also stops httplib2
  from following Drive's resumable-upload 308), with a socket timeout;
  ``DriveApi._execute`` sends every attempt on a channel of its own
  :class:`~.connections.ConnectionPool`, lent to one thread at a time and
  kept alive between requests under the rules stated there.

The connections used here also report every request put on the wire (for the
call counters) and stop httplib2's hidden one-time re-send after a dropped
connection, so the one retry policy in :mod:`.retry` sees every failure.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.credentials import Credentials
from googleapiclient import discovery
from googleapiclient import discovery_cache
from googleapiclient.http import HttpRequest
from googleapiclient.http import build_http

__all__ = [
    "drive_discovery_doc",
    "build_drive_service",
    "new_authorized_http",
    "ConnectionDropped",
]

#: Called with every HTTP request put on the wire (host, method); DriveApi counts calls with it.
RequestHook = Callable[[str, str], None]


@lru_cache(maxsize=1)
def _bundled_doc() -> str:
    doc = discovery_cache.get_static_doc("drive", "v3")
    if doc is None:  # pragma: no cover - only with a broken googleapiclient install
        raise RuntimeError(
            "googleapiclient ships no Drive v3 discovery document. Fix: reinstall google-api-python-client (>=2.100)."
        )
    return doc


def drive_discovery_doc(base_url: str | None = None) -> dict[str, Any]:
    """The bundled Drive v3 discovery document, re-rooted at ``base_url`` when given."""
    doc: dict[str, Any] = json.loads(_bundled_doc())
    if base_url:
        root = base_url if base_url.endswith("/") else base_url + "/"
        doc["rootUrl"] = root
        doc["mtlsRootUrl"] = root
        doc["baseUrl"] = root + doc.get("servicePath", "drive/v3/")
    return doc


_current_hook = threading.local()


class _WireMixin:
    """Connection behaviour shared by the http and https classes below.

    * ``request`` reports every request that actually goes on the wire, so the
      counters see httplib2's own low-level re-sends too.
    * ``getresponse`` turns "connection dropped before the status line" into a
      plain ``ConnectionResetError``. httplib2 silently re-sends a request once
      on ``BadStatusLine`` (meant for stale keep-alive sockets); for a create
      that may already have taken effect that hidden retry is unsafe. Kept-alive
      connections can go stale; the pool reuses only recently used ones with
      nothing to read, sends creates on new connections, and the one retry
      policy decides what a dropped connection means.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        hook = getattr(_current_hook, "hook", None)
        if hook is not None:
            hook(str(getattr(self, "host", "")), str(args[0] if args else kwargs.get("method", "")))
        return super().request(*args, **kwargs)  # type: ignore[misc]  # a mixin: the connection class is next in the MRO

    def getresponse(self) -> Any:
        try:
            return super().getresponse()  # type: ignore[misc]  # a mixin: the connection class is next in the MRO
        except (http.client.BadStatusLine, http.client.ResponseNotReady) as exc:
            raise ConnectionDropped(f"connection dropped before a response: {exc!r}") from exc


class ConnectionDropped(ConnectionResetError):
    """The server closed the connection without answering (the request may have taken effect)."""


class _HTTPConnection(_WireMixin, httplib2.HTTPConnectionWithTimeout):
    pass


class _HTTPSConnection(_WireMixin, httplib2.HTTPSConnectionWithTimeout):
    pass


class _OneShotRequest(google_auth_httplib2.Request):
    """A token request that closes its connection after each use.

    Refreshes come an hour apart, while the Drive channel that owns this one may be kept alive and
    busy all along; a token connection kept that long would be stale by the next refresh.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self.http.close()


class _HookedAuthorizedHttp(google_auth_httplib2.AuthorizedHttp):
    """AuthorizedHttp whose requests use the counting, no-silent-retry connections.

    Token refreshes (before a call whose token has expired, and after a 401) travel on an
    ``httplib2.Http`` of their own. httplib2 keeps one connection per host and reuses it whatever
    connection class a later request asks for; where the token endpoint shares Drive's host
    (the fake Drive serves both), a shared ``Http`` would let the refresh open the connection the
    Drive call then reuses, uncounted and with httplib2's silent re-send back on, or let the
    refresh reuse the counting connection and be counted as a Drive call.
    """

    def __init__(self, credentials: Credentials, http: Any, hook: RequestHook | None) -> None:
        super().__init__(credentials, http=http)
        self._hook = hook
        refresh_http = build_http()
        refresh_http.timeout = http.timeout
        self._request = _OneShotRequest(refresh_http)  # what AuthorizedHttp refreshes with

    def close(self) -> None:
        super().close()
        self._request.http.close()

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("connection_type") is None:
            secure = uri.lower().startswith("https:")
            kwargs["connection_type"] = _HTTPSConnection if secure else _HTTPConnection
        previous = getattr(_current_hook, "hook", None)
        _current_hook.hook = self._hook
        try:
            return super().request(uri, method, *args, **kwargs)
        finally:
            _current_hook.hook = previous


def new_authorized_http(
    credentials: Credentials, *, timeout: float, hook: RequestHook | None = None
) -> google_auth_httplib2.AuthorizedHttp:
    """A fresh, unshared HTTP channel with auth, a socket timeout and no 308 following."""
    raw = build_http()
    raw.timeout = timeout
    return _HookedAuthorizedHttp(credentials, raw, hook)


def build_drive_service(
    credentials: Credentials,
    *,
    base_url: str | None = None,
    timeout: float = 60.0,
    hook: RequestHook | None = None,
) -> Any:
    """A Drive v3 ``Resource`` whose every request gets its own HTTP channel."""

    def request_builder(_shared_http: Any, *args: Any, **kwargs: Any) -> HttpRequest:
        # Ignore the service-wide http on purpose: it must never be shared by threads.
        http = new_authorized_http(credentials, timeout=timeout, hook=hook)
        return HttpRequest(http, *args, **kwargs)

    # googleapiclient documents build_from_document; google-api-python-client-stubs leaves it out
    return discovery.build_from_document(  # type: ignore[attr-defined]
        drive_discovery_doc(base_url),
        http=new_authorized_http(credentials, timeout=timeout, hook=hook),
        requestBuilder=request_builder,
    )
