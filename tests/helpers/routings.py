"""Routing for a test request: the fields every transport test fills the same way."""

from __future__ import annotations

import time

from syft_flwr_gdrive.routing import Routing


def request_routing(run_id: int, message_id: str, *, sender: str, recipient: str, app: str) -> Routing:
    """A fresh request (created now, ten-minute ttl, no reply_to) from ``sender`` to ``recipient``."""
    return Routing(
        run_id=run_id,
        message_id=message_id,
        reply_to="",
        kind="request",
        sender=sender,
        recipient=recipient,
        app=app,
        created_at=time.time(),
        ttl=600.0,
    )
