"""Fuzzing the decoders that read what others wrote: the envelope and the file's appProperties.

Properties: arbitrary bytes and mutated valid bodies either decode or raise EnvelopeError
(never anything else, never hang); valid bodies round-trip; ``routing_from_properties``
returns a Routing or None for any dict. Targeted examples below pin down the inputs that
escaped as other exceptions before 584af16 (they were strict xfails; now regression tests).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import struct

import pytest
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.routing import KINDS
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.mailbox.envelope import MAGIC
from syft_flwr_gdrive.mailbox.envelope import MAX_HEADER_BYTES
from syft_flwr_gdrive.mailbox.envelope import PREFIX_BYTES
from syft_flwr_gdrive.mailbox.envelope import WIRE_READS
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import EnvelopeError
from syft_flwr_gdrive.mailbox.envelope import decode_file
from syft_flwr_gdrive.mailbox.envelope import decode_header
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.envelopes import decode
from tests.helpers.envelopes import encode
from tests.helpers.envelopes import with_payload
from tests.helpers.routings import request_routing

FUZZ = settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
APP = "flwr/fuzz-app"
EXAMPLES = {"count": 0}


def _count() -> None:
    EXAMPLES["count"] += 1


def decode_all_ways(body: bytes, max_payload: int | None = None):
    """decode, decode_file and decode_header must agree: all succeed, or all raise EnvelopeError."""
    outcomes = []
    for fn in (
        lambda: decode(body, max_payload=max_payload),
        lambda: decode_file(io.BytesIO(body), max_payload=max_payload),
        lambda: decode_header(body),
    ):
        try:
            outcomes.append(fn())
        except EnvelopeError as exc:
            assert str(exc), "an EnvelopeError must say what is wrong"
            outcomes.append(None)
    full, from_file, header = outcomes
    assert (full is None) == (from_file is None), (full, from_file)
    if full is not None:
        env, payload = full
        env2, offset = from_file
        assert env2 == env and body[offset:] == payload
        assert header is not None and header[0] == env
    return full


# -- strategies --------------------------------------------------------------------------------

# Realistic JSON values (integers within 64 bits; floats may be NaN/inf, which json writes).
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

ids = st.from_regex(r"[A-Za-z0-9._@+-]{1,64}", fullmatch=True)
emails = st.from_regex(r"[a-z0-9.'+_-]{1,20}@[a-z0-9-]{1,15}\.[a-z]{2,5}", fullmatch=True)
envelopes = st.builds(
    Envelope,
    run_id=st.integers(0, 2**63 - 1),
    message_id=ids,
    sender=emails,
    recipient=emails,
    kind=st.sampled_from(sorted(KINDS)),
    app=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn", "Zs")), max_size=40),
    reply_to=st.just("") | ids,
    created_at=st.floats(0, 4e9, allow_nan=False),
    ttl=st.floats(0.001, 1e9, allow_nan=False),
    codecs=st.lists(st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True), max_size=3).map(tuple),
)


@st.composite
def valid_bodies(draw) -> tuple[Envelope, bytes, bytes]:
    env = draw(envelopes)
    payload = draw(st.binary(max_size=2048))
    return env, payload, encode(env, payload)


@st.composite
def mutated_bodies(draw) -> bytes:
    """A valid body damaged in one of the ways storage, networks or people damage files."""
    env, payload, body = draw(valid_bodies())
    how = draw(
        st.sampled_from(["truncate", "flip", "insert", "delete", "length", "header-field", "header-json", "splice"])
    )
    if how == "truncate":
        return body[: draw(st.integers(0, len(body)))]
    if how == "flip":
        i = draw(st.integers(0, len(body) - 1))
        return body[:i] + bytes([body[i] ^ draw(st.integers(1, 255))]) + body[i + 1 :]
    if how == "insert":
        i = draw(st.integers(0, len(body)))
        return body[:i] + draw(st.binary(min_size=1, max_size=64)) + body[i:]
    if how == "delete":
        i = draw(st.integers(0, len(body) - 1))
        return body[:i] + body[i + draw(st.integers(1, 64)) :]
    if how == "length":
        return MAGIC + struct.pack(">I", draw(st.integers(0, 2**32 - 1))) + body[PREFIX_BYTES:]
    (header_len,) = struct.unpack(">I", body[4:8])
    header = json.loads(body[8 : 8 + header_len])
    if how == "header-field":
        key = draw(st.sampled_from(sorted(header)) | st.text(max_size=10))
        if draw(st.booleans()):
            header.pop(key, None)
        else:
            header[key] = draw(json_values)
        raw = json.dumps(header).encode("utf-8")
    elif how == "header-json":
        raw = json.dumps(draw(json_values)).encode("utf-8")
    else:  # splice: header and payload of different bodies
        raw = json.dumps(header).encode("utf-8")
        payload = draw(st.binary(max_size=256))
    return MAGIC + struct.pack(">I", len(raw)) + raw + payload


# -- envelope ----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(MAGIC)
@example(MAGIC + b"\xff\xff\xff\xff")
@example(MAGIC + struct.pack(">I", 2) + b"{}")
@example(MAGIC + struct.pack(">I", 4) + b"null")
@example(MAGIC + struct.pack(">I", 2) + b"\xff\xfe")
def test_arbitrary_bytes_decode_or_raise_envelope_error(data):
    _count()
    decode_all_ways(data)
    decode_all_ways(MAGIC + data)
    decode_all_ways(MAGIC + struct.pack(">I", len(data)) + data)


@FUZZ
@given(mutated_bodies())
def test_mutated_valid_bodies_decode_or_raise_envelope_error(body):
    _count()
    decoded = decode_all_ways(body)
    if decoded is not None:  # whatever decodes is self-consistent
        env, payload = decoded
        assert env.size == len(payload) and env.version in WIRE_READS and env.kind in KINDS
        if env.sha256:
            assert env.sha256 == hashlib.sha256(payload).hexdigest()
        else:  # left to the seal, whose signature covers the payload (version 2 only)
            assert env.codecs[:1] == (CODEC_SEAL,) and env.version >= 2


@FUZZ
@given(valid_bodies(), st.integers(0, 4096))
def test_valid_bodies_round_trip(case, max_payload):
    _count()
    env, payload, body = case
    decoded_env, decoded_payload = decode_all_ways(body)
    assert decoded_payload == payload
    assert decoded_env == with_payload(env, payload)
    if len(payload) > max_payload:
        with pytest.raises(EnvelopeError, match="exceeds"):
            decode(body, max_payload=max_payload)
    else:
        assert decode(body, max_payload=max_payload)[1] == payload


def _header_body(header: bytes, payload: bytes = b"") -> bytes:
    return MAGIC + struct.pack(">I", len(header)) + header + payload


def _fields(**changes) -> dict:
    fields = dict(
        version=1,
        run_id=1,
        message_id="m",
        sender="s@x.io",
        recipient="r@x.io",
        kind="request",
        app=APP,
        reply_to="",
        created_at=1.0,
        ttl=60.0,
        codecs=["flwr-message-proto"],
        sha256=hashlib.sha256(b"").hexdigest(),
        size=0,
    )
    fields.update(changes)
    return fields


@pytest.mark.parametrize(
    "body",
    [
        # was: RecursionError escaped (json.loads of a header of 60,000 '[' within the 64 KiB limit); fixed in
        #   584af16
        pytest.param(_header_body(b"[" * (MAX_HEADER_BYTES - 1)), id="deeply-nested-json"),
        # was: ValueError (not EnvelopeError) escaped (Python's 4300-digit int-parsing limit in json.loads); fixed
        #   in 584af16
        pytest.param(_header_body(b'{"version":1,"run_id":' + b"9" * 5000 + b"}"), id="5000-digit-integer"),
        # was: OverflowError escaped (float(raw['created_at']) of an int > 1.8e308); fixed in 584af16
        pytest.param(_header_body(json.dumps(_fields(created_at=10**400)).encode()), id="created_at-10**400"),
        # was: OverflowError escaped (float(raw['ttl']) of an int > 1.8e308); fixed in 584af16
        pytest.param(_header_body(json.dumps(_fields(ttl=10**400)).encode()), id="ttl-10**400"),
    ],
)
def test_hostile_headers_raise_envelope_error(body):
    for fn in (lambda: decode(body), lambda: decode_file(io.BytesIO(body)), lambda: decode_header(body)):
        with pytest.raises(EnvelopeError):
            fn()


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   envelope.decode_header accepts NaN/Infinity for created_at and ttl (Python's json reads them; the 'ttl <= 0'
#   check is False for NaN): a message with ttl NaN or created_at Infinity never expires
@pytest.mark.parametrize(
    "changes",
    [dict(ttl=math.nan), dict(ttl=math.inf), dict(created_at=math.inf), dict(created_at=math.nan)],
    ids=["ttl-nan", "ttl-inf", "created_at-inf", "created_at-nan"],
)
def test_non_finite_times_are_rejected(changes):
    with pytest.raises(EnvelopeError):
        decode(_header_body(json.dumps(_fields(**changes)).encode()))


# -- routing_from_properties -----------------------------------------------------------------


def _props(**changes) -> dict:
    recipient = "r@x.io"
    props = {
        layout.P_VERSION: "1",
        layout.P_APP: layout.app_hash(APP),
        layout.P_RUN: "7",
        layout.P_MSG: "m1",
        layout.P_REPLY_TO: "",
        layout.P_KIND: "request",
        layout.P_FROM: "s@x.io",
        layout.P_TO: str(node_id_for(recipient)),
        layout.P_TO_EMAIL: recipient,
        layout.P_CREATED: "1.0",
        layout.P_TTL: "60.0",
    }
    props.update(changes)
    return props


any_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=10)
    | st.lists(st.integers(), max_size=3)
)
PROP_KEYS = [
    layout.P_VERSION,
    layout.P_APP,
    layout.P_RUN,
    layout.P_MSG,
    layout.P_REPLY_TO,
    layout.P_KIND,
    layout.P_FROM,
    layout.P_TO,
    layout.P_TO_EMAIL,
    layout.P_CREATED,
    layout.P_TTL,
]
# what Drive can hand back: string values (Drive stores appProperties as strings)
string_dicts = st.dictionaries(st.sampled_from(PROP_KEYS) | st.text(max_size=12), st.text(max_size=40), max_size=14)


@st.composite
def mutated_props(draw) -> dict:
    props = _props()
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(PROP_KEYS))
        if draw(st.booleans()):
            props.pop(key, None)
        else:
            props[key] = draw(
                st.text(max_size=40) | st.sampled_from(["nan", "inf", "-1", "0", "1e999", "", " 7 ", "request", "stop"])
            )
    return props


def _check_routing(props) -> None:
    routing = layout.routing_from_properties(props, APP)
    assert routing is None or isinstance(routing, Routing)
    if routing is not None:
        assert routing.kind in KINDS and routing.message_id and routing.app == APP
        assert str(node_id_for(routing.recipient)) == props[layout.P_TO]


@FUZZ
@given(st.none() | string_dicts | mutated_props())
def test_routing_from_string_properties_is_a_routing_or_none(props):
    _count()
    _check_routing(props)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   layout.routing_from_properties raises OverflowError for a non-string sfg_run of float('inf') (int(inf)); it
#   catches only KeyError/TypeError/ValueError
@FUZZ
@given(
    st.dictionaries(st.sampled_from(PROP_KEYS) | st.text(max_size=12), any_values, max_size=14).map(
        lambda d: {**_props(), **d}
    )
)
@example({**_props(), layout.P_RUN: math.inf})
def test_routing_from_arbitrary_dicts_is_a_routing_or_none(props):
    _count()
    _check_routing(props)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   layout.routing_from_properties accepts sfg_ttl/sfg_at of 'nan' or 'inf' (float() parses them; the 'ttl <= 0'
#   check is False for NaN), so the Mailbox's expiry check never fires for such a file
@pytest.mark.parametrize(
    "key, value", [(layout.P_TTL, "nan"), (layout.P_TTL, "inf"), (layout.P_CREATED, "inf"), (layout.P_CREATED, "nan")]
)
def test_routing_with_non_finite_times_is_rejected(key, value):
    assert layout.routing_from_properties(_props(**{key: value}), APP) is None


def test_valid_properties_round_trip():
    routing = request_routing(7, "m1", sender="s@x.io", recipient="r@x.io", app=APP, created_at=1.0, ttl=60.0)
    assert layout.routing_from_properties(layout.message_properties(routing), APP) == routing
    assert layout.routing_from_properties(layout.message_properties(routing), "flwr/other") is None


# -- parts payload index (flower_codec) ----------------------------------------------------------
# A peer writes the index of every payload it sends: whatever it holds, decoding raises PayloadError or succeeds.


def _valid_index() -> dict:
    import numpy as np
    from flwr.app import ArrayRecord
    from flwr.app import Metadata
    from flwr.app import RecordDict
    from flwr.app.message.message import make_message

    from syft_flwr_gdrive.flower.codec import encode_message

    meta = Metadata(
        run_id=1,
        message_id="m",
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=1.0,
        ttl=60.0,
        message_type="train",
    )
    msg = make_message(meta, RecordDict({"arrays": ArrayRecord([np.arange(4, dtype=np.float32), np.eye(2)])}))
    index_seg, proto, *inline = [bytes(s) for s in encode_message(msg)]
    return {"index": json.loads(index_seg[4:]), "proto": proto, "inline": b"".join(inline)}


_VALID = _valid_index()


@st.composite
def mutated_indexes(draw) -> dict:
    index = json.loads(json.dumps(_VALID["index"]))
    entry = draw(st.sampled_from(index["arrays"]))
    how = draw(st.sampled_from(["field", "drop", "blob", "top"]))
    if how == "field":
        fields = sorted(entry) + [
            "sha256",
            "blob_digest",
            "blob_key",
            "blob_cipher",
            "blob_parts",
            "blob_part_bytes",
            "extra",
        ]
        entry[draw(st.sampled_from(fields))] = draw(json_values)
    elif how == "drop":
        entry.pop(draw(st.sampled_from(sorted(entry))))
    elif how == "blob":
        digest = draw(st.sampled_from(["sha256", "blob_digest"]))  # the previous formats' field, or format 3's
        entry.update(
            blob=draw(json_values | st.text(max_size=30)),
            blob_key=draw(json_values | st.just(base64.b64encode(bytes(32)).decode())),
        )
        entry[digest] = draw(json_values | st.just("0" * 64) | st.just("blake3:" + "0" * 64))
        if draw(st.booleans()):
            entry["blob_cipher"] = draw(json_values | st.sampled_from(["aes-256-gcm", "chacha20-poly1305"]))
        if draw(st.booleans()):  # format 4: a blob in parts
            entry["blob_parts"] = draw(json_values | st.lists(st.text(max_size=12), max_size=4))
            entry["blob_part_bytes"] = draw(json_values | st.integers(min_value=-1, max_value=2**40))
    else:
        index[draw(st.sampled_from(["message", "arrays", "other"]))] = draw(json_values)
    return index


@FUZZ
@given(index=mutated_indexes() | json_values, tail=st.sampled_from(["valid", "random"]), noise=st.binary(max_size=64))
@example(
    index={**_VALID["index"], "arrays": [{**_VALID["index"]["arrays"][0], "size": "abc"}]}, tail="valid", noise=b""
)
@example(index={"message": 10**30, "arrays": []}, tail="valid", noise=b"")
@example(index={"message": 0, "arrays": [{}] * 3}, tail="random", noise=b"")
def test_parts_payloads_decode_or_raise_payload_error(index, tail, noise):
    from syft_flwr_gdrive.crypto.blobseal import BLOB_CIPHERS
    from syft_flwr_gdrive.crypto.blobseal import BLOB_DIGESTS
    from syft_flwr_gdrive.crypto.blobseal import sealed_blob_size
    from syft_flwr_gdrive.flower.codec import PayloadError
    from syft_flwr_gdrive.flower.codec import decode_message

    _count()
    raw = json.dumps(index).encode()
    rest = _VALID["proto"] + _VALID["inline"] if tail == "valid" else noise
    payload = struct.pack(">I", len(raw)) + raw + rest
    fetched = []
    try:
        decode_message(io.BytesIO(payload), len(payload), fetch_blob=lambda ref: fetched.append(ref) or b"")
    except PayloadError as exc:
        assert str(exc)
    for ref in fetched:  # a blob is asked for only with a well-formed reference
        algorithm, _, hexdigest = ref.digest.partition(":")
        assert algorithm in BLOB_DIGESTS and len(hexdigest) == 64 and len(ref.key) == 32 and isinstance(ref.size, int)
        assert ref.cipher in BLOB_CIPHERS
        assert sum(ref.part_sizes(sealed_blob_size(ref.size))) == sealed_blob_size(ref.size)
        assert all(n > 0 for n in ref.part_sizes(sealed_blob_size(ref.size)))


@pytest.mark.parametrize(
    "field, value",
    [
        ("message_id", "a\nb"),
        ("message_id", "x" * 65),
        ("message_id", ""),
        ("reply_to", "a b"),
        ("reply_to", "q'uote"),
        ("sender", "a\n@x.io"),
        ("recipient", "no-at-sign"),
        ("codecs", ["x\ny"]),
        ("codecs", ["c"] * 9),
        ("app", "a\x1bb"),
    ],
)
def test_peer_chosen_header_fields_are_validated(field, value):
    """Ids, emails, codec names and the app reach log lines, file names and the ledger: checked when parsed."""
    with pytest.raises(EnvelopeError):
        decode(_header_body(json.dumps(_fields(**{field: value})).encode()))


def test_fuzz_examples_were_run():
    """Runs last in this module: how many generated inputs the properties above saw."""
    print(f"\nfuzz examples run in this module: {EXAMPLES['count']}")
    assert EXAMPLES["count"] >= 1000
