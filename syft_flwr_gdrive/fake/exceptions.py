"""Drive-shaped API errors.

Every failure the fake reports goes through :class:`ApiError` so that clients see
exactly the body Google sends (``{"error": {"code", "message", "errors": [...]}}``)
and ``googleapiclient.errors.HttpError`` parses the reason like it does in production.
"""

from __future__ import annotations

import json

# reason -> (default HTTP status, error domain)
REASONS: dict[str, tuple[int, str]] = {
    "notFound": (404, "global"),
    "insufficientFilePermissions": (403, "global"),
    "userRateLimitExceeded": (403, "usageLimits"),
    "rateLimitExceeded": (429, "usageLimits"),
    "backendError": (500, "global"),
    "invalid": (400, "global"),
    "badRequest": (400, "global"),
    "required": (400, "global"),
    "authError": (401, "global"),
    "duplicate": (409, "global"),
    "fieldNotWritable": (403, "global"),
    "cannotAddParent": (403, "global"),
    "cannotDeletePermission": (403, "global"),
    "cannotRemoveOwner": (403, "global"),
    "rangeNotSatisfiable": (416, "global"),
}


class ApiError(Exception):
    """An error that is answered to the client in Drive's error shape."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        item_message: str | None = None,
        status_name: str | None = None,
        **extra: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.item_message = item_message  # errors[0].message when Drive words it apart ("Invalid Credentials")
        self.status_name = status_name  # the top-level "status" some errors carry ("UNAUTHENTICATED")
        self.extra = extra  # e.g. location / locationType, copied into errors[0]

    def body(self) -> dict:
        """The JSON document Drive would send for this error."""
        body = error_body(self.status, self.reason, self.message, **self.extra)
        if self.item_message is not None:
            body["error"]["errors"][0]["message"] = self.item_message
        if self.status_name is not None:
            body["error"]["status"] = self.status_name
        return body

    def to_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


def error_body(status: int, reason: str, message: str, **extra: str) -> dict:
    """Build ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``."""
    domain = REASONS.get(reason, (status, "global"))[1]
    item = {"domain": domain, "reason": reason, "message": message}
    item.update(extra)
    return {"error": {"code": status, "message": message, "errors": [item]}}


def not_found(file_id: str) -> ApiError:
    return ApiError(404, "notFound", f"File not found: {file_id}.", location="fileId", locationType="parameter")


def forbidden(message: str = "The user does not have sufficient permissions for this file.") -> ApiError:
    return ApiError(403, "insufficientFilePermissions", message)


def invalid(message: str, location: str | None = None) -> ApiError:
    extra = {"location": location, "locationType": "parameter"} if location else {}
    return ApiError(400, "invalid", message, **extra)
