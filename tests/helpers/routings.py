"""Routing for a test request: the fields every transport test fills the same way."""

from __future__ import annotations

import time
from typing import Any

from syft_flwr_gdrive.base.routing import Routing


def request_routing(run_id: int, message_id: str, *, sender: str, recipient: str, app: str, **changes: Any) -> Routing:
    """A fresh request (created now, ten-minute ttl, no reply_to) from ``sender`` to ``recipient``;
    ``changes`` override any other field (kind, reply_to, ttl, created_at)."""
    values: dict[str, Any] = dict(reply_to="", kind="request", created_at=time.time(), ttl=600.0)
    values.update(changes)
    return Routing(run_id=run_id, message_id=message_id, sender=sender, recipient=recipient, app=app, **values)
