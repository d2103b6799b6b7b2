"""Which Drive URL goes to which handler (moto's ``urls.py``): method + path pattern -> route name,
handler and quota cost.

A table of the handler methods themselves, not names built at run time, so find-usages works
and a typo fails at import. Route names are what ``stats()`` reports and what
``FaultConfig.routes`` selects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .handlers import DriveHandlers
from .wire import Response

#: not Drive: the fake's own admin routes (never faulted, no token)
ADMIN_PREFIX = "/_fake/"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    name: str
    handler: Callable[..., Response]  # a DriveHandlers method, called with (api, request, user, **path parameters)
    cost: str | None  # quota class; None: not charged


_ID = r"(?P<id>[^/]+)"
_PID = r"(?P<pid>[^/]+)"
_FILES = "/drive/v3/files"
_PERMS = f"{_FILES}/{_ID}/permissions"
_UPLOAD = "(?:/resumable)?/upload/drive/v3/files"


def _route(method: str, path: str, name: str, handler: Callable[..., Response], cost: str | None) -> Route:
    return Route(method, re.compile(f"^{path}$"), name, handler, cost)


ROUTES = [
    _route("GET", "/drive/v3/about/?", "about.get", DriveHandlers.h_about, "get"),
    _route("GET", f"{_FILES}/generateIds/?", "files.generateIds", DriveHandlers.h_generate_ids, "get"),
    _route("GET", f"{_FILES}/?", "files.list", DriveHandlers.h_files_list, "list"),
    _route("POST", f"{_FILES}/?", "files.create", DriveHandlers.h_files_create, "modify"),
    _route("GET", f"{_PERMS}/?", "permissions.list", DriveHandlers.h_perm_list, "get"),
    _route("POST", f"{_PERMS}/?", "permissions.create", DriveHandlers.h_perm_create, "modify"),
    _route("GET", f"{_PERMS}/{_PID}", "permissions.get", DriveHandlers.h_perm_get, "get"),
    _route("PATCH", f"{_PERMS}/{_PID}", "permissions.update", DriveHandlers.h_perm_update, "modify"),
    _route("DELETE", f"{_PERMS}/{_PID}", "permissions.delete", DriveHandlers.h_perm_delete, "modify"),
    _route("GET", f"{_FILES}/{_ID}", "files.get", DriveHandlers.h_files_get, "get"),
    _route("PATCH", f"{_FILES}/{_ID}", "files.update", DriveHandlers.h_files_update, "modify"),
    _route("DELETE", f"{_FILES}/{_ID}", "files.delete", DriveHandlers.h_files_delete, "modify"),
    _route(
        "GET", "/drive/v3/changes/startPageToken/?", "changes.getStartPageToken", DriveHandlers.h_start_token, "get"
    ),
    _route("GET", "/drive/v3/changes/?", "changes.list", DriveHandlers.h_changes_list, "list"),
    _route("PUT", f"{_UPLOAD}(?:/[^/]+)?/?", "upload.chunk", DriveHandlers.h_upload_chunk, None),
    _route("POST", f"{_UPLOAD}/?", "upload.create", DriveHandlers.h_upload_create, "modify"),
    _route("PATCH", f"{_UPLOAD}/{_ID}", "upload.update", DriveHandlers.h_upload_update, "modify"),
    _route("POST", "/batch(?:/drive/v3)?/?", "batch", DriveHandlers.h_batch, None),
]


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """The route answering ``method path`` and its path parameters (``id``, ``pid``), or (None, {})."""
    for r in ROUTES:
        if r.method == method:
            m = r.pattern.match(path)
            if m:
                return r, m.groupdict()
    return None, {}
