"""Routing is defined once: every encoding (envelope, Drive properties, directory line, sealing) covers every field."""

from __future__ import annotations

import dataclasses
import json

from syft_flwr_gdrive.base.routing import Routing
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import decode_header
from syft_flwr_gdrive.mailbox.envelope import header_bytes
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from syft_flwr_gdrive.transport.drive import layout

R = Routing(
    app="flwr/x",
    run_id=3,
    message_id="m1",
    reply_to="m0",
    kind="reply",
    sender="a@x.com",
    recipient="b@x.com",
    created_at=1.5,
    ttl=600.0,
)


def test_the_envelope_header_is_routing_plus_integrity():
    names = [f.name for f in dataclasses.fields(Envelope)]
    assert names[: len(Routing.field_names())] == list(Routing.field_names())
    envelope = Envelope(**R.as_dict(), sha256="0" * 64)
    decoded, _ = decode_header(header_bytes(envelope))
    assert decoded.routing() == R and decoded == envelope


def test_drive_properties_carry_every_field_and_read_back():
    assert set(layout.ROUTING_PROPERTIES) == set(Routing.field_names())
    props = layout.message_properties(R)
    assert props[layout.P_APP] == layout.app_hash("flwr/x") and props[layout.P_VERSION] == str(layout.LAYOUT_VERSION)
    assert layout.routing_from_properties(props, "flwr/x") == R
    assert layout.routing_from_properties(props, "flwr/other") is None  # the app is known, never listed


def test_a_drive_layout_this_build_cannot_read_is_named_with_the_fix():
    props = {**layout.message_properties(R), layout.P_VERSION: "2"}
    assert layout.routing_from_properties(props, "flwr/x") is None
    problem = layout.version_problem(props)
    assert problem is not None and "layout version '2' is not one this build reads (it reads 1, writes 1)" in problem
    assert "Fix: upgrade" in problem and layout.version_problem(layout.message_properties(R)) is None


def test_the_directory_line_carries_every_field(tmp_path):
    handle = DirectoryTransport(tmp_path, "a@x.com").send(R, b"body")
    line = json.loads((tmp_path / handle).read_bytes().split(b"\n", 1)[0])
    assert set(line) == {"layout", *Routing.field_names()}
    [posting] = DirectoryTransport(tmp_path, "b@x.com").poll("flwr/x").inbound
    assert posting.routing == R


def test_sealing_binds_every_field_in_order_exactly():
    assert R.authenticated_data() == b'["flwr/x",3,"m1","m0","reply","a@x.com","b@x.com","1.5","600.0"]'
    for name in Routing.field_names():  # a change to any field changes what sealing binds to
        other = {"run_id": 4, "created_at": 1.25, "ttl": 601.0}.get(name, "z@x.com")
        assert dataclasses.replace(R, **{name: other}).authenticated_data() != R.authenticated_data()
    assert dataclasses.replace(R, ttl=600).authenticated_data() == R.authenticated_data()  # 600 and 600.0 alike


def test_text_and_dict_forms_round_trip_and_refuse_what_is_wrong():
    assert Routing.from_text(R.as_text()) == R and Routing.from_dict(R.as_dict()) == R
    assert Routing.from_dict({**R.as_dict(), "created_at": 5}) == dataclasses.replace(R, created_at=5.0)
    for bad in (
        {**R.as_dict(), "run_id": "1"},
        {**R.as_dict(), "run_id": True},
        {**R.as_dict(), "ttl": -1.0},
        {**R.as_dict(), "created_at": float("nan")},
        {k: v for k, v in R.as_dict().items() if k != "kind"},
        ["not", "a", "dict"],
    ):
        assert Routing.from_dict(bad) is None
    for bad_text in (
        {**R.as_text(), "run_id": "x"},
        {**R.as_text(), "ttl": "inf"},
        {**R.as_text(), "kind": None},
        {k: v for k, v in R.as_text().items() if k != "sender"},
    ):
        assert Routing.from_text(bad_text) is None


def test_disagreement_names_the_fields():
    assert R.disagreement(dataclasses.replace(R, kind="request", run_id=9)) == ["run_id", "kind"]
    assert Envelope(**R.as_dict()).routing().disagreement(R) == []
