"""Benchmark worker processes: ``python bench/_worker.py {server|clients|raw-io} SPEC.json``.

* ``server``: ``syftbox_server.serve`` (``syftbox_flwr_server`` with the outcome) with the Drive transport the CLI would
  build, running the ServerApp through a recording Grid wrapper that timestamps
  every ``send_and_receive`` (the exchange boundaries the scripts cut at).
* ``clients``: one or more ``syftbox_flwr_client`` loops as threads, each with
  its own transport (its own DriveApi, its own counters), the ClientApp wrapped
  to time each call.
* ``raw-io``: a plain ``DriveApi`` upload of N bytes held in memory and a
  streamed download of them into a temporary file (the throughput and memory
  baseline for large payloads: the payload is held once).

Each writes a JSON report to ``spec["out"]`` including its peak RSS (VmHWM).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


# -- process facts ------------------------------------------------------------------------


def proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler(threading.Thread):
    """Samples VmRSS every ``period`` seconds (for a memory timeline)."""

    def __init__(self, period: float = 0.05) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            rss = proc_status_kib("VmRSS")
            if rss is not None:
                self.samples.append((time.time(), rss))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


class CountingHandler(logging.Handler):
    """Counts log records (WARNING and up, and the retry policy's INFO lines) by template."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.counts: Counter[str] = Counter()
        self.samples: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        msg = str(record.msg)
        ours = record.name.startswith("syft_flwr_gdrive")
        is_retry = ours and record.name.startswith("syft_flwr_gdrive.transport.drive") and "retry" in msg
        is_recovery = ours and ("could not" in msg or "failed" in msg)  # INFO: handled again at the next poll
        if record.levelno < logging.WARNING and not (is_retry or is_recovery):
            return
        key = f"{record.levelname} {record.name}: {record.msg}"
        with self._lock2:
            self.counts[key] += 1
            if record.levelno >= logging.WARNING and len(self.samples) < 40:
                try:
                    self.samples.append(f"{record.levelname} {record.name}: {record.getMessage()}"[:400])
                except Exception:
                    pass


def setup_logging() -> CountingHandler:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("googleapiclient.discovery_cache", "googleapiclient.discovery", "urllib3", "flwr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("flwr").propagate = False  # flwr prints through its own handler already
    handler = CountingHandler()
    logging.getLogger().addHandler(handler)
    return handler


def write_report(path: str, data: dict[str, Any]) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def load_ref(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def settings_for(spec: dict[str, Any], email: str) -> Any:
    from syft_flwr_gdrive.base.config import Settings

    return Settings.from_env(
        {},
        email=email,
        poll_interval=float(spec["poll_interval"]),
        msg_timeout=float(spec["msg_timeout"]),
        state_dir=Path(spec["state_dir"]),
        transport_options={"drive_url": spec["drive_url"], **(spec.get("transport_options") or {})},
        **(spec.get("settings_overrides") or {}),
    )


def transport_for(settings: Any) -> Any:
    """The transport the CLI builds (plugin lookup; for the fake: a fake token, one about.get)."""
    from syft_flwr_gdrive.transport.registry import create_transport

    return create_transport(settings)


def api_counts(transport: Any) -> dict[str, Any]:
    api = getattr(transport, "api", None)
    calls = getattr(api, "calls", None)
    if calls is None:
        return {"drive_calls": transport.call_counts() if hasattr(transport, "call_counts") else {}}
    return {"drive_calls": calls.snapshot(), "drive_retries": calls.retry_snapshot()}


def record_to_jsonable(record: Any) -> Any:
    from flwr.app import ArrayRecord

    if isinstance(record, ArrayRecord):
        return {"arrays": len(record), "bytes": record.count_bytes()}
    out = {}
    for key, value in dict(record).items():
        if isinstance(value, float) and value != value:
            value = None
        elif isinstance(value, bytes):
            value = f"<{len(value)} bytes>"
        out[key] = value
    return out


# -- soak probes (bench/soak.py) ---------------------------------------------------------------


def heap_figures(top: int = 8) -> dict[str, Any]:
    """What a leak shows first: Python's allocated blocks, gc-tracked objects, the largest containers."""
    import gc

    gc.collect()  # live objects only: a cycle awaiting collection is not a leak
    objects = gc.get_objects()
    sized = []
    for obj in objects:
        if isinstance(obj, (dict, set, list, frozenset)) and len(obj) >= 30:
            sized.append(obj)
    sized.sort(key=len, reverse=True)
    containers = {}  # by id: what soak.py diffs between samples to find what grows
    for obj in sized[:400]:
        try:
            first = repr(next(iter(obj)))[:60]
        except StopIteration:
            first = ""
        containers[str(id(obj))] = [type(obj).__name__, len(obj), first]
    largest = []
    for obj in sized[:top]:
        try:
            first = next(iter(obj))
            sample = repr(first)[:80]
        except StopIteration:
            sample = ""
        largest.append({"type": type(obj).__name__, "len": len(obj), "first": sample})
    by_type = Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in objects)
    del sized, objects
    return {
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_objects": sum(by_type.values()),
        "largest": largest,
        "gc_objects_by_type": dict(by_type.most_common(60)),
        "containers": containers,
    }


def start_probe(spec: dict[str, Any]) -> None:
    """Answer each ``req-<k>`` file soak.py drops into ``probe_dir`` with ``<name>-<k>.json`` (heap figures)."""
    probe_dir = spec.get("probe_dir")
    if not probe_dir:
        return
    folder = Path(probe_dir)
    name = Path(spec["out"]).stem

    def watch() -> None:
        answered: set[str] = set()
        while True:
            time.sleep(0.2)
            try:
                requests = [p.name[4:] for p in folder.glob("req-*")]
            except OSError:
                continue
            for k in requests:
                if k not in answered:
                    answered.add(k)
                    write_report(str(folder / f"{name}-{k}.json"), heap_figures())

    threading.Thread(target=watch, name="soak-probe", daemon=True).start()


def progress_hook(spec: dict[str, Any]) -> Callable[[dict[str, Any]], None] | None:
    """One JSON line per exchange into ``progress_file``; after the exchanges in ``hold_after``, wait (bounded)
    for ``probe_dir/go-<index>`` so soak.py measures every participant between two exchanges."""
    progress = spec.get("progress_file")
    if not progress:
        return None
    holds = {int(i) for i in spec.get("hold_after") or ()}
    go_dir = Path(spec.get("probe_dir") or ".")
    hold_s = float(spec.get("hold_s") or 120.0)

    def on_exchange(entry: dict[str, Any]) -> None:
        with open(progress, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: entry[k] for k in ("index", "type", "group", "t0", "t1", "replies")}) + "\n")
        if entry["index"] in holds:
            deadline = time.monotonic() + hold_s
            while not (go_dir / f"go-{entry['index']}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    return on_exchange


# -- server -----------------------------------------------------------------------------------


def make_recording_app(
    inner: Any, exchanges: list[dict[str, Any]], on_exchange: Callable[[dict[str, Any]], None] | None = None
) -> Any:
    from flwr.serverapp import Grid
    from flwr.serverapp import ServerApp

    class RecordingGrid(Grid):
        """Delegates to the real grid; timestamps each send_and_receive / push."""

        def __init__(self, grid: Any) -> None:
            self._inner = grid
            self._lock = threading.Lock()

        def set_run(self, run: Any) -> None:
            self._inner.set_run(run)

        @property
        def run(self) -> Any:
            return self._inner.run

        def create_message(
            self, content: Any, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
        ) -> Any:
            return self._inner.create_message(content, message_type, dst_node_id, group_id, ttl)

        def get_node_ids(self) -> Iterable[int]:
            return self._inner.get_node_ids()

        def push_messages(self, messages: Iterable[Any]) -> Iterable[str]:
            return self._inner.push_messages(messages)

        def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Any]:
            return self._inner.pull_messages(message_ids)

        def send_and_receive(self, messages: Iterable[Any], *, timeout: float | None = None) -> Iterable[Any]:
            # Pass the messages through without keeping them: an app that hands over its only reference
            # (a generator, as bench_apps' payload app does) lets the grid free a request once it is sent.
            kinds: set[str] = set()
            groups: set[str] = set()
            count = 0

            def noted() -> Iterable[Any]:
                nonlocal count
                for m in messages:
                    kinds.add(m.metadata.message_type)
                    groups.add(m.metadata.group_id)
                    count += 1
                    yield m

            rss0 = proc_status_kib("VmRSS")
            t0 = time.time()
            out = list(self._inner.send_and_receive(noted(), timeout=timeout))
            t1 = time.time()
            entry = {
                "type": ",".join(sorted(kinds)),
                "group": ",".join(sorted(groups)),
                "n": count,
                "replies": len(out),
                "errors": sum(1 for m in out if m.has_error()),
                "t0": t0,
                "t1": t1,
                "rss_before_kib": rss0,
            }
            with self._lock:
                exchanges.append(entry)
            if on_exchange is not None:
                on_exchange(dict(entry, index=len(exchanges)))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    class RecordingServerApp(ServerApp):
        def __init__(self) -> None:
            super().__init__()

        def __call__(self, grid: Any, context: Any) -> None:
            inner(grid=RecordingGrid(grid), context=context)

    return RecordingServerApp()


def run_server(spec: dict[str, Any], logs: CountingHandler) -> dict[str, Any]:
    from flwr.app import Context
    from flwr.app import RecordDict

    from syft_flwr_gdrive.flower.syftbox_server import serve

    if spec.get("project"):
        from syft_flwr_gdrive.flower.project import FlowerProject

        proj = FlowerProject.load(spec["project"], dict(spec.get("run_config") or {}))
        inner = proj.load_server_app()
        app_name = spec.get("app_name") or proj.app_name
        run_config = dict(proj.run_config)
    else:
        inner = load_ref(spec["server_app"])
        app_name = spec["app_name"]
        run_config = dict(spec.get("run_config") or {})
    settings = settings_for(spec, spec["server_email"])
    transport = transport_for(settings)
    exchanges: list[dict[str, Any]] = []
    app = make_recording_app(inner, exchanges, progress_hook(spec))
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)
    report: dict[str, Any] = {"role": "server", "email": settings.email, "exchanges": exchanges, "completed": False}
    sampler = RssSampler() if spec.get("rss_samples") else None
    report["vm_rss_start_kib"] = proc_status_kib("VmRSS")
    report["t_start"] = time.time()
    if sampler:
        sampler.start()
    try:
        outcome = serve(app, context, list(spec["datasites"]), app_name, settings=settings, transport=transport)
        result = outcome.context
        report["metrics"] = outcome.metrics  # Flower's own per-round figures (flower/round_metrics.py)
        # syftbox_flwr_server returns the context it was given (Flower updates it in place); an error
        # in the ServerApp is logged and leaves the fresh, empty state untouched.
        report["completed"] = bool(result.state) and not any("server encountered an error" in k for k in logs.counts)
        report["state"] = {k: record_to_jsonable(v) for k, v in result.state.items()}
    finally:
        report["t_end"] = time.time()
        if sampler:
            sampler.stop()
            report["rss_samples"] = sampler.samples
        report.update(api_counts(transport))
        report["vm_hwm_kib"] = proc_status_kib("VmHWM")
        report["log_counts"] = dict(logs.counts)
        report["log_samples"] = list(logs.samples)
    return report


# -- clients ----------------------------------------------------------------------------------


def make_timed_app(inner: Any, email: str, calls: list[dict[str, Any]]) -> Any:
    from flwr.clientapp import ClientApp

    class TimedClientApp(ClientApp):
        def __init__(self) -> None:
            super().__init__()

        def __call__(self, message: Any, context: Any) -> Any:
            t0 = time.time()
            rss0 = proc_status_kib("VmRSS")
            try:
                return inner(message, context)
            finally:
                calls.append(
                    {
                        "email": email,
                        "type": message.metadata.message_type,
                        "t0": t0,
                        "t1": time.time(),
                        "rss_before_kib": rss0,
                    }
                )

    return TimedClientApp()


def run_clients(spec: dict[str, Any], logs: CountingHandler) -> dict[str, Any]:
    from syft_flwr_gdrive.flower.syftbox_client import syftbox_flwr_client

    if spec.get("project"):
        from syft_flwr_gdrive.flower.project import FlowerProject

        proj = FlowerProject.load(spec["project"])
        client_app = proj.load_client_app()
        app_name = spec.get("app_name") or proj.app_name
    else:
        client_app = load_ref(spec["client_app"])
        app_name = spec["app_name"]
    stop = threading.Event()
    results: list[dict[str, Any]] = []
    app_calls: list[dict[str, Any]] = []
    lock = threading.Lock()
    sampler = RssSampler() if spec.get("rss_samples") else None

    def serve(index: int, email: str) -> None:
        entry: dict[str, Any] = {"email": email, "index": index}
        transport = None
        try:
            settings = settings_for(spec, email)
            transport = transport_for(settings)
            loop_kwargs: dict[str, Any] = {}
            node_config = {"partition-id": index, "num-partitions": int(spec["num_partitions"])}
            node_config.update(spec.get("node_config") or {})
            rep = syftbox_flwr_client(
                # soak.py keeps no per-call record: the worker's own list would grow with the rounds it measures
                make_timed_app(client_app, email, app_calls) if spec.get("record_app_calls", True) else client_app,
                app_name,
                aggregator=spec["server_email"],
                node_config=node_config,
                settings=settings,
                transport=transport,
                stop_event=stop,
                **loop_kwargs,
            )
            entry.update(run_id=rep.run_id, handled=rep.handled, errors=rep.errors, stopped_by=rep.stopped_by)
        except BaseException as exc:  # report, never hang the others
            entry["exception"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()[-2000:]
        finally:
            if transport is not None:
                entry.update(api_counts(transport))
            with lock:
                results.append(entry)

    threads = [
        threading.Thread(target=serve, args=(i, e), name=f"client-{e.split('@')[0]}", daemon=True)
        for i, e in spec["clients"]
    ]
    report: dict[str, Any] = {"role": "clients", "vm_rss_start_kib": proc_status_kib("VmRSS"), "t_start": time.time()}
    if sampler:
        sampler.start()
    deadline = time.monotonic() + float(spec.get("max_seconds") or 600)
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive() and time.monotonic() < deadline:
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        report["interrupted"] = True
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        report["t_end"] = time.time()
        if sampler:
            sampler.stop()
            report["rss_samples"] = sampler.samples
        report["clients"] = sorted(results, key=lambda r: r["index"])
        report["app_calls"] = app_calls
        report["vm_hwm_kib"] = proc_status_kib("VmHWM")
        report["log_counts"] = dict(logs.counts)
        report["log_samples"] = list(logs.samples)
        report["timed_out"] = time.monotonic() >= deadline
    return report


# -- raw DriveApi I/O -----------------------------------------------------------------------------


def run_raw_io(spec: dict[str, Any], logs: CountingHandler) -> dict[str, Any]:
    import numpy as np
    from google.oauth2.credentials import Credentials

    from syft_flwr_gdrive.fake import fake_token_for
    from syft_flwr_gdrive.transport.drive.api import DriveApi

    size = int(spec["size"])
    # the fake's never-expiring token: the timed runs hold Drive calls only, no token refresh
    token = fake_token_for(spec.get("email", "raw@example.com"))
    api = DriveApi(Credentials(token=token), base_url=spec["drive_url"])
    report: dict[str, Any] = {"role": "raw-io", "size": size, "vm_rss_start_kib": proc_status_kib("VmRSS"), "runs": []}
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    with tempfile.TemporaryFile() as fh:  # built in 16 MiB pieces and read back in one allocation: held once
        for start in range(0, size, 16 * 1024 * 1024):
            fh.write(rng.bytes(min(16 * 1024 * 1024, size - start)))
        fh.seek(0)
        data = fh.read()
    report["vm_rss_with_data_kib"] = proc_status_kib("VmRSS")
    expected = hashlib.sha256(data).hexdigest()
    for i in range(int(spec.get("repeat", 1))):
        t0 = time.perf_counter()
        created = api.upload_bytes(f"raw-{i}.bin", data, parent_id=None, fields="id")
        t1 = time.perf_counter()
        with tempfile.TemporaryFile() as back:  # streamed to disk in ranged chunks: the payload is held once
            got = api.download_to(str(created["id"]), back)
            t2 = time.perf_counter()
            back.seek(0)
            digest = hashlib.file_digest(back, "sha256").hexdigest()  # type: ignore[arg-type]
        ok = got == size and digest == expected
        api.delete_many([str(created["id"])], missing_ok=True)
        report["runs"].append({"upload_s": t1 - t0, "download_s": t2 - t1, "ok": ok})
    report["drive_calls"] = api.calls.snapshot()
    report["vm_hwm_kib"] = proc_status_kib("VmHWM")
    report["log_counts"] = dict(logs.counts)
    return report


def main() -> int:
    role, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (a background job)
    logs = setup_logging()
    start_probe(spec)
    runner = {"server": run_server, "clients": run_clients, "raw-io": run_raw_io}[role]
    try:
        report = runner(spec, logs)
        code = 0
    except KeyboardInterrupt:
        report, code = {"role": role, "interrupted": True}, 130
    except BaseException as exc:
        logging.getLogger("bench.worker").exception("worker failed")
        report, code = (
            {"role": role, "exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]},
            1,
        )
    report["pid"] = os.getpid()
    mod = sys.modules.get("syft_flwr_gdrive")
    report["code_path"] = str(Path(mod.__file__).resolve().parent) if mod is not None and mod.__file__ else None
    report.setdefault("vm_hwm_kib", proc_status_kib("VmHWM"))
    write_report(spec["out"], report)
    if role == "server" and code == 0 and not report.get("completed"):
        code = 4
    return code


if __name__ == "__main__":
    sys.exit(main())
