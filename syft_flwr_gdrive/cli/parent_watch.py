"""A participant that ends with the process that started it (``run``, ``demo``), however that one ends.

``run`` stops its participants itself when it is interrupted, terminated or fails (``localrun``), but a
parent killed outright (SIGKILL, an OOM kill, a crashed notebook kernel) cannot: its participants, in
sessions of their own, would poll Drive forever. So ``run`` starts each one with the hidden option
``--exit-with-parent PID``, and a watcher thread here notices within half a second that its parent is
gone (it is re-parented: ``os.getppid()`` changes), interrupts the process as ``run`` would have
(SIGINT: the server sends its stop signals, a client finishes the request in hand), and ends it for good
if it has not stopped after a grace period. A thread, not Linux's ``PR_SET_PDEATHSIG``, so it works on
macOS too and does not depend on which of the parent's threads started the child.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

logger = logging.getLogger(__name__)

EXIT_PARENT_GONE = 130  # as if interrupted: that is what happened


def exit_with_parent(parent_pid: int, *, every: float = 0.5, grace: float = 5.0) -> threading.Thread:
    """Watch ``parent_pid`` on a daemon thread; once it is not this process's parent any more, stop this process."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        logger.warning("the process that started this one (pid %d) is gone: stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace)
        logger.error("still running %.0f s after the interrupt: exiting now", grace)
        os._exit(EXIT_PARENT_GONE)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
