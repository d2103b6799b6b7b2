"""A write-only file that hands what is written to a worker thread: overlap a download with its checks.

A large download arrives in ranged chunks. Decrypting and hashing each chunk in the
downloading thread would add their time to the download's; here the writer queues
the chunk and goes on downloading while a worker consumes it. ``hashlib`` and
``cryptography`` release the GIL on large buffers, so on two cores the two really
run side by side. The queue is bounded (``depth`` pieces), so memory stays a few
chunks whatever the file's size.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from syft_flwr_gdrive.base.segments import Buffer

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
        depth: int = 1,  # 1: one piece being consumed while the writer fetches the next
        name: str = "pipe-sink",
    ) -> None:
        self._consume = consume
        self._front = front
        self._queue: queue.Queue[object] = queue.Queue()
        self._slots = threading.Semaphore(max(1, depth))  # pieces written but not consumed yet
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
        if item is not _END:  # wait for a free slot: the worker has consumed the piece before the last
            while not self._slots.acquire(timeout=_TICK):
                self._raise_failure()
                if not self._thread.is_alive():
                    raise PipeError(f"the {self._thread.name} worker stopped")
        self._queue.put(item)

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
                # the queue holds buffers or the _END marker, and _END was handled just above
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, who raises it
                self._error = exc
                self._halt.set()
                self._drain()
                return
            finally:
                del item  # the piece's memory goes before the writer may download the next one
                self._slots.release()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass


class TailSink:
    """Writes each piece to ``file`` (a real file, from offset 0) while a worker reads it back behind the writer.

    For a download that is kept on disk anyway (the blob cache keeps the ciphertext): the worker
    re-reads what was written, ``block`` bytes at a time into one reused buffer (from the page
    cache), and hands each to ``consume``, which must not keep it. Only the chunk being
    downloaded is in memory, where a ``PipeSink`` would also hold the one being consumed.
    """

    def __init__(
        self, file: BinaryIO, consume: Callable[[memoryview], None], *, block: int, name: str = "tail-sink"
    ) -> None:
        self._file, self._fd, self._consume = file, file.fileno(), consume
        self._buffer = bytearray(block)
        self._written = self._consumed = 0
        self._done = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, data: Buffer) -> int:
        if self._done:
            raise PipeError("write to a finished or aborted pipe")
        if self._error is not None:
            raise self._error
        n = self._file.write(data)
        self._file.flush()  # the worker reads the file descriptor, not Python's buffer
        with self._cond:
            self._written += len(data)
            self._cond.notify_all()
        return n

    def finish(self, timeout: float = FINISH_TIMEOUT) -> None:
        """Wait until everything written was consumed; raises the worker's error, or TimeoutError."""
        with self._cond:
            self._done = True
            self._cond.notify_all()
        waited = 0.0
        while self._thread.is_alive():
            self._thread.join(_TICK)
            waited += _TICK
            if waited >= timeout and self._thread.is_alive():
                raise TimeoutError(f"the {self._thread.name} worker did not finish within {timeout:.0f} s")
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        with self._cond:
            self._done = True
            self._error = self._error or PipeError("aborted")
            self._cond.notify_all()

    def _run(self) -> None:
        view = memoryview(self._buffer)
        try:
            while True:
                with self._cond:
                    while self._consumed >= self._written and not self._done:
                        self._cond.wait(_TICK)
                    if self._error is not None or (self._done and self._consumed >= self._written):
                        return
                    available = self._written - self._consumed
                n = os.preadv(self._fd, [view[: min(len(view), available)]], self._consumed)
                if n <= 0:
                    raise PipeError(f"the file ended at {self._consumed} of {self._written} written bytes")
                self._consume(view[:n])
                self._consumed += n
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, who raises it
            with self._cond:
                self._error = self._error or exc
