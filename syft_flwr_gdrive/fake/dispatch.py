"""The pipeline every request passes through: route, auth, faults, quota, stats, then its handler.

:class:`Api` turns a parsed :class:`~.wire.Request` into a :class:`~.wire.Response`. The HTTP
layer (``httpd``) feeds it requests read from sockets; the batch route feeds it the inner
requests of a ``multipart/mixed`` body, so both paths share every rule, fault and quota charge.
The OAuth token endpoint is answered beside that pipeline (:meth:`Api.respond`): it is another
Google service, not a Drive call, so it is never faulted, charged or counted among Drive calls.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import urllib.parse

from .exceptions import ApiError
from .exceptions import invalid
from .faults import FaultConfig
from .faults import FaultEngine
from .handlers import DriveHandlers
from .oauth import INVALID_CREDENTIALS
from .oauth import TOKEN_PATH
from .oauth import TOKEN_ROUTE
from .oauth import AccessTokens
from .oauth import TokenError
from .oauth import parse_fake_token
from .oauth import refresh_grant
from .oauth import token_answer
from .oauth import token_form
from .records import DEFAULT_APP
from .routes import ADMIN_PREFIX
from .routes import Route
from .routes import find_route
from .store import Store
from .uploads import Sessions
from .wire import Request
from .wire import Response
from .wire import error_response
from .wire import json_body
from .wire import json_response

log = logging.getLogger(__name__)


class Api(DriveHandlers):
    """Routes, auth, per-call faults and quota, around one :class:`Store`."""

    def __init__(
        self,
        store: Store,
        faults: FaultEngine,
        strict_tokens: bool = False,
        access_tokens: AccessTokens | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.strict_tokens = strict_tokens
        self.tokens: dict[str, tuple[str, str | None]] = {}  # registered token -> (email, app)
        self.access_tokens = access_tokens if access_tokens is not None else AccessTokens()
        self.sessions = Sessions(store.uploads_dir)
        self._stats_lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.by_user: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.started = time.time()

    # ------------------------------------------------------------------ plumbing

    def match(self, req: Request) -> tuple[Route | None, dict[str, str]]:
        return find_route(req.method, req.path)

    def route_name(self, req: Request) -> str:
        self.normalize(req)
        if req.path.startswith(ADMIN_PREFIX):
            return "admin"
        if self.is_token_request(req):
            return TOKEN_ROUTE
        r, _ = self.match(req)
        if r is None:
            return "unknown"
        if r.name == "files.get" and req.arg("alt") == "media":
            return "files.download"
        return r.name

    @staticmethod
    def normalize(req: Request) -> None:
        """Undo ``X-HTTP-Method-Override``: the client POSTs long GET URLs with the query as a form body."""
        override = req.headers.pop("x-http-method-override", None)
        if override and req.method == "POST":
            req.method = override.upper()
            if req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                form = urllib.parse.parse_qs(req.body.read_all().decode("utf-8"), keep_blank_values=True)
                for k, v in form.items():
                    req.query.setdefault(k, []).extend(v)

    def user_of(self, req: Request, fallback: str | None = None) -> str:
        auth = req.headers.get("authorization", "")
        token = (
            auth[7:].strip()
            if auth.lower().startswith("bearer ")
            else (req.arg("access_token") or req.arg("oauth_token"))
        )
        if not token:
            if fallback:
                return fallback
            raise ApiError(
                401,
                "authError",
                "Request is missing required authentication credential. Expected OAuth 2 access token.",
                location="Authorization",
                locationType="header",
            )
        found = self.tokens.get(token) or self.access_tokens.holder(token)
        if found is None and not self.strict_tokens:
            found = parse_fake_token(token)
        if found is None:  # unknown, expired or revoked: Drive answers all three alike
            raise ApiError(
                401,
                "authError",
                INVALID_CREDENTIALS,
                item_message="Invalid Credentials",
                status_name="UNAUTHENTICATED",
                location="Authorization",
                locationType="header",
            )
        email, app = found
        self.store.ensure_user(email, app or DEFAULT_APP)
        return email

    def count(self, key: str, user: str | None, status: int) -> None:
        with self._stats_lock:
            self.requests[key] += 1
            if user:
                self.by_user[user] += 1
            self.statuses[str(status)] += 1

    def stats(self) -> dict:
        with self._stats_lock:
            return {
                "requests": dict(self.requests),
                "by_user": dict(self.by_user),
                "statuses": dict(self.statuses),
                "faults": self.faults.counts(),
                "writes": self.faults.write_counts(),
                "links": self.faults.link_counts(),
                "store": self.store.stats(),
                "oauth": self.access_tokens.stats(),
                "uptime": round(time.time() - self.started, 3),
            }

    def _configure_store(self) -> None:
        """Give the store the live profile settings it applies (lag of every change, owner emails, gmail dots)."""
        cfg = self.faults.config
        self.store.configure(
            float(cfg.list_lag) if cfg.lag_all else 0.0, bool(cfg.hide_owner_emails), bool(cfg.gmail_dots)
        )

    # ------------------------------------------------------------------ entry points

    def respond(self, req: Request) -> Response:
        """Answer one HTTP request: the token endpoint, or a Drive (or admin) call through :meth:`handle`."""
        if self.is_token_request(req):
            return self.token_endpoint(req)
        return self.handle(req)

    def handle(self, req: Request, outer_user: str | None = None) -> Response:
        """Answer one Drive API call (or an admin call); never raises ApiError."""
        user: str | None = None
        name = "unknown"
        try:
            self.normalize(req)
            if req.path.startswith(ADMIN_PREFIX):
                name = "admin"
                return self.admin(req)
            route, params = self.match(req)
            if route is None:
                raise ApiError(404, "notFound", f"Not Found: {req.method} {req.path}")
            name = self.route_name(req)
            if route.name == "upload.chunk":
                user = None  # the upload URL itself is the credential, as on Drive
            else:
                user = self.user_of(req, outer_user)
            self._configure_store()
            if user is not None:
                user = self.store.account(user)
            fault = self.faults.call(name) if route.name != "batch" else None
            if fault is not None and not fault.after:
                raise fault.error
            if user is not None and route.cost is not None:
                cost = "download" if name == "files.download" else route.cost
                quota_error = self.faults.charge(user, cost)
                if quota_error is not None:
                    raise quota_error
                if cost == "modify":
                    write_error = self.faults.charge_write(user)
                    if write_error is not None:
                        raise write_error
            resp = route.handler(self, req, user, **params)
            if fault is not None:  # "after": the call took effect, the answer is an error
                resp.close()
                raise fault.error
            return resp
        except ApiError as e:
            return error_response(e)
        except (ConnectionError, TimeoutError, OSError):
            raise
        except Exception as e:  # a bug in the fake: answer like Drive's backend would
            log.exception("fake drive: unhandled error for %s %s", req.method, req.path)
            return error_response(ApiError(500, "backendError", f"Internal error in fake Drive: {e!r}"))
        finally:
            req.headers["x-fake-route"] = name
            if user:
                req.headers["x-fake-user"] = user

    # ------------------------------------------------------------------ OAuth (not Drive)

    @staticmethod
    def is_token_request(req: Request) -> bool:
        return req.method == "POST" and req.path.rstrip("/") == TOKEN_PATH

    def token_endpoint(self, req: Request) -> Response:
        """``POST /token``: a refresh-token grant answered as oauth2.googleapis.com answers it."""
        try:
            try:
                form = token_form(req)
            except ApiError as e:  # a body too large
                raise TokenError("invalid_request", e.message) from None
            email, app = refresh_grant(form)
            self._configure_store()
            email = self.store.account(email)
            if self.strict_tokens and email not in {self.store.account(e) for e, _ in self.tokens.values()}:
                raise TokenError("invalid_grant", "Bad Request")  # strict: only accounts registered with add_user
            token = self.access_tokens.issue(email, app)
        except TokenError as e:
            self.access_tokens.refuse(e)
            return e.response()
        return token_answer(token, self.access_tokens.ttl, form.get("scope"))

    # ------------------------------------------------------------------ admin (not Drive)

    def admin(self, req: Request) -> Response:
        if req.path.rstrip("/") == "/_fake/faults":
            if req.method == "GET":
                return json_response(self.faults.config.to_dict())
            if req.method in ("POST", "PUT", "PATCH"):
                body = json_body(req)
                try:
                    data = {**self.faults.config.to_dict(), **body} if req.method == "PATCH" else body
                    self.faults.config = FaultConfig.from_dict(data)
                except (TypeError, ValueError) as e:
                    raise invalid(str(e)) from None
                if body.get("reset_quota") is not None:
                    self.faults.reset_quota()
                return json_response(self.faults.config.to_dict())
        if req.path.rstrip("/") == "/_fake/stats" and req.method == "GET":
            return json_response(self.stats())
        if req.path.rstrip("/") == "/_fake/health" and req.method == "GET":
            return json_response({"ok": True})
        raise ApiError(404, "notFound", f"Not Found: {req.method} {req.path}")
