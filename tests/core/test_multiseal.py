"""Multi-recipient sealing: one body, the key wrapped per recipient, everything signed."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.crypto.multiseal import _signed
from syft_flwr_gdrive.crypto.multiseal import open_bundle
from syft_flwr_gdrive.crypto.multiseal import open_plain
from syft_flwr_gdrive.crypto.multiseal import pack_plain
from syft_flwr_gdrive.crypto.multiseal import read_head
from syft_flwr_gdrive.crypto.multiseal import seal_bundle
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from tests.helpers.keys import sealers

DS, A, B, C, EVE = "ds@x.com", "a@x.com", "b@x.com", "c@x.com", "eve@x.com"
HEAD = BundleHead(app="flwr/c", run_id=7, bundle_id="b" * 32, kind="request", sender=DS, created_at=1000.0, ttl=60.0)


@pytest.fixture
def party():
    return sealers(DS, A, B, C)


def parts():
    return [Part(A, "1" * 32, private=b"meta-a"), Part(B, "2" * 32, reply_to="9" * 32, private=b"meta-b")]


def test_each_recipient_opens_only_its_own_part(party):
    data = seal_bundle(party[DS], HEAD, parts(), b"global model " * 50)
    got_a, got_b = open_bundle(party[A], data, A), open_bundle(party[B], data, B)
    assert got_a.payload == got_b.payload == b"global model " * 50
    assert (got_a.part.message_id, got_a.part.private) == ("1" * 32, b"meta-a")
    assert (got_b.part.message_id, got_b.part.reply_to, got_b.part.private) == ("2" * 32, "9" * 32, b"meta-b")
    assert got_a.head == HEAD and got_a.recipients == 2
    assert b"global model" not in data and b"meta-a" not in data  # nothing readable at rest


def test_a_peer_that_is_not_a_recipient_cannot_open_it(party):
    data = seal_bundle(party[DS], HEAD, parts(), b"x")
    with pytest.raises(CryptoError, match="0 parts for c@x.com"):
        open_bundle(party[C], data, C)


def test_a_recipient_cannot_open_anothers_part_by_claiming_its_address(party):
    data = seal_bundle(party[DS], HEAD, parts(), b"x")
    with pytest.raises(CryptoError, match="does not open with my key"):
        open_bundle(party[C], data, A)  # C's keys, A's part


def _rewrite_header(data: bytes, change) -> bytes:
    """The bundle with its header JSON changed and everything else (signature included) kept."""
    _, _, length = struct.unpack_from(">4sBI", data)
    doc = json.loads(data[9 : 9 + length])
    change(doc)
    header = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return data[:5] + struct.pack(">I", len(header)) + header + data[9 + length :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["parts"][0].update(wrap=d["parts"][1]["wrap"]),  # swapped wrap
        lambda d: d["parts"][0].update(msg="3" * 32),  # re-routed message id
        lambda d: d["parts"][0].update(re="4" * 32),  # forged reply-to
        lambda d: d.update(run_id=8),  # moved to another run
        lambda d: d["parts"].append(dict(d["parts"][0], to=EVE)),  # recipient added
    ],
)
def test_a_tampered_wrap_or_routing_is_refused(party, tamper):
    data = _rewrite_header(seal_bundle(party[DS], HEAD, parts(), b"x"), tamper)
    with pytest.raises(CryptoError, match="signature"):
        open_bundle(party[A], data, A)


def test_a_tampered_body_is_refused(party):
    data = bytearray(seal_bundle(party[DS], HEAD, parts(), b"y" * 100))
    data[-80] ^= 1  # inside the ciphertext
    with pytest.raises(CryptoError, match="signature"):
        open_bundle(party[A], bytes(data), A)


def test_a_bundle_re_signed_by_someone_else_is_refused(party):
    eve = Sealer(Identity.ephemeral(), PinStore(None))
    for who in (A, B):
        eve.learn(who, party[who].identity.public)
    data = seal_bundle(eve, HEAD, parts(), b"x")  # claims DS as sender, signed by eve
    with pytest.raises(CryptoError, match="not ds@x.com's pinned key"):
        open_bundle(party[A], data, A)


def test_a_wrap_altered_and_re_signed_by_the_sender_does_not_open(party):
    """Even the signer cannot hand A's part to B: each wrap binds its recipient's key and routing."""
    data = seal_bundle(party[DS], HEAD, parts(), b"x")
    head, raw_parts, *_ = read_head(data)
    assert [p["to"] for p in raw_parts] == [A, B]
    forged = _rewrite_header(data, lambda d: d["parts"][1].update(wrap=d["parts"][0]["wrap"]))
    _, _, _, header, cipher, _ = read_head(forged)
    resigned = forged[: len(forged) - 68] + party[DS].identity.sign(_signed(header, cipher)) + b"SFGM"
    with pytest.raises(CryptoError, match="does not open with my key"):
        open_bundle(party[B], resigned, B)


def test_unknown_recipient_key_and_bad_part_lists(party):
    with pytest.raises(MissingPeerKey):
        seal_bundle(party[DS], HEAD, [Part(EVE, "5" * 32)], b"x")
    with pytest.raises(CryptoError, match="1 to"):
        seal_bundle(party[DS], HEAD, [], b"x")
    with pytest.raises(CryptoError, match="twice"):
        seal_bundle(party[DS], HEAD, [Part(A, "1" * 32), Part(A.upper(), "2" * 32)], b"x")


@pytest.mark.parametrize("junk", [b"", b"SFGM", b"SFGM\x01" + b"\xff" * 80 + b"SFGM", b"XXXX" + bytes(100)])
def test_junk_is_refused_with_a_reason(party, junk):
    with pytest.raises(CryptoError):
        open_bundle(party[A], junk, A)


def test_malformed_header_is_refused(party):
    data = _rewrite_header(
        seal_bundle(party[DS], HEAD, parts(), b"x"), lambda d: d.update(eph=base64.b64encode(b"1").decode())
    )
    with pytest.raises(CryptoError, match="malformed"):
        open_bundle(party[A], data, A)


def test_fifty_recipients_one_body(party):
    many = sealers(DS, *[f"do{i:02d}@x.com" for i in range(50)])
    payload = b"m" * 4096
    data = seal_bundle(many[DS], HEAD, [Part(f"do{i:02d}@x.com", f"{i:032x}") for i in range(50)], payload)
    assert len(data) < len(payload) + 50 * 300  # the body once, ~200 bytes of routing and wrap per recipient
    assert open_bundle(many["do49@x.com"], data, "do49@x.com").part.message_id == f"{49:032x}"


def test_recipients_are_accounts_not_spellings():
    gm = sealers(DS, "ann.lee@gmail.com")
    data = seal_bundle(gm[DS], HEAD, [Part("ann.lee@gmail.com", "1" * 32)], b"x")
    assert open_bundle(gm["ann.lee@gmail.com"], data, "annlee@googlemail.com").part.message_id == "1" * 32
    with pytest.raises(CryptoError, match="twice"):
        seal_bundle(gm[DS], HEAD, [Part("ann.lee@gmail.com", "1" * 32), Part("annlee@gmail.com", "2" * 32)], b"x")


def test_a_clear_bundle_gives_each_recipient_its_own_part_and_nothing_for_others():
    data = pack_plain(HEAD, parts(), b"model")
    got = open_plain(data, "A@X.com")
    assert (got.head, got.part.message_id, got.part.private, got.payload) == (HEAD, "1" * 32, b"meta-a", b"model")
    with pytest.raises(CryptoError, match="0 parts for c@x.com"):
        open_plain(data, C)


@pytest.mark.parametrize("damage", [lambda d: d[:-1], lambda d: d[:8] + b"{" + d[9:], lambda d: b"SFGM" + d[4:]])
def test_a_damaged_clear_bundle_is_a_crypto_error_not_a_crash(damage):
    with pytest.raises(CryptoError):
        open_plain(damage(pack_plain(HEAD, parts(), b"model")), A)
