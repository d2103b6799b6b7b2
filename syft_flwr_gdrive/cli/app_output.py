"""The ``server`` and ``client`` stdout contract: stdout carries the JSON outcome alone.

A ServerApp or ClientApp prints what it likes (a survival function, statistics, progress bars) and native
libraries write to file descriptor 1 directly; piping the command's stdout to a JSON parser must still
work. So while the app runs, both Python's ``sys.stdout`` and descriptor 1 point at stderr, where the
logs go too, in the order things happened; the outcome is printed on the real stdout after.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def app_output_to_stderr() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr (descriptor 1 too, when it is one)."""
    sys.stdout.flush()
    saved_fd: int | None = None
    with contextlib.suppress(OSError):  # no descriptor 1 or 2 (a detached process): only Python's streams move
        os.fstat(1), os.fstat(2)
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
