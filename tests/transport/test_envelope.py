import struct

import pytest

from syft_flwr_gdrive.transport.envelope import MAGIC
from syft_flwr_gdrive.transport.envelope import Envelope
from syft_flwr_gdrive.transport.envelope import EnvelopeError
from syft_flwr_gdrive.transport.envelope import decode_header
from tests.helpers.envelopes import decode
from tests.helpers.envelopes import encode


def env(**kw):
    base = dict(run_id=7, message_id="m1", sender="a@x.com", recipient="b@y.com", kind="request", app="flwr/t")
    base.update(kw)
    return Envelope(**base)


def test_roundtrip_fills_hash_and_size():
    body = encode(env(), b"payload")
    header, payload = decode(body)
    assert payload == b"payload"
    assert header.size == 7 and len(header.sha256) == 64
    assert header.run_id == 7 and header.kind == "request"


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda b: b[:3], "truncated"),
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:-1], "truncated or padded"),
        (lambda b: b + b"!", "truncated or padded"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "SHA-256"),
        (lambda b: MAGIC + struct.pack(">I", 10**6) + b"{}", "exceeds"),
        (lambda b: MAGIC + struct.pack(">I", 2) + b"[]", "not a JSON object"),
        (lambda b: MAGIC + struct.pack(">I", 3) + b"\xff\xfe{", "UTF-8 JSON"),
    ],
)
def test_corrupt_bodies_are_rejected_with_a_reason(mutate, reason):
    with pytest.raises(EnvelopeError, match=reason):
        decode(mutate(encode(env(), b"payload")))


def _with_header(**changes):
    import json

    body = encode(env(), b"p")
    (n,) = struct.unpack(">I", body[4:8])
    header = json.loads(body[8 : 8 + n])
    header.update(changes)
    for k, v in list(changes.items()):
        if v is None:
            del header[k]
    raw = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(raw)) + raw + b"p"


def test_wrong_version_names_the_fix():
    with pytest.raises(
        EnvelopeError, match=r"version 99 is not one this build reads \(it reads 1, writes 1\).*Fix: upgrade"
    ):
        decode(_with_header(version=99))
    with pytest.raises(EnvelopeError, match="version True"):
        decode(_with_header(version=True))


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"kind": "bogus"}, "kind"),
        ({"run_id": "7"}, "wrong type"),
        ({"run_id": True}, "wrong type"),
        ({"sender": None}, "lacks"),
        ({"extra": 1}, "unknown"),
        ({"ttl": 0}, "non-positive"),
        ({"sha256": "abc"}, "64-character"),
        ({"codecs": [1]}, "codecs"),
    ],
)
def test_malformed_headers(changes, reason):
    with pytest.raises(EnvelopeError, match=reason):
        decode_header(_with_header(**changes))


def test_payload_limit():
    with pytest.raises(EnvelopeError, match="exceeds"):
        decode(encode(env(), b"x" * 100), max_payload=10)


def test_expiry():
    e = env(created_at=1000.0, ttl=10.0)
    assert not e.expired(now=1005) and e.expired(now=1011)
