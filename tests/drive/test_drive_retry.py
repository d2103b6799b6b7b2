"""Retry classification, backoff shape, Retry-After and error mapping (no network)."""

from __future__ import annotations

import http.client

import httplib2
import pytest
from google.auth import exceptions as auth_exceptions
from googleapiclient.errors import HttpError

from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.drive.errors import DriveAuthError
from syft_flwr_gdrive.transport.drive.errors import DriveConflict
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.errors import DriveRateLimited
from syft_flwr_gdrive.transport.drive.errors import DriveSignInRefused
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.errors import DriveUploadCapReached
from syft_flwr_gdrive.transport.drive.errors import parse_error_body
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.retry import is_transient
from syft_flwr_gdrive.transport.drive.retry import retry_after_seconds
from syft_flwr_gdrive.transport.drive.retry import to_drive_error
from tests.helpers.scripted_http import drive_error_body


def http_error(status: int, reason: str | None = None, **headers: str) -> HttpError:
    resp = httplib2.Response({"status": str(status), **headers})
    body = drive_error_body(status, reason) if reason else b""
    return HttpError(resp, body, uri="http://drive.test/x")


@pytest.mark.parametrize(
    "exc, transient",
    [
        (http_error(429, "rateLimitExceeded"), True),
        (http_error(429), True),
        (http_error(403, "userRateLimitExceeded"), True),
        (http_error(403, "rateLimitExceeded"), True),
        (http_error(500, "backendError"), True),
        (http_error(502), True),
        (http_error(503, "backendError"), True),
        (http_error(504), True),
        (http_error(408), True),
        (http_error(403, "insufficientFilePermissions"), False),
        (http_error(403, "forbidden"), False),
        (http_error(403), False),
        (http_error(403, "dailyLimitExceeded"), False),
        (http_error(404, "notFound"), False),
        (http_error(400, "badRequest"), False),
        (http_error(401, "authError"), False),
        (http_error(409, "duplicate"), False),
        (TimeoutError("timed out"), True),
        (TimeoutError(), True),
        (ConnectionResetError(104, "reset"), True),
        (BrokenPipeError(32, "pipe"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (http.client.RemoteDisconnected("gone"), True),
        (http.client.IncompleteRead(b"x", 10), True),
        (httplib2.ServerNotFoundError("dns"), True),
        (httplib2.RedirectLimit("loop", {}, b""), False),
        (auth_exceptions.TransportError("net"), True),
        (auth_exceptions.RefreshError("revoked"), False),
        (ValueError("bug"), False),
        (FileNotFoundError(2, "nope"), False),
        (DriveNotFound("x", status=404), False),
        (DriveUnavailable("x", status=503), True),
    ],
)
def test_classification(exc, transient):
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    "exc, cls",
    [
        (http_error(404, "notFound"), DriveNotFound),
        (http_error(403, "insufficientFilePermissions"), DrivePermissionDenied),
        (http_error(403, "forbidden"), DrivePermissionDenied),
        (http_error(409, "duplicate"), DriveConflict),
        (http_error(429, "rateLimitExceeded"), DriveRateLimited),
        (http_error(403, "userRateLimitExceeded"), DriveRateLimited),
        (http_error(500, "backendError"), DriveUnavailable),
        (http_error(503), DriveUnavailable),
        (http_error(401, "authError"), DriveAuthError),
        (auth_exceptions.RefreshError("revoked"), DriveSignInRefused),
        (ConnectionResetError(104, "reset"), DriveUnavailable),
        (TimeoutError("timed out"), DriveUnavailable),
    ],
)
def test_mapping_to_typed_errors(exc, cls):
    err = to_drive_error(exc, method="files.get", resource="abc", retries=3)
    assert type(err) is cls
    assert err.method == "files.get"
    assert "Fix:" in err.message


def test_mapping_keeps_status_reason_and_names_the_quota():
    err = to_drive_error(http_error(403, "userRateLimitExceeded"), method="files.list", retries=9)
    assert isinstance(err, DriveRateLimited)
    assert (err.status, err.reason, err.retries) == (403, "userRateLimitExceeded", 9)
    assert "per-user" in err.message and "quota" in err.message.lower()
    assert "SYFT_FLWR_POLL_INTERVAL" in err.message
    assert "files.list" in str(err)


def test_unknown_exceptions_are_not_wrapped():
    assert to_drive_error(ValueError("bug")) is None


def test_parse_error_body_shapes():
    body = parse_error_body(drive_error_body(404, "notFound", "File not found: x."))
    assert (body.code, body.reason, body.message, body.domain) == (404, "notFound", "File not found: x.", "global")
    assert parse_error_body(b"").reason is None
    assert parse_error_body(b"<html>502 Bad Gateway</html>").message.startswith("<html>")
    assert parse_error_body(b'{"error": "invalid_grant", "error_description": "Bad"}').reason == "invalid_grant"
    assert parse_error_body(b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}').reason == "RESOURCE_EXHAUSTED"
    assert parse_error_body(b"\xff\xfe").reason is None


def test_retry_after_delta_and_date():
    assert retry_after_seconds(http_error(429, "rateLimitExceeded", **{"retry-after": "7"})) == 7.0
    assert retry_after_seconds(http_error(429)) is None
    assert retry_after_seconds(ValueError()) is None
    future = retry_after_seconds(http_error(503, **{"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    assert future is not None and future > 1000
    past = retry_after_seconds(http_error(503, **{"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert past == 0.0


def test_backoff_is_capped_full_jitter():
    policy = RetryPolicy(initial_wait=1.0, max_wait=32.0)
    for attempt in range(1, 12):
        ceiling = min(32.0, 2 ** (attempt - 1))
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
    assert max(policy.backoff(10) for _ in range(200)) > 16  # it really grows to the cap


def test_retry_after_is_a_floor_but_capped():
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, max_retry_after=5)
    assert policy.wait_for(1, http_error(429, **{"retry-after": "3"})) == 3.0
    assert policy.wait_for(1, http_error(429, **{"retry-after": "300"})) == 5.0
    no_honour = RetryPolicy(initial_wait=0.001, max_wait=0.002, honour_retry_after=False)
    assert no_honour.wait_for(1, http_error(429, **{"retry-after": "3"})) < 0.01


def test_retrying_stops_after_max_attempts_and_reraises():
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.02, sleep=sleeps.append)
    calls = []

    def flaky():
        calls.append(1)
        raise http_error(503, "backendError")

    with pytest.raises(HttpError):
        policy.retrying()(flaky)
    assert len(calls) == 4 and len(sleeps) == 3


def test_retrying_stops_on_total_time():
    policy = RetryPolicy(max_attempts=100, max_total=0.0, initial_wait=0.01, max_wait=0.02)
    calls = []

    def flaky():
        calls.append(1)
        raise ConnectionResetError(104, "reset")

    with pytest.raises(ConnectionResetError):
        policy.retrying()(flaky)
    assert len(calls) == 1


def test_permanent_error_is_not_retried():
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=5, sleep=sleeps.append)
    calls = []

    def gone():
        calls.append(1)
        raise http_error(404, "notFound")

    with pytest.raises(HttpError):
        policy.retrying()(gone)
    assert len(calls) == 1 and sleeps == []


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_wait=-1)


def test_drive_error_str_is_informative():
    err = DriveError("Something broke. Fix: x.", status=400, reason="badRequest", method="files.create")
    assert str(err) == "Something broke. Fix: x. (status=400, reason=badRequest, method=files.create)"


def cap_error(message: str = "User rate limit exceeded.", status: int = 403) -> HttpError:
    resp = httplib2.Response({"status": str(status)})
    return HttpError(resp, drive_error_body(status, "userRateLimitExceeded", message), uri="http://drive.test/x")


def test_the_daily_upload_cap_is_told_from_the_per_minute_quota_by_its_message():
    """Drive gives its 750 GB/day cap no reason of its own: its message is the tell (rclone's
    --drive-stop-on-upload-limit); the per-minute quota's 403 reads differently and is still retried."""
    cap = cap_error()
    assert not is_transient(cap)
    err = to_drive_error(cap, method="files.create", retries=0)
    assert isinstance(err, DriveUploadCapReached) and isinstance(err, AccessLost)
    assert "daily upload cap" in err.headline and "resets within 24 hours" in str(err)
    per_minute = cap_error("User Rate Limit Exceeded. Rate of requests for user exceed configured project quota.")
    assert is_transient(per_minute)
    assert type(to_drive_error(per_minute, method="files.create")) is DriveRateLimited
    assert is_transient(cap_error(status=429))  # a 429 is a rate limit whatever it says
