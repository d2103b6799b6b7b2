"""The ``server`` and ``client`` stdout contract: stdout carries the JSON outcome alone.

A ServerApp or ClientApp prints what it likes (a survival function, statistics, progress bars) and native
libraries write to file descriptor 1 directly; piping the command's stdout to a JSON parser must still
work. So while the app runs, both Python's ``sys.stdout`` and descriptor 1 point at stderr, where the
logs go too, in the order things happened; the outcome is printed on the real stdout after.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def app_output_to_stderr() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr (descriptor 1 too, when it is one)."""
    sys.stdout.flush()
    saved_fd: int | None = None
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):  # a captured stream has none
        if sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2:
            saved_fd = os.dup(1)
            os.dup2(2, 1)
    saved_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved_stdout
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
