"""What travels on the apps channel: an offer (the FAB and the fingerprint its sender vouches for) and an answer.

Both ride ordinary mailbox messages of app ``APPS_CHANNEL`` (kinds ``offer`` and ``answer``), so they are
sealed to their recipient and signed by their sender like every message (encryption on by default), and
only a configured peer's are read. An offer's payload is one JSON line, then the FAB's bytes; everything a
person is shown about the app is read from the FAB itself, and only the fingerprint is taken from the
sender's word (then checked against the unpacked tree, ``fab.install``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from syft_flwr_gdrive.flower.fab import FabRefused

APPS_CHANNEL = "sfg/apps"  # the well-known app key both an aggregator and a node prepare: offers for any app
OFFER_MAGIC = b"SFGOFFER/1\n"
MAX_OFFER_HEAD = 64 * 1024
ANSWER_LIMIT = 16 * 1024
MAX_REASON = 500


@dataclass(frozen=True)
class OfferHead:
    fingerprint: str
    fab_hash: str
    name: str
    version: str


def encode_offer(head: OfferHead, fab: bytes) -> bytes:
    line = json.dumps(
        {"fingerprint": head.fingerprint, "fab_hash": head.fab_hash, "name": head.name, "version": head.version},
        separators=(",", ":"),
    ).encode()
    return OFFER_MAGIC + line + b"\n" + fab


def decode_offer(payload: bytes) -> tuple[OfferHead, bytes]:
    if not payload.startswith(OFFER_MAGIC):
        raise FabRefused("not an app offer of this release")
    end = payload.find(b"\n", len(OFFER_MAGIC), len(OFFER_MAGIC) + MAX_OFFER_HEAD)
    if end < 0:
        raise FabRefused("the offer's head is malformed")
    try:
        raw = json.loads(payload[len(OFFER_MAGIC) : end])
        head = OfferHead(
            fingerprint=_text(raw, "fingerprint"),
            fab_hash=_text(raw, "fab_hash"),
            name=_text(raw, "name"),
            version=_text(raw, "version"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise FabRefused(f"the offer's head is malformed: {exc}") from None
    return head, payload[end + 1 :]


def _text(raw: Any, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or len(value) > 200 or not value.isprintable():
        raise ValueError(f"{key} is not a short printable string")
    return value


@dataclass(frozen=True)
class Answer:
    state: str  # "pending" (the node holds the offer), "approved" or "rejected"
    reason: str
    fab_hash: str
    fingerprint: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "state": self.state,
                "reason": self.reason[:MAX_REASON],
                "fab_hash": self.fab_hash,
                "fingerprint": self.fingerprint,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> Answer | None:
        try:
            raw = json.loads(payload[:ANSWER_LIMIT])
            answer = cls(
                state=str(raw["state"]),
                reason=str(raw.get("reason", ""))[:MAX_REASON],
                fab_hash=str(raw["fab_hash"]),
                fingerprint=str(raw["fingerprint"]),
            )
        except (ValueError, TypeError, KeyError):
            return None
        if answer.state not in ("pending", "approved", "rejected"):
            return None
        printable = "".join(c if c.isprintable() else " " for c in answer.reason)  # never forge a log line
        return cls(answer.state, printable, answer.fab_hash, answer.fingerprint)
