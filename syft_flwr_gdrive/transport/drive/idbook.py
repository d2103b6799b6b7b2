"""Drive ids of the folders this participant owns, recorded on disk before each create.

Drive's search is eventually consistent: a participant restarted within the lag does
not find the folder it created a moment ago and would create a second one. Reading
the id back from this book and fetching it by id (which is consistent) makes creates
idempotent across restarts. The id is written *before* the create, so a crash between
the two leaves an id that the next start creates with (or replaces if Drive forgot it).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from syft_flwr_gdrive.base.statefile import write_json_atomic

logger = logging.getLogger(__name__)


class IdBook:
    """A small JSON map ``key -> Drive id`` (in memory when ``path`` is None)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._ids = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable folder-id book %s (%s); folders are looked up on Drive", path, exc)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._ids.get(key)

    def put(self, key: str, file_id: str) -> None:
        with self._lock:
            if self._ids.get(key) == file_id:
                return
            self._ids[key] = file_id
            self._save()

    def drop(self, key: str) -> None:
        with self._lock:
            if self._ids.pop(key, None) is not None:
                self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        write_json_atomic(self.path, self._ids)
