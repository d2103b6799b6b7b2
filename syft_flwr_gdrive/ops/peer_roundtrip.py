"""``doctor --peer``: can my account and a peer's account federate? A timed round trip.

Both people run ``syft-flwr-gdrive doctor --peer <the other's email>`` at about the same
time. Each side shares an outbox (app ``syft-flwr-gdrive/doctor``) with the other, writes a
*ping*, finds the other's outbox by discovery (``sharedWithMe``), lists and reads the
other's ping (trusted by folder and owner, exactly as messages are), answers with a
*pong*, waits for the other's pong to its own ping, and deletes what it wrote. Each step
is timed; the first that fails says what is wrong. Nothing of a real run is touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError

DOCTOR_APP = "syft-flwr-gdrive/doctor"


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str


def check_peer(
    transport: Transport,
    peer: str,
    *,
    timeout: float = 60.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Step]:
    """Run the round trip with ``peer`` through any transport (the contract only); stops at the first failure."""
    peer = canonical_email(peer)
    me = transport.email
    steps: list[Step] = []
    deadline = time.monotonic() + timeout
    mine: list[str] = []

    def timed(name: str, action: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail = action()
            ok = True
        except Exception as exc:  # noqa: BLE001 - whatever stops a step (storage, timeout) is that step's failure
            detail, ok = str(exc) or type(exc).__name__, False
        steps.append(Step(name, ok, time.monotonic() - started, detail))
        return ok

    def routing(kind: str, reply_to: str = "") -> Routing:
        return Routing(
            run_id=1,
            message_id=uuid.uuid4().hex,
            reply_to=reply_to,
            kind=kind,
            sender=me,
            recipient=peer,
            app=DOCTOR_APP,
            created_at=time.time(),
            ttl=600.0,
        )

    def wait_for(what: str, match: Callable[[Posting], bool]) -> Posting:
        while True:
            for p in transport.poll(DOCTOR_APP).inbound:
                if match(p):
                    return p
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no {what} from {peer} within {timeout:.0f}s: is `syft-flwr-gdrive doctor --peer {me}` "
                    f"running on their side, and did they share with this exact address?"
                )
            sleep(poll)

    ping = routing("request")
    found: dict[str, Posting] = {}

    def share() -> str:
        transport.prepare(DOCTOR_APP, [peer])
        return f"my outbox is shared read-only with {peer}"

    def send_ping() -> str:
        mine.append(transport.send(ping, b"ping from " + me.encode()))
        return "ping written"

    def find_ping() -> str:
        p = wait_for("ping", lambda p: p.routing is not None and p.routing.kind == "request")
        if canonical_email(p.owner) != peer:
            raise ValueError(f"a file in {peer}'s outbox is owned by {p.owner!r}, not {peer}: refused")
        found["ping"] = p
        return f"found {peer}'s outbox (shared with me) and its ping; Drive says {peer} owns it"

    def read_ping() -> str:
        body = transport.read(found["ping"], max_bytes=4096)
        if not body.startswith(b"ping from "):
            raise ValueError(f"the ping from {peer} has unexpected content ({body[:40]!r})")
        return f"read {len(body)} bytes"

    def answer() -> str:
        assert found["ping"].routing is not None
        mine.append(transport.send(routing("reply", found["ping"].routing.message_id), b"pong from " + me.encode()))
        wait_for(
            "answer to my ping",
            lambda p: p.routing is not None and p.routing.kind == "reply" and p.routing.reply_to == ping.message_id,
        )
        return f"{peer} read my ping and answered"

    def delete() -> str:
        # My ping goes first (that tells the peer I have its answer); my answer only once the
        # peer's ping is gone (the peer has mine), as replies are cleaned in a real run.
        transport.delete(mine[:1])
        their_ping = found["ping"].handle
        while any(p.handle == their_ping for p in transport.poll(DOCTOR_APP).inbound):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{peer} did not remove its ping within {timeout:.0f}s; my answer stays for it")
            sleep(poll)
        transport.delete(mine[1:])
        return f"deleted my {len(mine)} file(s) once {peer} had what it needed"

    for name, action in (
        ("share", share),
        ("send", send_ping),
        ("list", find_ping),
        ("read", read_ping),
        ("round trip", answer),
        ("delete", delete),
    ):
        if not timed(name, action):
            if mine and name != "delete":
                try:
                    transport.delete(mine)
                except TransportError:
                    pass
            break
    return steps
