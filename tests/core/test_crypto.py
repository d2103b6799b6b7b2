"""End-to-end encryption and signatures through Mailbox, on the in-memory transport."""

from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import fields
from dataclasses import replace

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.keys import PublicKeys
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.crypto.seal import SEAL_AESGCM
from syft_flwr_gdrive.crypto.seal import SEAL_CHACHA
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.crypto.seal import sealer_for
from syft_flwr_gdrive.mailbox.envelope import WIRE_VERSION
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import header_bytes
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.envelopes import decode
from tests.helpers.envelopes import encode

APP, DS, DO, EVE = "flwr/c", "ds@x.com", "do@x.com", "eve@x.com"


def box(hub, email, peers, identity=None, pins=None):
    sealer = Sealer(identity or Identity.ephemeral(), pins or PinStore(None))
    mailbox = Mailbox(MemoryTransport(email, hub), APP, peers, Ledger(None), sealer=sealer)
    mailbox.prepare()
    return mailbox


@pytest.fixture(params=["buffered", "streamed"])
def pair(request, monkeypatch):
    """Two mailboxes; "streamed" opens every body while it is read (the path of bodies over 8 MiB)."""
    if request.param == "streamed":
        monkeypatch.setattr("syft_flwr_gdrive.mailbox.messages.IN_MEMORY_BODY", 1024)
    hub = MemoryHub()
    ds, do = box(hub, DS, [DO]), box(hub, DO, [DS])
    ds.poll()  # learn the peer's keys from the listing
    do.poll()
    return hub, ds, do


def test_sealed_roundtrip_and_nothing_readable_on_storage(pair):
    hub, ds, do = pair
    secret = b"patient 4711 has glucose 182 mg/dl" * 100
    ds.send(kind="request", recipient=DO, run_id=1, payload=secret)
    [stored] = hub.files.values()
    assert secret[:20] not in stored.body  # only ciphertext at rest
    env, _ = decode(stored.body)
    assert env.codecs[0] == CODEC_SEAL
    assert env.version == WIRE_VERSION == 4 and env.sha256 == ""  # signed as it streams: no digest up front
    assert payload_of(stored.body)[4] == SEAL_AESGCM  # the seal's version byte names its cipher
    [delivery] = do.poll().deliveries
    assert delivery.payload == secret and delivery.envelope.codecs[0] != CODEC_SEAL


def _rewrap(env, payload: bytes, digest: str) -> bytes:
    """A valid envelope around ``payload``: with its SHA-256 ("given"), without ("none": version 2's
    sealed payload), or as the previous release wrote it ("v1")."""
    if digest == "given":
        return encode(env, payload)
    if digest == "v1":
        return encode(replace(env, version=1), payload)
    return header_bytes(replace(env, sha256="", size=len(payload))) + payload


@pytest.mark.parametrize("digest", ["none", "given", "v1"])
@pytest.mark.parametrize(
    "where", ["magic", "version", "start", "middle", "last", "signature", "end", "no-end", "half-trailer", "no-trailer"]
)
def test_tampered_messages_are_rejected(pair, caplog, where, digest):
    hub, ds, do = pair
    ds.send(kind="request", recipient=DO, run_id=1, payload=os.urandom(3000))
    [(handle, stored)] = hub.files.items()
    env, payload = decode(stored.body)
    cut = {"no-end": 1, "half-trailer": 34, "no-trailer": 68}.get(where)
    if cut is not None:
        forged = bytearray(payload[:-cut])  # a truncated trailer, in an envelope that says so
    else:
        pos = {
            "magic": 0,
            "version": 4,
            "start": 60,
            "middle": len(payload) // 2,
            "last": len(payload) - 69,
            "signature": len(payload) - 5,
            "end": len(payload) - 1,
        }[where]
        forged = bytearray(payload)
        forged[pos] ^= 0x01
    stored.body = _rewrap(env, bytes(forged), digest)  # a valid envelope around the altered payload
    assert do.poll().deliveries == ()
    assert "rejected" in caplog.text and handle in caplog.text


@pytest.mark.parametrize("digest", ["none", "given", "v1"])
def test_an_untampered_body_opens_with_or_without_its_digest(pair, digest):
    """Version 2 leaves a sealed payload's digest out; a given one (a version 1 sender's) is checked."""
    hub, ds, do = pair
    secret = os.urandom(3000)
    ds.send(kind="request", recipient=DO, run_id=1, payload=secret)
    [stored] = hub.files.values()
    env, payload = decode(stored.body)
    stored.body = _rewrap(env, payload, digest)
    [delivery] = do.poll().deliveries
    assert delivery.payload == secret


@pytest.mark.parametrize("version", [1, 2])
def test_a_wrong_digest_is_refused_even_when_the_seal_is_intact(pair, caplog, version):
    hub, ds, do = pair
    ds.send(kind="request", recipient=DO, run_id=1, payload=os.urandom(3000))
    [(handle, stored)] = hub.files.items()
    env, payload = decode(stored.body)
    stored.body = header_bytes(replace(env, version=version, sha256="0" * 64)) + payload
    assert do.poll().deliveries == ()
    assert "SHA-256 does not match" in caplog.text and handle in caplog.text


def payload_of(body: bytes) -> bytes:
    return decode(body)[1]


def _sealed_request(sealer: Sealer, message_id: str, secret: bytes, *, version: int) -> tuple[Routing, bytes]:
    """A request from DS to DO sealed by ``sealer`` with seal ``version``, in the envelope that release wrote."""
    routing = Routing(
        run_id=1,
        message_id=message_id,
        kind="request",
        sender=DS,
        recipient=DO,
        app=APP,
        created_at=time.time(),
        ttl=600,
    )
    sealed = sealer.seal(routing, io.BytesIO(secret), len(secret), version=version)
    env = Envelope(
        **{f.name: getattr(routing, f.name) for f in fields(Routing)},
        codecs=(CODEC_SEAL, "x"),
        size=sealed.size,
        version=2 if version == SEAL_CHACHA else WIRE_VERSION,
    )
    return routing, header_bytes(env) + sealed.read()


def test_a_previous_release_chacha20_seal_still_opens(pair):
    """Message formats 1 and 2 sealed with ChaCha20-Poly1305 (seal version 1); this build still reads them."""
    hub, ds, do = pair
    secret = os.urandom(3000)
    routing, body = _sealed_request(ds.sealer, "m-old", secret, version=SEAL_CHACHA)
    assert payload_of(body)[4] == SEAL_CHACHA
    hub.put(DS, routing, body)
    [delivery] = do.poll().deliveries
    assert delivery.payload == secret


@pytest.mark.parametrize("sealed_as, claimed", [(SEAL_AESGCM, SEAL_CHACHA), (SEAL_CHACHA, SEAL_AESGCM)])
def test_a_seal_whose_version_byte_was_changed_does_not_open(pair, caplog, sealed_as, claimed):
    """The version picks the cipher and enters the key derivation: a downgraded (or upgraded) seal fails its tags."""
    hub, ds, do = pair
    routing, body = _sealed_request(ds.sealer, "m-swap", os.urandom(3000), version=sealed_as)
    start = len(body) - len(payload_of(body))
    forged = bytearray(body)
    forged[start + 4] = claimed
    hub.put(DS, routing, bytes(forged))
    assert do.poll().deliveries == ()
    assert "rejected" in caplog.text and "decryption failed" in caplog.text


def test_re_signed_message_is_rejected(pair, caplog):
    """Eve (who may even control the sender's Drive file) re-seals with her own signing key."""
    hub, ds, do = pair
    eve = Sealer(Identity.ephemeral(), PinStore(None))
    eve.learn(DO, do.sealer.identity.public)
    routing = Routing(
        run_id=1, message_id="m-eve", kind="request", sender=DS, recipient=DO, app=APP, created_at=time.time(), ttl=600
    )
    sealed = eve.seal(routing, io.BytesIO(b"do what I say"), 13)
    env = Envelope(
        run_id=1,
        message_id="m-eve",
        sender=DS,
        recipient=DO,
        kind="request",
        app=APP,
        created_at=routing.created_at,
        ttl=600,
        codecs=(CODEC_SEAL, "x"),
        size=sealed.size,
    )
    hub.put(DS, routing, header_bytes(env) + sealed.read())  # even with the owner check passed
    assert do.poll().deliveries == ()
    assert "forged or re-signed" in caplog.text


def test_plaintext_is_refused_when_encryption_is_on(pair, caplog):
    hub, ds, do = pair
    plain = Mailbox(MemoryTransport(DS, hub), APP, [DO], Ledger(None))  # the same account, encryption off
    plain.send(kind="request", recipient=DO, run_id=1, payload=b"hello")
    assert do.poll().deliveries == ()
    assert "fail closed" in caplog.text


def test_a_changed_key_is_refused_and_pins_survive_restarts(tmp_path, caplog):
    hub = MemoryHub()
    pins = tmp_path / "pins.json"
    do = box(hub, DO, [DS], pins=PinStore(pins))
    box(hub, DS, [DO])
    do.poll()
    assert do.sealer.knows(DS)
    box(hub, DS, [DO])  # DS (or someone with DS's Drive) publishes new keys
    restarted = box(hub, DO, [DS], pins=PinStore(pins))
    with caplog.at_level(logging.ERROR):
        restarted.poll()
    assert not restarted.sealer.knows(DS)
    assert "different public keys" in caplog.text and str(pins) in caplog.text


def test_identity_persists_with_private_permissions(tmp_path):
    sealer = sealer_for(tmp_path, enabled=True)
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    again = sealer_for(tmp_path, enabled=True)
    assert again.identity.public == sealer.identity.public
    (tmp_path / "keys.json").write_text("{broken")
    with pytest.raises(CryptoError, match="unreadable"):
        sealer_for(tmp_path, enabled=True)


def test_switching_off_is_loud(tmp_path, caplog):
    assert sealer_for(tmp_path, enabled=False) is None
    assert "END-TO-END ENCRYPTION IS OFF" in caplog.text
    assert Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"}).encryption is True
    assert Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_ENCRYPTION_ENABLED": "false"}).encryption is False
    with pytest.raises(ConfigError, match="SYFT_FLWR_ENCRYPTION_ENABLED"):
        Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_ENCRYPTION_ENABLED": "maybe"})


def test_public_keys_decode_rejects_garbage():
    assert PublicKeys.decode({"kx": "!!", "ks": "AA=="}) is None
    assert PublicKeys.decode({}) is None
