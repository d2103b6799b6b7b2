"""A write-only file that hands what is written to a worker thread: overlap a download with its checks.

A large download arrives in ranged chunks. Decrypting and hashing each chunk in the
downloading thread would add their time to the download's; here the writer queues
the chunk and goes on downloading while a worker consumes it. ``hashlib`` and
``cryptography`` release the GIL on large buffers, so on two cores the two really
run side by side. The queue is bounded (``depth`` pieces), so memory stays a few
chunks whatever the file's size.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

from syft_flwr_gdrive.segments import Buffer

_END = object()
_TICK = 0.1  # seconds between checks while waiting (keeps Ctrl-C and a failed side prompt)
FINISH_TIMEOUT = 120.0  # at most ``depth`` chunks are left to consume when the download ends


class PipeError(RuntimeError):
    """The pipe was used after it failed or was closed."""


class PipeSink:
    """``write(piece)`` queues ``piece`` for ``consume(piece)`` in a worker thread, in order.

    ``front(piece)`` (optional) runs in the writer's thread before queuing: a second
    pass over the same bytes (a digest) then runs beside ``consume`` instead of after it.
    A failure on either side stops the pipe; the next ``write`` or ``finish`` raises it.
    """

    def __init__(
        self,
        consume: Callable[[Buffer], None],
        *,
        front: Callable[[Buffer], None] | None = None,
        depth: int = 1,
        name: str = "pipe-sink",
    ) -> None:
        self._consume = consume
        self._front = front
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._halt = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, data: Buffer) -> int:
        if self._closed:
            raise PipeError("write to a finished or aborted pipe")
        self._raise_failure()
        if self._front is not None:
            self._front(data)
        self._put(data)
        return len(data)

    def finish(self, timeout: float = FINISH_TIMEOUT) -> None:
        """Wait until everything written is consumed; raises the worker's error, or TimeoutError."""
        if self._closed:
            raise PipeError("the pipe was already finished or aborted")
        self._raise_failure()
        self._put(_END)
        self._closed = True
        waited = 0.0
        while self._thread.is_alive():
            self._thread.join(_TICK)
            waited += _TICK
            if waited >= timeout and self._thread.is_alive():
                self.abort()
                raise TimeoutError(f"the {self._thread.name} worker did not finish within {timeout:.0f} s")
        self._raise_failure()

    def abort(self) -> None:
        """Stop the worker and drop what is queued (after a failed download; idempotent)."""
        self._closed = True
        self._halt.set()
        self._drain()

    def _put(self, item: object) -> None:
        while True:
            try:
                self._queue.put(item, timeout=_TICK)
                return
            except queue.Full:
                self._raise_failure()
                if not self._thread.is_alive():
                    raise PipeError(f"the {self._thread.name} worker stopped") from None

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                item = self._queue.get(timeout=_TICK)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, who raises it
                self._error = exc
                self._halt.set()
                self._drain()
                return

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
