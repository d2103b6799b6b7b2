import struct

import pytest

from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.mailbox.envelope import MAGIC
from syft_flwr_gdrive.mailbox.envelope import WIRE_READS
from syft_flwr_gdrive.mailbox.envelope import WIRE_VERSION
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import EnvelopeError
from syft_flwr_gdrive.mailbox.envelope import decode_header
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
    assert (WIRE_VERSION, WIRE_READS) == (4, {1, 2, 3, 4})
    with pytest.raises(
        EnvelopeError, match=r"version 99 is not one this build reads \(it reads 1, 2, 3, 4, writes 4\).*Fix: upgrade"
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


@pytest.mark.parametrize(
    "version, codecs, allowed",
    [
        (2, [CODEC_SEAL, "sfg-flwr-parts-v1"], True),  # the seal's signature covers the payload
        (2, ["sfg-flwr-parts-v1"], False),  # nothing else would check a plaintext payload
        (2, ["sfg-flwr-parts-v1", CODEC_SEAL], False),  # only the outermost codec counts
        (1, [CODEC_SEAL, "sfg-flwr-parts-v1"], False),  # version 1 always gave the digest
    ],
)
def test_only_a_sealed_payload_may_go_without_its_digest(version, codecs, allowed):
    body = _with_header(version=version, codecs=codecs, sha256="")
    if allowed:
        header, payload = decode(body)  # left to the seal's own checks, not hashed here
        assert header.sha256 == "" and payload == b"p" and header.version == version
    else:
        with pytest.raises(EnvelopeError, match="only a sealed payload's may be empty"):
            decode(body)


def test_a_version_1_body_is_still_read_and_its_digest_checked():
    body = _with_header(version=1)  # what the previous release wrote: every payload with its SHA-256
    header, payload = decode(body)
    assert header.version == 1 and payload == b"p"
    with pytest.raises(EnvelopeError, match="SHA-256 does not match"):
        decode(body[:-1] + b"q")


def test_payload_limit():
    with pytest.raises(EnvelopeError, match="exceeds"):
        decode(encode(env(), b"x" * 100), max_payload=10)


def test_expiry():
    e = env(created_at=1000.0, ttl=10.0)
    assert not e.expired(now=1005) and e.expired(now=1011)
