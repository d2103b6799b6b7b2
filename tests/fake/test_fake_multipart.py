"""The wire parsers on their own: streaming multipart/related and multipart/mixed batches."""

from __future__ import annotations

import hashlib
import random

import pytest

from syft_flwr_gdrive.fake import multipart
from syft_flwr_gdrive.fake.exceptions import ApiError


def trickle(data: bytes, seed: int = 0):
    """A read() that hands out 1..7 bytes at a time, to hit every buffer boundary."""
    rng, pos = random.Random(seed), 0

    def read(n: int) -> bytes:
        nonlocal pos
        k = min(n, rng.randint(1, 7))
        out = data[pos : pos + k]
        pos += len(out)
        return out

    return read


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
@pytest.mark.parametrize(
    "payload", [b"", b"plain", b"ends with CR\r", b"\n--=\r\n--==B=x--==" * 5, bytes(range(256)) * 9]
)
def test_related_body_streams_exact_bytes(eol, payload):
    b = b"==B=="  # payloads below contain near misses of the delimiter, never the delimiter itself
    body = (
        b"--"
        + b
        + eol
        + b"Content-Type: application/json"
        + eol
        + eol
        + b'{"name": "x"}'
        + eol
        + b"--"
        + b
        + eol
        + b"Content-Type: application/x-test"
        + eol
        + eol
        + payload
        + eol
        + b"--"
        + b
        + b"--"
        + eol
    )
    p = multipart.StreamingRelated(trickle(body), len(body), b.decode())
    assert p.next_part() == {"content-type": "application/json"}
    assert p.read_body(1000) == b'{"name": "x"}'
    assert p.next_part() == {"content-type": "application/x-test"}
    got = []
    p.copy_body(got.append)
    assert hashlib.md5(b"".join(got)).digest() == hashlib.md5(payload).digest() and p.finished


def test_related_body_without_closing_boundary_is_400():
    body = b"--B\n\n{}\n--B\n\nno end"
    p = multipart.StreamingRelated(trickle(body), len(body), "B")
    p.next_part()
    p.read_body(100)
    p.next_part()
    with pytest.raises(ApiError):
        p.copy_body(lambda b: None)


def test_batch_parse_and_render_round_trip_shapes():
    body = (
        b"--xyz\r\nContent-Type: application/http\r\nContent-ID: <a + 1>\r\n\r\n"
        b"GET /drive/v3/files/abc?fields=id HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n\r\n"
        b"--xyz\r\nContent-Type: application/http\r\nContent-ID: <a + 2>\r\n\r\n"
        b"POST /drive/v3/files HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}\r\n"
        b"--xyz--\r\n"
    )
    reqs = multipart.parse_batch(body, 'multipart/mixed; boundary="xyz"')
    assert [(r.method, r.target, r.body) for r in reqs] == [
        ("GET", "/drive/v3/files/abc?fields=id", b""),
        ("POST", "/drive/v3/files", b"{}"),
    ]
    assert reqs[0].headers["authorization"] == "Bearer t"
    data, ctype = multipart.render_batch([multipart.InnerResponse(r.content_id, 200, "OK", [], b"{}") for r in reqs])
    assert ctype.startswith("multipart/mixed; boundary=")
    assert b"Content-ID: <response-a + 1>" in data and b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" in data
    too_many = (
        b"".join(b"--xyz\r\nContent-Type: application/http\r\n\r\nGET /x HTTP/1.1\r\n\r\n\r\n" for _ in range(101))
        + b"--xyz--"
    )
    with pytest.raises(ApiError) as e:
        multipart.parse_batch(too_many, "multipart/mixed; boundary=xyz")
    assert e.value.status == 400
