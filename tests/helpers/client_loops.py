"""In-process federations: client loops on threads while the test runs the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager

from syft_flwr_gdrive.flower.client_loop import ClientLoop


@contextmanager
def loops_running(loops: Sequence[ClientLoop], stop: threading.Event, *, drain: float = 0.0) -> Iterator[None]:
    """Each loop on a daemon thread while the block runs (the server); then the loops get ``drain`` seconds
    to finish by themselves (they do once their server's stop signal reaches them), ``stop`` is set and
    they are joined."""
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in loops]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        if drain:
            for t in threads:
                t.join(timeout=drain)
        stop.set()
        for t in threads:
            t.join(timeout=10)
