"""Where an exchange's time goes: a per-function timeline of every benchmark process (a diagnostic).

Not part of the package. With ``SFG_TIMELINE_DIR`` set and this folder first on ``PYTHONPATH``
(the benchmark passes PYTHONPATH on to its workers), every Python process started imports this
module at start-up (``site`` does), wraps the functions in ``TARGETS`` when their module is
imported, and appends one JSON line per call (name, wall start/end, the thread's CPU seconds,
thread name) to ``<dir>/trace-<pid>.jsonl``, plus the process's CPU times every 50 ms.
``bench/timeline_report.py <dir>`` summarises it per exchange. Overhead: one JSON line per
wrapped call (a few hundred per exchange), far below the timings it reports.
"""

from __future__ import annotations

import os
import sys

_DIR = os.environ.get("SFG_TIMELINE_DIR")

TARGETS = {
    "syft_flwr_gdrive.flower.shared_blobs": ["BlobPlacer.__call__", "BlobCache.fetch"],
    "syft_flwr_gdrive.crypto.seal": ["Sealer.seal", "SealedOpener.finish"],
    "syft_flwr_gdrive.crypto.blobseal": ["BlobOpener.finish"],
    "syft_flwr_gdrive.mailbox.mailbox": ["Mailbox.send"],
    "syft_flwr_gdrive.mailbox.messages": ["MessageReader._check_streamed", "MessageReader.check"],
    "syft_flwr_gdrive.transport.drive.api": ["DriveApi._upload_resumable", "DriveApi._download"],
    "syft_flwr_gdrive.flower.grid": ["TransportGrid.send_and_receive"],
    "syft_flwr_gdrive.flower.client_loop": ["ClientLoop._execute"],
}


def _install(directory: str) -> None:
    import functools
    import importlib.abc
    import importlib.machinery
    import json
    import threading
    import time
    from typing import Any

    out = open(os.path.join(directory, f"trace-{os.getpid()}.jsonl"), "a", buffering=1)  # noqa: SIM115
    lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(record) + "\n")

    def wrap(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.time(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                emit(
                    {
                        "f": name,
                        "t0": t0,
                        "t1": time.time(),
                        "cpu": time.thread_time() - c0,
                        "th": threading.current_thread().name,
                    }
                )

        return timed

    class Loader(importlib.abc.Loader):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def create_module(self, spec: Any) -> Any:
            return self.inner.create_module(spec)

        def exec_module(self, module: Any) -> None:
            self.inner.exec_module(module)
            for qualified in TARGETS[module.__name__]:
                *path, attr = qualified.split(".")
                owner = module
                for part in path:
                    owner = getattr(owner, part)
                setattr(owner, attr, wrap(qualified, getattr(owner, attr)))

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name not in TARGETS:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None:
                spec.loader = Loader(spec.loader)
            return spec

    def sample_cpu() -> None:
        while True:
            times = os.times()
            emit({"f": "#cpu", "t": time.time(), "u": times.user, "s": times.system})
            time.sleep(0.05)

    sys.meta_path.insert(0, Finder())
    emit({"f": "#argv", "argv": sys.argv})
    threading.Thread(target=sample_cpu, name="timeline-cpu", daemon=True).start()


if _DIR:
    _install(_DIR)
