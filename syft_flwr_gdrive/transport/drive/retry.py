"""The one retry policy for every Drive call.

Drive fails in two very different ways. Transient failures (rate limits, 5xx,
dropped connections, socket timeouts) go away if we wait, so we retry them with
exponential backoff, full jitter and a cap, as Google asks
(``min(2^n + jitter, 32..64 s)``), and wait at least what ``Retry-After`` says.
Everything else (404, 403 insufficientFilePermissions, 400, 401, 409) will
fail the same way again, so it is raised at once as a typed error: retrying it
only burns quota and hides bugs. googleapiclient's own ``num_retries`` covers
only part of these cases and has no cap, so it stays 0 and this module decides.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import errno
import http.client
import random
import socket
import ssl
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field

import httplib2
import tenacity
from google.auth import exceptions as auth_exceptions
from googleapiclient.errors import BatchError
from googleapiclient.errors import HttpError

from syft_flwr_gdrive.transport.drive.errors import RATE_LIMIT_REASONS
from syft_flwr_gdrive.transport.drive.errors import SHARING_LIMIT_REASONS
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.errors import DriveUploadCapReached
from syft_flwr_gdrive.transport.drive.errors import error_from_status
from syft_flwr_gdrive.transport.drive.errors import is_daily_upload_cap
from syft_flwr_gdrive.transport.drive.errors import parse_error_body
from syft_flwr_gdrive.transport.drive.signin import SignIn
from syft_flwr_gdrive.transport.drive.signin import refresh_refusal

__all__ = [
    "RetryPolicy",
    "deadline",
    "time_left",
    "is_transient",
    "is_ambiguous",
    "describe",
    "retry_after_seconds",
    "to_drive_error",
]

#: errno names that mean "the connection broke", mirroring googleapiclient's list.
_TRANSIENT_ERRNOS = frozenset({"ETIMEDOUT", "WSAETIMEDOUT", "EPIPE", "ECONNABORTED", "ECONNREFUSED", "ECONNRESET"})
#: httplib2 errors that are bugs or configuration, not network weather.
_PERMANENT_HTTPLIB2 = (httplib2.RedirectLimit, httplib2.RedirectMissingLocation)


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("drive_call_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Bound the retries of every Drive call made inside by ``seconds`` from now.

    A caller that must answer within its own timeout (a message exchange, a poll)
    wraps its calls so that no single call retries past it. Nested deadlines
    keep the earlier one. ``None`` leaves the current bound as it is.
    """
    if seconds is None:
        yield
        return
    end = time.monotonic() + max(0.0, seconds)
    outer = _DEADLINE.get()
    token = _DEADLINE.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds until the current caller's deadline, or None when there is none."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


class _PastDeadline(tenacity.stop.stop_base):
    """Stop retrying when the next wait would end after the caller's deadline."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        left = time_left()
        return left is not None and left <= (retry_state.upcoming_sleep or 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying transient failures.

    Defaults follow Google's guidance: exponential backoff starting at
    ``initial_wait`` seconds, full jitter, each wait capped at ``max_wait``
    (32 s), at most ``max_attempts`` tries and ``max_total`` seconds in all, and
    never past the caller's :func:`deadline`.
    ``Retry-After`` is honoured up to ``max_retry_after`` seconds.
    Tests pass tiny waits.
    """

    max_attempts: int = 10
    max_total: float = 300.0
    initial_wait: float = 1.0
    max_wait: float = 32.0
    honour_retry_after: bool = True
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.initial_wait < 0 or self.max_wait < 0 or self.max_total < 0:
            raise ValueError("RetryPolicy waits must not be negative")

    def backoff(self, attempt: int) -> float:
        """Full-jitter wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_wait, self.initial_wait * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)

    def sharing_backoff(self, attempt: int) -> float:
        """Wait before retry ``attempt`` of a share refused by Drive's sharing limit: 8, 16, 32, 64 times
        ``initial_wait`` (capped at twice ``max_wait``), half of it jittered. The limit is counted over
        minutes, not seconds; a short backoff only spends refusals."""
        ceiling = min(2 * self.max_wait, 8 * self.initial_wait * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Backoff (a long one for the sharing limit), but never shorter than the server's ``Retry-After``."""
        wait = self.backoff(attempt)
        if exc is not None and _reason(exc) in SHARING_LIMIT_REASONS:
            wait = self.sharing_backoff(attempt)
        if self.honour_retry_after and exc is not None:
            hint = retry_after_seconds(exc)
            if hint is not None:
                wait = max(wait, min(hint, self.max_retry_after))
        return wait

    def retrying(self, on_retry: Callable[[tenacity.RetryCallState], None] | None = None) -> tenacity.Retrying:
        """A tenacity ``Retrying`` that retries only :func:`is_transient` failures."""

        def _wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(state.attempt_number, exc)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_before_delay(self.max_total)
            | _PastDeadline(),
            wait=_wait,
            sleep=self.sleep,
            before_sleep=on_retry,
            reraise=True,
        )


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, HttpError) and exc.resp is not None:
        try:
            return int(exc.resp.status)
        except (TypeError, ValueError):
            return None
    if isinstance(exc, DriveError):
        return exc.status
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, HttpError):
        return parse_error_body(exc.content).reason
    if isinstance(exc, DriveError):
        return exc.reason
    return None


def _is_daily_upload_cap(exc: BaseException) -> bool:
    """Drive's daily upload cap answers like a rate limit, but lasts hours: retrying it only burns the run."""
    if isinstance(exc, HttpError) and exc.resp is not None:
        return is_daily_upload_cap(_http_status(exc), parse_error_body(exc.content))
    return isinstance(exc, DriveUploadCapReached)


def _is_network_error(exc: BaseException) -> bool:
    """Dropped connections, resets, timeouts: the request may or may not have happened."""
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError)):
        return True  # ConnectionError covers Reset, Aborted, Refused, BrokenPipe, RemoteDisconnected
    if isinstance(exc, (http.client.IncompleteRead, http.client.BadStatusLine)):
        return True
    if isinstance(exc, http.client.HTTPException):
        return True  # protocol garbage from a half-closed connection
    if isinstance(exc, httplib2.HttpLib2Error):
        return not isinstance(exc, _PERMANENT_HTTPLIB2)
    if isinstance(exc, auth_exceptions.TransportError):
        return True  # token refresh hit the network weather
    if isinstance(exc, auth_exceptions.RefreshError):
        return bool(exc.retryable)  # Google's token endpoint failing (5xx, temporarily_unavailable), not a refusal
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno) in _TRANSIENT_ERRNOS
    return False


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 429, rate-limit and sharing-limit 403, 408, 5xx, network errors."""
    if isinstance(exc, BatchError) and exc.resp is None:
        return True  # unparseable multipart answer: a cut-off response
    status = _http_status(exc)
    if status is not None:
        if status == 429 or status == 408 or status >= 500:
            return True
        if status == 403:
            return (_reason(exc) in RATE_LIMIT_REASONS and not _is_daily_upload_cap(exc)) or _reason(
                exc
            ) in SHARING_LIMIT_REASONS
        return False
    if isinstance(exc, DriveError):
        return False
    return _is_network_error(exc)


def is_ambiguous(exc: BaseException) -> bool:
    """True when the server may have carried out the request although we saw a failure."""
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status == 408
    return is_transient(exc)


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if any."""
    resp = getattr(exc, "resp", None)
    if resp is None:
        return None
    value = resp.get("retry-after") if hasattr(resp, "get") else None
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def to_drive_error(
    exc: BaseException,
    *,
    method: str | None = None,
    resource: str | None = None,
    retries: int = 0,
    sign_in: SignIn | None = None,
) -> DriveError | None:
    """Typed error for a failure that reached the caller, or None to re-raise it unchanged.

    ``sign_in`` (where the credentials came from) lets a refused refresh name how to sign in again."""
    if isinstance(exc, DriveError):
        if retries and not exc.retries:
            exc.retries = retries
        return exc
    if isinstance(exc, HttpError) and exc.resp is not None:
        body = parse_error_body(exc.content)
        return error_from_status(_http_status(exc), body, method=method, resource=resource, retries=retries)
    if isinstance(exc, BatchError):
        return DriveUnavailable(
            f"Drive's batch answer could not be read ({exc.reason}) after {retries} retries. "
            "Fix: try again later; if it persists report it with the log.",
            method=method,
            retries=retries,
        )
    if isinstance(exc, auth_exceptions.RefreshError):
        if not exc.retryable:
            return (sign_in or SignIn()).refused(exc, method=method)
        return DriveUnavailable(
            f"Google's sign-in service kept failing to refresh the credentials ({refresh_refusal(exc)}) after "
            f"{retries} retries. Fix: try again later; if it persists check https://www.google.com/appsstatus.",
            method=method,
            retries=retries,
        )
    if _is_network_error(exc):
        return DriveUnavailable(
            f"Could not reach Drive ({type(exc).__name__}: {exc}) after {retries} retries. "
            "Fix: check the network, proxy or the Drive URL; the call can be retried later.",
            method=method,
            retries=retries,
        )
    return None


def describe(exc: BaseException) -> str:
    """Short one-line description for retry logs."""
    status = _http_status(exc)
    if status is not None:
        reason = _reason(exc)
        return f"HTTP {status}" + (f" {reason}" if reason else "")
    return f"{type(exc).__name__}: {exc}"
