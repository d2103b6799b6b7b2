"""DriveApi seams with a scripted HTTP channel: retries, counters, idempotency, chunking."""

from __future__ import annotations

import io
import json

import pytest

from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.api import escape_q
from syft_flwr_gdrive.transport.drive.errors import DriveConflict
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.errors import DriveRateLimited
from syft_flwr_gdrive.transport.drive.errors import DriveTooLarge
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from tests.helpers.scripted_http import TINY
from tests.helpers.scripted_http import err
from tests.helpers.scripted_http import ok

KIB = 1024


def test_escape_q():
    assert escape_q("it's") == "it\\'s"
    assert escape_q("a\\b") == "a\\\\b"
    assert escape_q("\\'") == "\\\\\\'"
    assert DriveApi.escape_q("o'\\") == "o\\'\\\\"


def test_chunk_size_must_be_multiple_of_256k():
    from google.oauth2.credentials import Credentials

    with pytest.raises(ValueError, match="256 KiB"):
        DriveApi(Credentials(token="t"), chunk_size=1000)


def test_transient_failures_are_retried_and_counted(scripted):
    api, http = scripted(
        [
            err(503, "backendError"),
            ConnectionResetError(104, "reset"),
            err(429, "rateLimitExceeded"),
            err(403, "userRateLimitExceeded"),
            ok({"id": "f1", "name": "a"}),
        ]
    )
    assert api.get("f1")["id"] == "f1"
    assert api.calls.snapshot() == {"files.get": 5}
    assert api.calls.retries == 4 and api.calls.total == 5
    assert len(http.requests) == 5
    assert "Bearer fake:unit@example.com" in http.requests[0]["headers"]["authorization"]


@pytest.mark.parametrize(
    "failure, cls",
    [
        (err(404, "notFound"), DriveNotFound),
        (err(403, "insufficientFilePermissions"), DrivePermissionDenied),
        (err(409, "duplicate"), DriveConflict),
    ],
)
def test_permanent_failures_raise_at_once(scripted, failure, cls):
    api, http = scripted([failure])
    with pytest.raises(cls) as info:
        api.get("f1")
    assert info.value.retries == 0
    assert api.calls.retries == 0 and api.calls.total == 1


def test_exhausted_retries_raise_rate_limited(scripted):
    api, _ = scripted([err(429, "userRateLimitExceeded")] * 5)
    with pytest.raises(DriveRateLimited) as info:
        api.list_files("trashed = false")
    assert info.value.retries == 4 and api.calls.retries == 4
    assert api.calls.snapshot() == {"files.list": 5}


def test_exhausted_retries_raise_unavailable(scripted):
    api, _ = scripted([ConnectionResetError(104, "reset")] * 5)
    with pytest.raises(DriveUnavailable, match="Could not reach Drive"):
        api.about_me()


def test_retry_after_is_honoured(scripted):
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.001, sleep=sleeps.append)
    api, _ = scripted([err(429, "rateLimitExceeded", **{"retry-after": "2"}), ok({"ids": ["x"]})], retry=policy)
    assert api.generate_ids(1) == ["x"]
    assert sleeps == [2.0]


def test_list_files_follows_pages(scripted):
    api, http = scripted(
        [
            ok({"files": [{"id": "1"}], "nextPageToken": "p2"}),
            ok({"files": [{"id": "2"}], "nextPageToken": "p3"}),
            ok({"files": [{"id": "3"}]}),
        ]
    )
    assert [f["id"] for f in api.list_files("name = 'x'", page_size=1)] == ["1", "2", "3"]
    assert "pageToken=p3" in http.requests[2]["uri"]
    assert api.calls.snapshot() == {"files.list": 3}


def test_idempotent_create_returns_existing_file_on_409(scripted):
    api, http = scripted(
        [
            ConnectionResetError(104, "reset"),  # the first create may have happened
            err(409, "duplicate"),  # ...it did
            ok({"id": "gen1", "name": "msg", "ownedByMe": True}),  # files.get by id
        ]
    )
    out = api.upload_bytes("msg", b"hello", parent_id="p", file_id="gen1")
    assert out == {"id": "gen1", "name": "msg", "ownedByMe": True}
    assert api.calls.snapshot() == {"files.create": 2, "files.get": 1}
    assert api.calls.retries == 1


def test_409_for_a_different_file_is_a_conflict(scripted):
    api, _ = scripted([err(409, "duplicate"), ok({"id": "gen1", "name": "other"})])
    with pytest.raises(DriveConflict, match="already used"):
        api.create_folder("mine", file_id="gen1")


def test_409_for_someone_elses_file_of_the_same_name_is_a_conflict(scripted):
    """A peer who read the id I promised may take it first, name and all: never taken for my create."""
    api, _ = scripted([err(409, "duplicate"), ok({"id": "gen1", "name": "mine", "ownedByMe": False})])
    with pytest.raises(DriveConflict, match="already used"):
        api.create_folder("mine", file_id="gen1")


def test_409_without_file_id_is_a_conflict(scripted):
    api, _ = scripted([err(409, "duplicate")])
    with pytest.raises(DriveConflict):
        api.create_folder("mine")


def test_delete_after_ambiguous_failure_accepts_404(scripted):
    api, _ = scripted([err(503, "backendError"), err(404, "notFound")])
    api.delete("f1")  # the 503'd attempt may have deleted it: not an error
    api2, _ = scripted([err(404, "notFound")])
    with pytest.raises(DriveNotFound):
        api2.delete("f1")
    api3, _ = scripted([err(404, "notFound")])
    api3.delete("f1", missing_ok=True)


def test_multipart_upload_body(scripted):
    api, http = scripted([ok({"id": "f1", "name": "a b"})])
    api.upload_bytes("a b", b"\x00payload", parent_id="p1", properties={"k": "v"})
    req = http.requests[0]
    assert "uploadType=multipart" in req["uri"] and req["method"] == "POST"
    body = req["body"] if isinstance(req["body"], bytes) else req["body"].encode("latin-1")
    assert b"\x00payload" in body and b'"parents": ["p1"]' in body


def test_body_ending_in_cr_is_not_sent_multipart(scripted):
    api, http = scripted(
        [
            (200, {"location": "http://drive.test/upload/s1"}, b""),
            ok({"id": "f", "name": "cr"}),
        ]
    )
    api.upload_bytes("cr", b"ends with CR\r", parent_id=None)
    assert "uploadType=resumable" in http.requests[0]["uri"]
    assert http.requests[1]["body"] == b"ends with CR\r"


def _chunk_response(end: int):
    return (308, {"range": f"bytes=0-{end}"}, b"")


def test_resumable_upload_resumes_after_dropped_chunk(scripted):
    chunk = 256 * KIB
    data = bytes(range(256)) * (3 * chunk // 256)  # 3 chunks
    api, http = scripted(
        [
            (200, {"location": "http://drive.test/upload/s1"}, b""),  # start session
            _chunk_response(chunk - 1),  # chunk 1 ok
            ConnectionResetError(104, "reset"),  # chunk 2 dropped
            _chunk_response(chunk - 1),  # probe: only chunk 1 kept
            _chunk_response(2 * chunk - 1),  # chunk 2 again
            ok({"id": "big", "name": "big"}),  # chunk 3 finishes
        ],
        chunk_size=chunk,
    )
    out = api.upload_stream("big", io.BytesIO(data), len(data), parent_id="p")
    assert out["id"] == "big"
    puts = [r for r in http.requests if r["method"] == "PUT"]
    assert [r["headers"].get("Content-Range") for r in puts] == [
        f"bytes 0-{chunk - 1}/{3 * chunk}",
        f"bytes {chunk}-{2 * chunk - 1}/{3 * chunk}",
        f"bytes */{3 * chunk}",
        f"bytes {chunk}-{2 * chunk - 1}/{3 * chunk}",
        f"bytes {2 * chunk}-{3 * chunk - 1}/{3 * chunk}",
    ]
    sent = puts[0]["body"] + puts[3]["body"] + puts[4]["body"]
    assert sent == data
    assert api.calls.snapshot() == {"media.upload": 6}
    assert api.calls.retries == 1


def test_resumable_upload_from_non_seekable_stream_resends_partial_chunk(scripted):
    chunk = 256 * KIB
    data = bytes(reversed(range(256))) * (2 * chunk // 256)

    class Pipe(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self._src = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return self._src.read(min(n, 1000) if n > 0 else 1000)

    api, http = scripted(
        [
            (200, {"location": "http://drive.test/upload/s1"}, b""),
            (308, {"range": "bytes=0-99"}, b""),  # server kept only 100 bytes of chunk 1
            _chunk_response(chunk + 99),
            ok({"id": "p", "name": "p"}),
        ],
        chunk_size=chunk,
    )
    api.upload_stream("p", Pipe(data), len(data), parent_id=None)
    puts = [r for r in http.requests if r["method"] == "PUT"]
    assert puts[1]["body"] == data[100 : chunk + 100]
    assert puts[0]["body"][:100] + puts[1]["body"] + puts[2]["body"] == data


def test_ranged_download_retries_failed_chunk_from_its_offset(scripted):
    chunk = 256 * KIB
    data = bytes(range(256)) * ((2 * chunk + 10) // 256) + b"0123456789"
    total = len(data)

    def part(start: int, end: int):
        return (206, {"content-range": f"bytes {start}-{end}/{total}"}, data[start : end + 1])

    api, http = scripted(
        [
            part(0, chunk - 1),
            ConnectionResetError(104, "reset"),
            err(500, "backendError"),
            part(chunk, 2 * chunk - 1),
            part(2 * chunk, total - 1),
        ],
        chunk_size=chunk,
    )
    out = io.BytesIO()
    assert api.download_to("f", out) == total
    assert out.getvalue() == data
    ranges = [r["headers"]["range"] for r in http.requests]
    assert ranges == [f"bytes=0-{chunk - 1}"] + [f"bytes={chunk}-{2 * chunk - 1}"] * 3 + [
        f"bytes={2 * chunk}-{3 * chunk - 1}"
    ]
    assert all("alt=media" in r["uri"] for r in http.requests)
    assert api.calls.snapshot() == {"media.download": 5} and api.calls.retries == 2


def test_download_empty_file_and_whole_body(scripted):
    api, _ = scripted([(416, {"content-range": "bytes */0"}, b"")])
    assert api.download_bytes("empty") == b""
    api2, _ = scripted([(200, {}, b"whole")])
    assert api2.download_bytes("f") == b"whole"


def test_download_max_bytes(scripted):
    api, _ = scripted([(206, {"content-range": "bytes 0-3/100"}, b"abcd")])
    with pytest.raises(DriveTooLarge, match="max_bytes=10"):
        api.download_bytes("f", max_bytes=10)


def _batch_response(parts: list[tuple[int, dict]]) -> tuple[int, dict, bytes]:
    # Content-IDs are echoed as "response-<id>"; googleapiclient parses "<base + id>".
    out = []
    for i, (status, body) in enumerate(parts):
        payload = json.dumps(body) if body else ""
        out.append(
            "--BOUNDARY\r\nContent-Type: application/http\r\n"
            f"Content-ID: <response-x + {i}>\r\n\r\n"
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\r\n{payload}\r\n"
        )
    body = "".join(out) + "--BOUNDARY--\r\n"
    return 200, {"content-type": "multipart/mixed; boundary=BOUNDARY"}, body.encode()


def _err_body(code: int, reason: str) -> dict:
    return {"error": {"code": code, "message": reason, "errors": [{"reason": reason}]}}


def test_delete_many_maps_parts_and_retries_transient_parts(scripted):
    api, http = scripted(
        [
            _batch_response(
                [
                    (204, {}),
                    (404, _err_body(404, "notFound")),
                    (403, _err_body(403, "insufficientFilePermissions")),
                    (503, _err_body(503, "backendError")),
                    (429, _err_body(429, "rateLimitExceeded")),
                ]
            ),
            _batch_response([(404, _err_body(404, "notFound")), (204, {})]),
        ]
    )
    res = api.delete_many(["a", "b", "c", "d", "e"])
    assert res["a"] is None and res["d"] is None and res["e"] is None  # d: 404 after a 503
    assert isinstance(res["b"], DriveNotFound)
    assert isinstance(res["c"], DrivePermissionDenied)
    assert api.calls.snapshot() == {"batch": 2}
    assert api.calls.retry_snapshot() == {"files.delete": 2}
    assert "/batch/drive/v3" in http.requests[0]["uri"]


def test_delete_many_splits_into_batches_of_100(scripted):
    ids = [f"id{i}" for i in range(250)]
    script = [_batch_response([(204, {})] * n) for n in (100, 100, 50)]
    api, http = scripted(script)
    assert api.delete_many(ids, missing_ok=True) == {i: None for i in ids}
    assert len(http.requests) == 3


def test_share_sends_no_notification(scripted):
    api, http = scripted([ok({"id": "perm", "role": "writer"})])
    api.share("f", "bob@example.com", role="writer")
    assert "sendNotificationEmail=false" in http.requests[0]["uri"]
    assert json.loads(http.requests[0]["body"]) == {"type": "user", "role": "writer", "emailAddress": "bob@example.com"}
    with pytest.raises(ValueError):
        api.share("f", "bob@example.com", role="owner")


def test_tiny_policy_is_used_by_default_fixture():
    assert TINY.max_wait < 0.01
