"""Listing the files in many folders: ``'<folder>' in parents`` OR'ed in chunks, the chunks side by side.

Why apart: Drive caps how complex one query may be, so a poll over many folders is several
listings; this module sizes the chunks (smaller, down to one folder per query, when Drive answers
400 "The query is too complex"), runs them on a few threads and counts the calls they took.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError

logger = logging.getLogger(__name__)

LIST_WORKERS = 4  # a poll's listings (one per 40 folders) run side by side


class FolderLister:
    """Files in a set of folders, in as few ``files.list`` calls as Drive accepts."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api
        self.chunk = layout.PARENTS_PER_QUERY  # folders per listing (shrinks when Drive rejects a query)
        self.last_calls = 0  # files.list calls the last listing took
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def list_parents(self, folder_ids: list[str]) -> list[dict[str, Any]]:
        """Files in ``folder_ids``: one listing per chunk, the chunks side by side (a server with 50
        datasites lists 100 folders in 3 calls: one latency, not three); smaller chunks when Drive
        rejects the query."""
        chunks = [folder_ids[i : i + self.chunk] for i in range(0, len(folder_ids), self.chunk)]
        if len(chunks) > 1:  # each worker keeps the caller's retry deadline (a context variable)
            contexts = [contextvars.copy_context() for _ in chunks]
            results = list(self._workers().map(lambda ctx, chunk: ctx.run(self._list_chunk, chunk), contexts, chunks))
        else:
            results = [self._list_chunk(chunk) for chunk in chunks]
        self.last_calls = sum(calls for _, calls in results)
        return [f for files, _ in results for f in files]

    def _list_chunk(self, chunk: list[str]) -> tuple[list[dict[str, Any]], int]:
        """One chunk's files and the listings they took (more than one if Drive said the query is too complex)."""
        out: list[dict[str, Any]] = []
        calls = 0
        todo = [chunk]
        while todo:
            part = todo.pop(0)
            try:
                calls += 1
                out.extend(self.api.list_files(layout.parents_query(part), fields=layout.LISTING_FIELDS))
            except DriveError as exc:
                if exc.status != 400 or len(part) == 1:
                    raise
                size = self.chunk = max(1, min(self.chunk, len(part) // 2))
                logger.warning(
                    "Drive rejected a listing over %d folders (%s); using %d folder(s) per listing from now on",
                    len(part),
                    exc,
                    size,
                )
                todo[:0] = [part[i : i + size] for i in range(0, len(part), size)]
        return out, calls

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=LIST_WORKERS, thread_name_prefix="drive-list")
            return self._pool
