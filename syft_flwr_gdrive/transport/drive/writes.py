"""Creating files on Drive: pre-generated ids, promised next ids, and the uploads themselves.

Why one place: every create (a folder, a message, a bundle, a blob) goes at an id fetched
beforehand with ``files.generateIds``, so a retried create is idempotent; and a message or
bundle file names the id its stream's next file will get (``sfg_nx``, :mod:`.promises`).
This is the writer's side of those promises.

Drive documents neither how long a generated id stays usable nor whether it survives every kind
of create (docs/drive-assumptions.md row 13): ids are fetched just before use (the pool keeps
none older than :data:`ID_MAX_AGE`), and a create Drive refuses at its id (400, or 409: a file
that is not mine holds it) goes to a fresh id instead, where readers find it by listing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError

logger = logging.getLogger(__name__)

ID_BATCH = 20  # ids fetched per files.generateIds call (one read; a server's set-up takes a few)
ID_MAX_AGE = 60.0  # seconds a fetched id waits in the pool at most: used soon after Drive gave it, or dropped
# A promised id older than this when its file is written may no longer be usable (Drive documents no lifetime;
# the strict fake's is 120 s): a client's reply after a long round is written at a fresh id instead, which it
# stamps on its outbox folder first (one write), so its server still fetches the reply by id.
PROMISE_MAX_AGE = ID_MAX_AGE
REFUSED_ID = (400, 409)  # Drive's answers to a create at an id it will not take: not usable, or taken


class Writer:
    """Fresh ids (fetched :data:`ID_BATCH` at a time), stream promises, and one create per file."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._ids: list[tuple[str, float]] = []  # (id, when Drive gave it)
        self._promised: dict[tuple[str, str], str] = {}  # (app, recipient; "" for bundles) -> id its next file gets
        self._promised_at: dict[str, float] = {}  # a promised id -> when Drive gave it

    def next_id(self) -> str:
        """A fresh id for a create (a retried create at the same id cannot make a second file)."""
        with self._lock:
            return self._take_id()

    def take_ids(self, count: int) -> list[str]:
        """``count`` fresh ids from the same pool (a blob's parts: no ``files.generateIds`` call of their own)."""
        with self._lock:
            return [self._take_id() for _ in range(count)]

    def forget_pool(self) -> None:
        """Drive refused an id from the pool: the others of its age may be refused too; fetch new ones."""
        with self._lock:
            self._ids.clear()

    def _take_id(self) -> str:
        """A fresh pre-generated id (``self._lock`` held)."""
        now = time.monotonic()
        self._ids = [(i, at) for i, at in self._ids if now - at <= ID_MAX_AGE]
        if not self._ids:
            self._ids = [(i, now) for i in self.api.generate_ids(ID_BATCH)]
        return self._ids.pop()[0]

    def head(self, stream: tuple[str, str]) -> str:
        """The id the stream's next file will have (reserved now if none is): what a folder stamps as its head."""
        with self._lock:
            head = self._promised.get(stream)
            if head is None:
                head = self._promised[stream] = self._promise_id()
            return head

    def promise(self, stream: tuple[str, str], props: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The id of a stream's next file (the one promised last time, if any) and its properties with the
        promise of the file after it (``sfg_nx``): the reader fetches that by id before it lists."""
        with self._lock:
            file_id = self._promised.pop(stream, None) or self._take_id()
            self._promised_at.pop(file_id, None)
            self._promised[stream] = promised = self._promise_id()
        return file_id, {**props, layout.P_NEXT: promised}

    def renew_stale_head(self, stream: tuple[str, str]) -> str | None:
        """If the stream's promised id is older than :data:`PROMISE_MAX_AGE`, replace it by a fresh one and
        return that (the caller stamps it on the stream's folder before writing there); else None."""
        with self._lock:
            head = self._promised.get(stream)
            if head is None or time.monotonic() - self._promised_at.get(head, float("inf")) <= PROMISE_MAX_AGE:
                return None
            self._promised_at.pop(head, None)
            self._promised[stream] = fresh = self._promise_id()
            return fresh

    def _promise_id(self) -> str:
        """A fresh id to promise, remembering when (``self._lock`` held)."""
        file_id = self._take_id()
        self._promised_at[file_id] = time.monotonic()
        while len(self._promised_at) > 4 * len(self._promised) + 64:  # ids promised and since used or replaced
            del self._promised_at[next(iter(self._promised_at))]
        return file_id

    def create_promised(
        self, name: str, reader: SeekableReader, folder: str, props: dict[str, str], file_id: str
    ) -> dict[str, Any]:
        """Create at the promised id; if Drive refuses that id (400: no longer valid; 409: someone else's
        file has it), at a fresh one: the promise is not kept, and readers find the file by listing."""
        try:
            return self.upload(name, reader, folder, props, file_id=file_id)
        except DriveError as exc:
            if exc.status not in REFUSED_ID:
                raise
            logger.info("Drive refused the promised id %s (%s); creating %s at a fresh id", file_id, exc, name)
            if exc.status == 400:
                self.forget_pool()
            return self.upload(name, reader, folder, props)

    def upload(
        self,
        name: str,
        reader: SeekableReader,
        folder: str,
        props: Mapping[str, str],
        *,
        file_id: str | None = None,
    ) -> dict[str, Any]:
        """One create at ``file_id`` (or a fresh id: one Drive will not take is replaced once by a newly
        fetched one)."""
        if file_id is not None:
            return self._create(name, reader, folder, props, file_id)
        try:
            return self._create(name, reader, folder, props, self.next_id())
        except DriveError as exc:
            if exc.status != 400:
                raise
            logger.info("Drive refused a fresh id (%s); creating %s at a newly fetched one", exc, name)
            self.forget_pool()
            return self._create(name, reader, folder, props, self.next_id())

    def _create(
        self, name: str, reader: SeekableReader, folder: str, props: Mapping[str, str], file_id: str
    ) -> dict[str, Any]:
        """One create: a multipart request for small bodies, a chunked resumable upload for big ones."""
        mime = layout.MESSAGE_MIME
        reader.seek(0)
        if reader.size <= self.api.chunk_size:
            data = reader.read(reader.size) or b""
            return self.api.upload_bytes(
                name, data, parent_id=folder, properties=props, file_id=file_id, mime_type=mime, fields="id"
            )
        return self.api.upload_stream(
            name,
            as_binary(reader),
            reader.size,
            parent_id=folder,
            properties=props,
            file_id=file_id,
            mime_type=mime,
            fields="id",
        )
