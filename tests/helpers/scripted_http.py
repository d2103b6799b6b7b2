"""For the Drive layer tests: a scripted HTTP channel (answers in order, records requests) and tiny retry waits."""

from __future__ import annotations

import json
from typing import Any

import httplib2

from syft_flwr_gdrive.transport.drive import service
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy


def drive_error_body(code: int, reason: str, message: str = "boom") -> bytes:
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
            }
        }
    ).encode()


class ScriptedHttp:
    """An httplib2.Http stand-in answering from a script; entries are responses or exceptions."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.timeout = None

    def request(self, uri, method="GET", body=None, headers=None, redirections=5, connection_type=None, **_: Any):
        self.requests.append({"uri": uri, "method": method, "body": body, "headers": dict(headers or {})})
        hook = getattr(service._current_hook, "hook", None)  # what the real connection reports
        if hook is not None:
            hook(uri, method)
        if not self.script:
            raise AssertionError(f"unexpected request {method} {uri}")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        status, headers, content = item
        if isinstance(content, (dict, list)):
            content = json.dumps(content).encode()
        info = {"status": str(status), **{k.lower(): v for k, v in headers.items()}}
        return httplib2.Response(info), content

    def close(self) -> None:
        pass


def ok(body: Any, status: int = 200, **headers: str):
    return (status, {"content-type": "application/json", **headers}, body)


def err(status: int, reason: str, **headers: str):
    return (status, {"content-type": "application/json", **headers}, drive_error_body(status, reason))


TINY = RetryPolicy(max_attempts=5, max_total=30, initial_wait=0.001, max_wait=0.004, max_retry_after=0.01)
