"""Typed Drive errors.

Callers must be able to react to *what* went wrong (a missing file is not a
revoked share, a quota problem is not an outage) without parsing HTTP bodies,
and a person reading a log must learn both the problem and the fix. So every
failure that leaves :mod:`syft_flwr_gdrive.transport.drive` is one of the classes below,
built from Drive's JSON error body
``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from syft_flwr_gdrive.transport.contract import AccessLost

__all__ = [
    "DriveError",
    "DriveNotFound",
    "DrivePermissionDenied",
    "DriveConflict",
    "DriveRateLimited",
    "DriveUnavailable",
    "DriveAuthError",
    "DriveTooLarge",
    "DriveSignInRefused",
    "DriveUploadCapReached",
    "ErrorBody",
    "parse_error_body",
    "error_from_status",
]

#: 403 reasons that mean "slow down" rather than "not allowed".
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
#: 403 reasons of Drive's sharing limit: it passes, but slowly (retried with a long backoff, retry.py).
SHARING_LIMIT_REASONS = frozenset({"sharingRateLimitExceeded"})
#: 403 reasons that mean a quota is used up for longer than a retry can wait.
QUOTA_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded", *SHARING_LIMIT_REASONS})
#: How Drive answers an upload over its daily upload cap (750 GB per account in 24 hours): no reason of its
#: own, but 403 ``userRateLimitExceeded`` with exactly this message, where the per-minute quota says "User Rate
#: Limit Exceeded. Rate of requests for user exceed configured project quota..." (field reports: rclone's
#: ``--drive-stop-on-upload-limit`` keys on it, rclone#3328 shows it at the cap; Google documents the cap,
#: not its answer). See docs/drive-assumptions.md, "Sign-ins and the daily upload cap".
DAILY_UPLOAD_CAP_MESSAGE = "User rate limit exceeded."


class DriveError(Exception):
    """Base of every Drive failure; carries the HTTP status, Drive's reason and the API method."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        method: str | None = None,
        retries: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.method = method
        self.retries = retries

    def __str__(self) -> str:
        bits = [f"status={self.status}" if self.status is not None else None]
        bits.append(f"reason={self.reason}" if self.reason else None)
        bits.append(f"method={self.method}" if self.method else None)
        bits.append(f"retries={self.retries}" if self.retries else None)
        tail = ", ".join(b for b in bits if b)
        return f"{self.message} ({tail})" if tail else self.message


class DriveNotFound(DriveError):
    """404: the file id does not exist, was deleted, or is not shared with this account."""


class DrivePermissionDenied(DriveError):
    """403 insufficientFilePermissions / forbidden: the account may not do this to the file."""


class DriveConflict(DriveError):
    """409: the file id is already in use (a duplicate create)."""


class DriveRateLimited(DriveError):
    """429 or a rate/quota 403 that kept failing after every retry."""


class DriveUnavailable(DriveError):
    """5xx or dropped connections / timeouts that kept failing after every retry."""


class DriveAuthError(DriveError):
    """401, or credentials that cannot be used or refreshed."""


class DriveSignInRefused(DriveAuthError, AccessLost):
    """Google's token endpoint refused to refresh the credentials for good (``invalid_grant``: the refresh token
    expired or was revoked; a deleted client or key): every Drive call fails until the participant signs in again.

    Its text is the headline (what happened), the fix (how to sign in again, for where these credentials came
    from) and why it happens; ``auth.SignIn`` writes them."""

    def __init__(
        self, *, headline: str, fix: str, why: str = "", oauth_error: str = "", method: str | None = None
    ) -> None:
        super().__init__(" ".join(p for p in (headline, f"Fix: {fix}", why) if p), reason=oauth_error, method=method)
        self.headline = headline
        self.fix = fix
        self.why = why

    def __str__(self) -> str:
        return self.message  # said to a person: no status/method tail


class DriveUploadCapReached(DriveError, AccessLost):
    """Drive's daily upload cap (750 GB per account in 24 hours) is reached: every upload fails until it resets,
    and a retry within the run cannot help, so it is not retried and the participant stops."""

    HEADLINE = (
        "Drive refused an upload: this account has reached Google Drive's daily upload cap "
        '(750 GB per account in 24 hours; Drive answered 403 userRateLimitExceeded "User rate limit exceeded.").'
    )
    FIX = (
        "the cap resets within 24 hours and retrying sooner does not help, so this participant stops: start it "
        "again tomorrow or with another Google account, and upload less per day (fewer rounds or clients, a "
        "smaller model)."
    )

    def __init__(self, *, method: str | None = None, retries: int = 0) -> None:
        super().__init__(
            f"{self.HEADLINE} Fix: {self.FIX}",
            status=403,
            reason="userRateLimitExceeded",
            method=method,
            retries=retries,
        )
        self.headline = self.HEADLINE
        self.fix = self.FIX

    def __str__(self) -> str:
        return self.message


class DriveTooLarge(DriveError):
    """A download is bigger than the caller allowed (``max_bytes``)."""


def without_tracebacks(exc: BaseException) -> BaseException:
    """``exc`` and the exceptions it chains to, without their tracebacks, for an error that is expected and
    handled (a 404 while waiting for a file). A traceback holds its frames, and through ``f_back`` every
    caller's frame, whose locals later hold what the caller goes on to make (a whole model); raised
    through the retry layer the error is in a reference cycle with those frames, so they would live until
    the cyclic GC happens to run."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        node.__traceback__ = None
        if node.__cause__ is not None:
            without_tracebacks(node.__cause__)
        node = node.__context__
    return exc


@dataclass(frozen=True)
class ErrorBody:
    """The useful parts of Drive's JSON error body."""

    code: int | None = None
    message: str = ""
    reason: str | None = None
    domain: str | None = None


def parse_error_body(content: bytes | str | None) -> ErrorBody:
    """Parse Drive's error JSON; tolerate empty, truncated or non-JSON bodies (proxies, HTML)."""
    if not content:
        return ErrorBody()
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            return ErrorBody()
    try:
        data: Any = json.loads(content)
    except ValueError:
        return ErrorBody(message=content.strip()[:200])
    if isinstance(data, list) and data:  # batch-style list of errors
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str):  # OAuth style {"error": "invalid_grant", ...}
        return ErrorBody(message=str(data.get("error_description", err)), reason=err)
    if not isinstance(err, dict):
        return ErrorBody()
    code = err.get("code")
    message = str(err.get("message", ""))
    reason = domain = None
    errors = err.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = errors[0].get("reason")
        domain = errors[0].get("domain")
        message = message or str(errors[0].get("message", ""))
    if reason is None and isinstance(err.get("status"), str):
        reason = err["status"]  # google.rpc style, e.g. "RESOURCE_EXHAUSTED"
    return ErrorBody(
        code=code if isinstance(code, int) else None,
        message=message,
        reason=reason,
        domain=domain,
    )


def is_daily_upload_cap(status: int | None, body: ErrorBody) -> bool:
    """Is this Drive's answer to an upload over the daily upload cap? (see ``DAILY_UPLOAD_CAP_MESSAGE``)"""
    return status == 403 and body.reason in RATE_LIMIT_REASONS and body.message.strip() == DAILY_UPLOAD_CAP_MESSAGE


def _quota_hint(reason: str | None) -> str:
    if reason == "userRateLimitExceeded":
        which = "the per-user request rate quota (queries per minute per user)"
    elif reason == "rateLimitExceeded":
        which = "the project's request rate quota (queries per minute)"
    elif reason == "dailyLimitExceeded":
        which = "the project's daily request quota"
    elif reason == "sharingRateLimitExceeded":
        which = "the per-user sharing rate limit"
    else:
        which = "a Drive request-rate quota"
    return (
        f"Drive rate limit: {which} is exhausted and retries with backoff did not help. "
        "Fix: slow down (raise SYFT_FLWR_POLL_INTERVAL, run fewer participants per "
        "account) or raise the quota in the Google Cloud console (APIs & Services > "
        "Google Drive API > Quotas)."
    )


def error_from_status(
    status: int | None,
    body: ErrorBody,
    *,
    method: str | None = None,
    resource: str | None = None,
    retries: int = 0,
) -> DriveError:
    """Map an HTTP status plus parsed body to the typed error with a message that names the fix."""
    reason = body.reason
    what = f" for {resource}" if resource else ""
    detail = f" Drive said: {body.message}" if body.message else ""
    kw: dict[str, Any] = dict(status=status, reason=reason, method=method, retries=retries)
    if status == 404:
        return DriveNotFound(
            f"Drive file not found{what}: it was deleted, never existed, or is not shared "
            "with this account. Fix: check the id and that the owner shared it with you." + detail,
            **kw,
        )
    if status == 401:
        return DriveAuthError(
            "Drive rejected the credentials (401): the access token is invalid, expired "
            "or revoked. Fix: log in again (syft-flwr-gdrive login) or point at a valid "
            "token / service-account file." + detail,
            **kw,
        )
    if is_daily_upload_cap(status, body):
        return DriveUploadCapReached(method=method, retries=retries)
    if status == 429 or (status == 403 and (reason in RATE_LIMIT_REASONS or reason in QUOTA_REASONS)):
        return DriveRateLimited(_quota_hint(reason) + detail, **kw)
    if status == 403 and reason == "storageQuotaExceeded":
        return DriveError(
            "Drive storage is full for this account. Fix: free space or use an account with more storage." + detail,
            **kw,
        )
    if status == 403:
        return DrivePermissionDenied(
            f"Drive permission denied{what}: this account may not do '{method or 'this'}' "
            "to the file (only the owner may delete; writing needs a writer share). "
            "Fix: ask the file's owner to share it with the right role, or act on your "
            "own files." + detail,
            **kw,
        )
    if status == 409:
        return DriveConflict(
            f"Drive conflict{what}: the file id is already in use. Fix: generate a new id "
            "with generate_ids() (a retried create is handled automatically)." + detail,
            **kw,
        )
    if status is not None and (status >= 500 or status == 408):
        return DriveUnavailable(
            f"Drive is unavailable (HTTP {status}) and kept failing after {retries} "
            "retries. Fix: try again later; if it persists check "
            "https://www.google.com/appsstatus or raise the retry limits." + detail,
            **kw,
        )
    return DriveError(
        f"Drive request failed (HTTP {status}){what}. Fix: this is a bug in the request "
        "or an unsupported operation; see Drive's message." + detail,
        **kw,
    )
