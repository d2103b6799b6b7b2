"""An in-process transport: the reference implementation of the contract.

It proves the contract is small enough for a second transport, and lets the
Grid and client loop be tested without any storage service. Participants in
one process share a ``MemoryHub``; ownership is recorded by the hub, so the
trust checks in ``Mailbox`` work the same way as on Drive.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import BinaryIO
from typing import ClassVar

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import as_reader
from syft_flwr_gdrive.transport.contract import Announcement
from syft_flwr_gdrive.transport.contract import BlobNotStored
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError


@dataclass
class _Stored:
    owner: str
    routing: Routing | None
    body: bytes
    name: str = ""


@dataclass
class MemoryHub:
    """Shared storage for MemoryTransports in one process."""

    files: dict[str, _Stored] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (owner, app) -> announced run
    blobs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # locator -> (owner, data)
    blob_apps: dict[str, str] = field(default_factory=dict)  # locator -> app it was stored for
    keys: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (owner, app) -> public keys

    def put(self, owner: str, routing: Routing | None, body: bytes, name: str = "") -> str:
        """Store a file as written by ``owner`` (tests use this to plant hostile files)."""
        with self.lock:
            handle = f"mem-{next(self._ids)}"
            self.files[handle] = _Stored(owner.lower(), routing, body, name)
            return handle


class MemoryTransport(Transport):
    """Transport over a MemoryHub; counts calls like the Drive transport does."""

    name: ClassVar[str] = "memory"
    shares_blobs: ClassVar[bool] = True

    def __init__(self, email: str, hub: MemoryHub) -> None:
        self.email = email.lower()
        self.hub = hub

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryTransport:
        raise ConfigError(
            "The memory transport lives in one process (tests build it with a MemoryHub); "
            "set SYFT_FLWR_TRANSPORT to p2p (Google Drive) or dir (a shared directory)."
        )

    def announce_run(self, app: str, run_id: int) -> None:
        self._count("announce")
        with self.hub.lock:
            self.hub.runs[(self.email, app)] = run_id

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        self._count("publish_keys")
        with self.hub.lock:
            self.hub.keys[(self.email, app)] = dict(keys)

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO | SeekableReader) -> str:
        self._count("send")
        reader = as_reader(body)
        reader.seek(0)
        data = reader.read(reader.size)
        return self.hub.put(self.email, routing, data, name=f"{routing.kind}-{routing.message_id}")

    def poll(self, app: str) -> Listing:
        self._count("poll")
        inbound: list[Posting] = []
        outbound: list[Posting] = []
        with self.hub.lock:
            items = list(self.hub.files.items())
            owners = {o for (o, a) in list(self.hub.runs) + list(self.hub.keys) if a == app and o != self.email}
            runs = [Announcement(o, self.hub.runs.get((o, app)), self.hub.keys.get((o, app))) for o in sorted(owners)]
        for handle, stored in items:
            posting = Posting(handle, stored.owner, stored.routing, len(stored.body), stored.name)
            if stored.owner == self.email and stored.routing is not None and stored.routing.app == app:
                outbound.append(posting)
            elif stored.routing is None or (stored.routing.recipient == self.email and stored.routing.app == app):
                inbound.append(posting)
        return Listing(tuple(inbound), tuple(outbound), tuple(runs))

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        self._count("read")
        with self.hub.lock:
            stored = self.hub.files.get(posting.handle)
        if stored is None:
            raise TransportError(f"message {posting.handle} is gone")
        if max_bytes is not None and len(stored.body) > max_bytes:
            raise TransportError(
                f"message {posting.handle} is {len(stored.body)} bytes, over the {max_bytes}-byte limit"
            )
        out.write(stored.body)
        return len(stored.body)

    def my_postings(self, app: str | None = None) -> list[Posting]:
        with self.hub.lock:
            items = list(self.hub.files.items())
        return [
            Posting(h, s.owner, s.routing, len(s.body), s.name)
            for h, s in items
            if s.owner == self.email and (app is None or (s.routing is not None and s.routing.app == app))
        ]

    def put_blob(self, app: str, data: Buffer | BinaryIO | SeekableReader) -> str:
        self._count("put_blob")
        reader = as_reader(data)
        reader.seek(0)
        content = reader.read(reader.size)
        with self.hub.lock:
            locator = f"blob-{next(self.hub._ids)}"
            self.hub.blobs[locator] = (self.email, content)
            self.hub.blob_apps[locator] = app
        return locator

    def list_my_blobs(self, app: str) -> list[str]:
        with self.hub.lock:
            return [loc for loc, (owner, _) in self.hub.blobs.items() if owner == self.email]

    def reserve_blob(self, app: str, parts: int) -> list[str] | None:
        self._count("reserve_blob")
        with self.hub.lock:
            return [f"blob-{next(self.hub._ids)}" for _ in range(parts)]

    def put_blob_part(self, app: str, locator: str, data: SeekableReader) -> None:
        self._count("put_blob_part")
        data.seek(0)
        content = data.read(data.size)
        with self.hub.lock:
            if locator in self.hub.blobs:
                raise TransportError(f"blob part {locator} is stored already")
            self.hub.blobs[locator] = (self.email, content)
            self.hub.blob_apps[locator] = app

    def get_blob(
        self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO, appear_within: float = 0.0
    ) -> int:
        self._count("get_blob")
        deadline = time.monotonic() + appear_within
        while True:
            with self.hub.lock:
                found = self.hub.blobs.get(locator)
                stored_for = self.hub.blob_apps.get(locator)
            if found is not None or time.monotonic() >= deadline:
                break
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        if found is None:
            raise BlobNotStored(f"blob {locator} does not exist (or is gone)")
        if found[0] != owner.lower() or stored_for != app:
            raise BlobRefused(f"blob {locator} is not one of {owner}'s blobs of this app")
        if len(found[1]) != size:
            raise BlobRefused(f"blob {locator} is {len(found[1])} bytes, not the {size} its message says")
        out.write(found[1])
        return size

    def delete(self, handles: Sequence[str]) -> None:
        self._count("delete")
        with self.hub.lock:
            for handle in handles:
                blob = self.hub.blobs.get(handle)
                if blob is not None:
                    if blob[0] != self.email:
                        raise TransportError(f"{self.email} may not delete {handle}, owned by {blob[0]}")
                    del self.hub.blobs[handle]
                    continue
                stored = self.hub.files.get(handle)
                if stored is not None and stored.owner != self.email:
                    raise TransportError(f"{self.email} may not delete {handle}, owned by {stored.owner}")
                self.hub.files.pop(handle, None)
