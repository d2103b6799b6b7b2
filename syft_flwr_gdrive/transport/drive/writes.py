"""Creating files on Drive: pre-generated ids, promised next ids, and the uploads themselves.

Why one place: every create (a folder, a message, a bundle, a blob) goes at an id fetched
beforehand with ``files.generateIds``, so a retried create is idempotent; and a message or
bundle file names the id its stream's next file will get (``sfg_nx``, :mod:`.promises`).
This is the writer's side of those promises.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError

logger = logging.getLogger(__name__)

ID_BATCH = 100


class Writer:
    """Fresh ids (fetched :data:`ID_BATCH` at a time), stream promises, and one create per file."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._promised: dict[tuple[str, str], str] = {}  # (app, recipient; "" for bundles) -> id its next file gets

    def next_id(self) -> str:
        """A fresh id for a create (a retried create at the same id cannot make a second file)."""
        with self._lock:
            return self._take_id()

    def take_ids(self, count: int) -> list[str]:
        """``count`` fresh ids from the same pool (a blob's parts: no ``files.generateIds`` call of their own)."""
        with self._lock:
            return [self._take_id() for _ in range(count)]

    def _take_id(self) -> str:
        """A fresh pre-generated id (``self._lock`` held)."""
        if not self._ids:
            self._ids = self.api.generate_ids(ID_BATCH)
        return self._ids.pop()

    def promise(self, stream: tuple[str, str], props: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The id of a stream's next file (the one promised last time, if any) and its properties with the
        promise of the file after it (``sfg_nx``): the reader fetches that by id before it lists."""
        with self._lock:
            file_id = self._promised.pop(stream, None) or self._take_id()
            self._promised[stream] = promised = self._take_id()
        return file_id, {**props, layout.P_NEXT: promised}

    def create_promised(
        self, name: str, reader: SeekableReader, folder: str, props: dict[str, str], file_id: str
    ) -> dict[str, Any]:
        """Create at the promised id; if Drive refuses that id (400: no longer valid; 409: someone else's
        file has it), at a fresh one: the promise is not kept, and readers find the file by listing."""
        try:
            return self.upload(name, reader, folder, props, file_id=file_id)
        except DriveError as exc:
            if exc.status not in (400, 409):
                raise
            logger.info("Drive refused the promised id %s (%s); creating %s at a fresh id", file_id, exc, name)
            return self.upload(name, reader, folder, props)

    def upload(
        self, name: str, reader: SeekableReader, folder: str, props: dict[str, str], *, file_id: str | None = None
    ) -> dict[str, Any]:
        """One create: a multipart request for small bodies, a chunked resumable upload for big ones."""
        file_id, mime = file_id or self.next_id(), layout.MESSAGE_MIME
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
