"""Shared machinery of the benchmark scripts (not a benchmark itself).

* :class:`DriveTap` records every API call the in-process fake Drive answers
  (time, user, route, status, request/response bytes), so calls and bytes are
  counted on the wire, per participant, whatever the participants' code does.
* :class:`Federation` runs one server worker process and client workers
  (one process per client, or all clients as threads in one process) against
  one fake Drive, with timeouts on every wait and clean shutdown.
* Helpers to cut the tap's events at the server's exchange boundaries.

Workers are ``bench/_worker.py`` (server, clients, raw-io).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKER = BENCH / "_worker.py"
SERVER_EMAIL = "ds@example.com"

# Which code is measured: a snapshot of a commit (default HEAD, via `git archive`, so edits other
# people make in the working tree meanwhile cannot change or break a run), or the live working tree.
CODE: dict[str, Any] = {"rev": "worktree", "root": REPO, "commit": None}


def select_code(rev: str, workdir: Path) -> dict[str, Any]:
    """Measure ``rev`` ("worktree" or a git revision): put its syft_flwr_gdrive/ and fixtures/ first on the path.

    Must run before anything imports syft_flwr_gdrive. Workers inherit it through PYTHONPATH.
    """
    if "syft_flwr_gdrive" in sys.modules:
        raise RuntimeError("select_code() must run before syft_flwr_gdrive is imported")
    if rev != "worktree":
        commit = subprocess.run(
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, timeout=30
        )
        if commit.returncode != 0:
            raise SystemExit(f"--code {rev!r} is not a git revision of {REPO}: {commit.stderr.strip()}")
        root = workdir / f"code-{commit.stdout.strip()[:12]}"
        if not (root / "syft_flwr_gdrive").is_dir():
            root.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "archive", "--format=tar", commit.stdout.strip(), "syft_flwr_gdrive", "fixtures"],
                cwd=REPO,
                capture_output=True,
                timeout=120,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True, timeout=120)
        CODE.update(rev=rev, root=root, commit=commit.stdout.strip())
        sys.path.insert(0, str(root))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    import syft_flwr_gdrive

    where = Path(syft_flwr_gdrive.__file__).resolve().parent.parent
    if where != Path(CODE["root"]).resolve():
        raise SystemExit(f"measuring the wrong code: syft_flwr_gdrive imported from {where}, expected {CODE['root']}")
    return code_version()


def message_app() -> Path:
    return Path(CODE["root"]) / "fixtures" / "message_app"


def legacy_app() -> Path:
    return Path(CODE["root"]) / "fixtures" / "legacy_app"


# Drive's published quota units per call class (the fake charges the same).
UNIT_COSTS = {"list": 100, "get": 5, "download": 200, "modify": 50}
# route -> cost class, used if the fake's own table cannot be imported.
_FALLBACK_ROUTE_COST = {
    "about.get": "get",
    "files.generateIds": "get",
    "files.list": "list",
    "files.create": "modify",
    "permissions.list": "get",
    "permissions.create": "modify",
    "permissions.get": "get",
    "permissions.update": "modify",
    "permissions.delete": "modify",
    "files.get": "get",
    "files.download": "download",
    "files.update": "modify",
    "files.delete": "modify",
    "changes.getStartPageToken": "get",
    "changes.list": "list",
    "upload.chunk": None,
    "upload.create": "modify",
    "upload.update": "modify",
    "batch": None,
}


def client_emails(n: int) -> list[str]:
    return [f"do{i + 1:02d}@example.com" for i in range(n)]


def route_costs() -> dict[str, str | None]:
    costs = dict(_FALLBACK_ROUTE_COST)
    try:
        from syft_flwr_gdrive.fake.routes import ROUTES

        for r in ROUTES:
            costs[r.name] = r.cost
    except Exception:  # the fake's internals moved: the fallback table is Drive's documented costs
        pass
    return costs


# -- the wire tap -----------------------------------------------------------------------


@dataclass(frozen=True)
class CallEvent:
    t: float  # time.time() when the fake answered
    user: str
    route: str
    status: int
    bytes_in: int  # request body (uploads)
    bytes_out: int  # response body (downloads)
    part: bool  # a call inside a batch request
    inner: tuple[str, ...] = ()  # a batch request's parts, by route


class DriveTap:
    """Wraps the fake server's request handler (in this process) to log every call.

    Relies on the fake's ``Api.handle(req, outer_user=...)`` and the
    ``x-fake-route``/``x-fake-user`` headers it stamps on handled requests.
    A part of a batch request is one event with ``part=True``; the batch itself
    is one more event (route ``batch``) that lists its parts' routes (``inner``).
    """

    def __init__(self, drive: Any) -> None:
        self.events: list[CallEvent] = []
        self._lock = threading.Lock()
        self._parts = threading.local()  # the routes of the batch being answered on this thread
        api = drive.api
        if api is None:
            raise RuntimeError("start the fake Drive before tapping it")
        original = api.handle

        def handle(req: Any, *args: Any, **kwargs: Any) -> Any:
            outer = kwargs.get("outer_user", args[0] if args else None)
            if not outer:
                self._parts.routes = []
            resp = original(req, *args, **kwargs)
            try:
                headers = req.headers
                route = headers.get("x-fake-route") or "unknown"
                if route != "admin":
                    body = getattr(req, "body", None)
                    ev = CallEvent(
                        t=time.time(),
                        user=(headers.get("x-fake-user") or outer or "").lower(),
                        route=route,
                        status=int(getattr(resp, "status", 0)),
                        bytes_in=0 if outer else int(getattr(body, "length", 0) or 0),
                        bytes_out=int(getattr(resp, "length", 0) or 0),
                        part=bool(outer),
                        inner=() if outer else tuple(getattr(self._parts, "routes", ())),
                    )
                    if outer:
                        getattr(self._parts, "routes", []).append(route)
                    with self._lock:
                        self.events.append(ev)
            except Exception:  # never break the fake because of the benchmark
                pass
            return resp

        api.handle = handle  # instance attribute: batch parts (self.handle) come through here too

    def snapshot(self) -> list[CallEvent]:
        with self._lock:
            return list(self.events)

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int) -> list[CallEvent]:
        with self._lock:
            return self.events[mark:]


def is_quota_error(ev: CallEvent) -> bool:
    return ev.status in (403, 429) and ev.route not in ("batch",)


def calls_of(events: Iterable[CallEvent]) -> Counter:
    """API calls by route: batch parts count as calls, the batch envelope as one 'batch' request."""
    c: Counter = Counter()
    for ev in events:
        c[ev.route] += 1
    return c


def _is_poll_request(ev: CallEvent) -> bool:
    """A request a poll sends: a listing of its own, or a batch of reads (gets by id, listings)."""
    if ev.part:
        return False
    return ev.route == "files.list" or (ev.route == "batch" and bool({"files.get", "files.list"} & set(ev.inner)))


def polls_of(events: Iterable[CallEvent]) -> int:
    """Poll requests: listings sent on their own and batch requests of reads (gets by id, listings)."""
    return sum(1 for ev in events if _is_poll_request(ev))


def poll_occasions(events: Sequence[CallEvent], within: float = 0.05) -> int:
    """Polls, counting the requests one poll sends side by side (listings of 40 folders each, batches of
    100 reads) once: poll requests less than ``within`` seconds apart are one poll."""
    times = sorted(ev.t for ev in events if _is_poll_request(ev))
    return sum(1 for i, t in enumerate(times) if i == 0 or t - times[i - 1] > within)


def poll_units_of(events: Iterable[CallEvent]) -> int:
    """Quota units of what polls read: every listing, and every get inside a batch (a get on its own is a
    blob's or a conflict's check, not a poll)."""
    return sum(
        UNIT_COSTS["list"] if ev.route == "files.list" else UNIT_COSTS["get"]
        for ev in events
        if not is_quota_error(ev) and (ev.route == "files.list" or (ev.part and ev.route == "files.get"))
    )


def requests_of(events: Iterable[CallEvent]) -> int:
    """HTTP requests (what a participant sends): batch parts are inside one request."""
    return sum(1 for ev in events if not ev.part)


def units_of(events: Iterable[CallEvent], costs: dict[str, str | None] | None = None) -> int:
    costs = costs or route_costs()
    total = 0
    for ev in events:
        if is_quota_error(ev):
            continue  # refused calls are not charged
        cls = costs.get(ev.route)
        if cls:
            total += UNIT_COSTS[cls]
    return total


def is_write(ev: CallEvent, costs: dict[str, str | None] | None = None) -> bool:
    """A write in Drive's sense (what the per-account sustained write limit counts): a
    modify-class call (create, upload, update, delete, permission change), batch parts one by one."""
    return (costs or route_costs()).get(ev.route) == "modify"


def writes_of(events: Iterable[CallEvent], costs: dict[str, str | None] | None = None) -> int:
    """Writes Drive accepted (refused ones, e.g. over the write limit, are counted by :func:`refused_writes_of`)."""
    costs = costs or route_costs()
    return sum(1 for ev in events if is_write(ev, costs) and ev.status < 400)


def refused_writes_of(events: Iterable[CallEvent], costs: dict[str, str | None] | None = None) -> int:
    """Writes answered 403/429 (the write limit or the quota): each one is retried later, costing time."""
    costs = costs or route_costs()
    return sum(1 for ev in events if is_write(ev, costs) and is_quota_error(ev))


def round_floor(latency: float, poll: float) -> float:
    """The floor of one Flower round for a single client: two exchanges of 6L + p each."""
    return 2 * (6 * latency + poll)


def by_user(events: Iterable[CallEvent]) -> dict[str, list[CallEvent]]:
    out: dict[str, list[CallEvent]] = defaultdict(list)
    for ev in events:
        out[ev.user].append(ev)
    return out


def window(events: Sequence[CallEvent], t0: float, t1: float) -> list[CallEvent]:
    return [ev for ev in events if t0 <= ev.t < t1]


def max_units_per_minute(events: Sequence[CallEvent], costs: dict[str, str | None] | None = None) -> int:
    """Largest quota use of any sliding 60 s window (what the per-minute quota sees)."""
    costs = costs or route_costs()
    charged = [(ev.t, UNIT_COSTS[costs[ev.route]]) for ev in events if costs.get(ev.route) and not is_quota_error(ev)]
    charged.sort()
    best = total = 0
    j = 0
    for t, u in charged:
        total += u
        while charged[j][0] <= t - 60.0:
            total -= charged[j][1]
            j += 1
        best = max(best, total)
    return best


# -- processes --------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    out: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""


class ProcessGroup:
    """Worker processes this benchmark started; stopped by their own pids only."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def spawn(self, name: str, role: str, spec: dict[str, Any]) -> Proc:
        spec_path = self.workdir / f"{name}.spec.json"
        out = self.workdir / f"{name}.json"
        log = self.workdir / f"{name}.log"
        spec = dict(spec, out=str(out))
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
        env["PYTHONUNBUFFERED"] = "1"
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                [sys.executable, str(WORKER), role, str(spec_path)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(REPO),
                start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop them ourselves
            )
        proc = Proc(name, popen, log, out)
        self.procs.append(proc)
        return proc

    def wait(self, procs: Sequence[Proc], deadline: float) -> bool:
        for p in procs:
            try:
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, grace: float = 10.0) -> None:
        """SIGINT every live worker, wait a bounded time, then SIGKILL (each by its pid)."""
        live = [p for p in self.procs if p.alive()]
        for p in live:
            try:
                p.popen.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for p in live:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    p.popen.kill()
                    p.popen.wait(timeout=5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass


# -- a federation -----------------------------------------------------------------------


@dataclass
class FederationResult:
    server: dict[str, Any]
    clients: list[dict[str, Any]]  # per client: {"email", ...client report}
    client_workers: list[dict[str, Any]]  # per worker process: vm_hwm etc.
    server_exit: int | None
    client_exits: list[int | None]
    finished: bool  # server exited within the timeout
    elapsed: float
    t_start: float
    t_end: float
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def exchanges(self) -> list[dict[str, Any]]:
        return list(self.server.get("exchanges") or [])

    @property
    def completed(self) -> bool:
        return bool(self.server.get("completed")) and self.server_exit == 0


def run_federation(
    drive_url: str,
    workdir: Path,
    *,
    n_clients: int,
    mode: str,
    poll_interval: float,
    msg_timeout: float,
    timeout: float,
    project: Path | None = None,
    server_app: str | None = None,
    client_app: str | None = None,
    app_name: str | None = None,
    run_config: dict[str, Any] | None = None,
    client_linger: float | None = None,
    procs: ProcessGroup | None = None,
    verbose: bool = False,
    extra_spec: dict[str, Any] | None = None,
    server_delay: float = 0.0,
) -> FederationResult:
    """Start clients (processes or threads), then the server; wait (bounded); collect reports."""
    workdir.mkdir(parents=True, exist_ok=True)
    own_group = procs is None
    group = procs or ProcessGroup(workdir)
    emails = client_emails(n_clients)
    state_dir = workdir / "state"
    common = {
        "drive_url": drive_url,
        "server_email": SERVER_EMAIL,
        "project": str(project) if project else None,
        "app_name": app_name,
        "poll_interval": poll_interval,
        "msg_timeout": msg_timeout,
        "state_dir": str(state_dir),
        "max_seconds": timeout + 60,
        **(extra_spec or {}),
    }
    if mode == "processes":
        batches = [[(i, e)] for i, e in enumerate(emails)]
    elif mode == "threads":
        procs_n = max(1, min(CLIENT_PROCS["count"], n_clients))
        batches = [list(enumerate(emails))[k::procs_n] for k in range(procs_n)]
    else:
        raise ValueError(f"mode must be 'processes' or 'threads', not {mode!r}")
    t_start = time.time()
    started = time.monotonic()
    workers: list[Proc] = []
    server: Proc | None = None
    try:
        for k, batch in enumerate(batches):
            spec = dict(common, clients=batch, num_partitions=n_clients, client_app=client_app, linger=client_linger)
            workers.append(group.spawn(f"clients{k:02d}", "clients", spec))
        spec = dict(common, datasites=emails, server_app=server_app, run_config=dict(run_config or {}))
        if server_delay > 0:
            time.sleep(server_delay)  # shifts the server's polls against the clients' (latency depends on that phase)
        server = group.spawn("server", "server", spec)
        finished = group.wait([server], started + timeout)
        if finished:
            # clients leave after the stop signal (plus a bounded linger)
            group.wait(workers, time.monotonic() + max(30.0, 8 * poll_interval + 10))
    finally:
        if own_group:
            group.stop()
    t_end = time.time()
    server_report = (server.report() if server else None) or {}
    clients: list[dict[str, Any]] = []
    worker_reports: list[dict[str, Any]] = []
    for w in workers:
        rep = w.report() or {}
        worker_reports.append({k: v for k, v in rep.items() if k != "clients"})
        clients.extend(rep.get("clients") or [])
    logs = {}
    if server is not None and (verbose or server.popen.returncode != 0):
        logs["server"] = server.log_tail()
    return FederationResult(
        server=server_report,
        clients=clients,
        client_workers=worker_reports,
        server_exit=server.popen.returncode if server else None,
        client_exits=[w.popen.returncode for w in workers],
        finished=bool(server and server.popen.returncode is not None),
        elapsed=time.monotonic() - started,
        t_start=t_start,
        t_end=t_end,
        logs=logs,
    )


# -- script plumbing --------------------------------------------------------------------


DRIVE_PROFILE = {"name": "default"}  # set by --drive-profile; every fake_drive() of the script uses it
# set by --client-procs: how many OS processes the client threads of a ``threads`` run are spread over. One
# process holds one GIL: 100 client threads in one process queue for it (py-spy: most of their samples wait on
# it) while the machine has a second core; a few processes is how 100 datasites would run (each on its own
# machine), and the fake keeps its own process (the script's) either way.
CLIENT_PROCS = {"count": 1}


class _ClientProcsAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        if int(values) < 1:
            parser.error("--client-procs must be at least 1")
        setattr(namespace, self.dest, int(values))
        CLIENT_PROCS["count"] = int(values)


class _ProfileAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        DRIVE_PROFILE["name"] = str(values)


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smaller, faster run (for a smoke check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fake's fault stream and the payloads (default 0)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep worker logs, specs and reports here (default: a temp dir, removed)",
    )
    p.add_argument("--verbose", action="store_true", help="print worker log tails")
    p.add_argument(
        "--drive-profile",
        choices=["default", "strict"],
        default="default",
        action=_ProfileAction,
        help="fake Drive profile; strict: only what Drive documents (lag on every change, 3 writes/s per "
        "account, hidden owner emails, ...; docs/drive-assumptions.md)",
    )
    p.add_argument(
        "--client-procs",
        type=int,
        default=1,
        action=_ClientProcsAction,
        help="threads mode: spread the client threads over this many processes (default 1: all in one)",
    )
    p.add_argument(
        "--code",
        default="HEAD",
        help="what to measure: a git revision, snapshotted with git archive (default HEAD), or 'worktree' "
        "for the live working tree (uncommitted edits included)",
    )
    return p


class Workdir:
    """A given directory (kept) or a temporary one (removed on exit)."""

    def __init__(self, path: Path | None, prefix: str) -> None:
        self._tmp = None if path else tempfile.TemporaryDirectory(prefix=f"sfg-bench-{prefix}-")
        self.path = Path(path) if path else Path(self._tmp.name)  # type: ignore[union-attr]
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def code_version() -> dict[str, Any]:
    """Which code was measured: the revision snapshotted, or HEAD plus the working tree's uncommitted files."""
    info: dict[str, Any] = {"code": CODE["rev"], "commit": CODE["commit"], "drive_profile": DRIVE_PROFILE["name"]}
    if CODE["rev"] == "worktree":
        try:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--", "syft_flwr_gdrive", "fixtures"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            info.update(commit=head, uncommitted_files=len(dirty.splitlines()) if dirty else 0)
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def fake_drive(faults: Any = None) -> Any:
    from syft_flwr_gdrive.fake import FakeDriveServer

    if DRIVE_PROFILE["name"] != "default":
        return FakeDriveServer(faults=faults, profile=DRIVE_PROFILE["name"])
    return FakeDriveServer(faults=faults)


def install_sigterm_as_interrupt() -> None:
    """SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so finally blocks clean up; Ctrl-C works
    even when the script was started as a background job (which starts with SIGINT ignored)."""

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def print_json_last(result: dict[str, Any]) -> None:
    try:  # other work on the machine skews timings: say how busy it was
        result.setdefault(
            "machine", {"cpus": os.cpu_count(), "loadavg_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()]}
        )
    except OSError:
        pass
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True, default=str), flush=True)


def stats(values: Sequence[float]) -> dict[str, float | None]:
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    n = len(vals)
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {"n": n, "mean": sum(vals) / n, "median": median, "min": vals[0], "max": vals[-1]}


def fmt_counter(c: dict[str, float], digits: int = 2) -> str:
    return ", ".join(f"{k} {round(v, digits):g}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) if v)


# -- exchange / round boundaries ------------------------------------------------------------


def assign_rounds(exchanges: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exchanges in time order, each with its Flower round number.

    Flower 1.41's Message-API strategies leave the group id empty, so a round
    is counted from each ``train`` exchange (train, then evaluate, per round);
    a numeric group id, when present, wins.
    """
    ordered = sorted(exchanges, key=lambda e: e["t0"])
    out = []
    counter = 0
    for ex in ordered:
        try:
            r = int(str(ex.get("group", "")).split(",")[0])
        except ValueError:
            if "train" in str(ex.get("type", "")) or counter == 0:
                counter += 1
            r = counter
        out.append(dict(ex, round=r))
    return out


def exchange_intervals(exchanges: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each exchange with its interval [t0, next exchange's t0) (the last: [t0, t1])."""
    ordered = assign_rounds(exchanges)
    out = []
    for i, ex in enumerate(ordered):
        end = ordered[i + 1]["t0"] if i + 1 < len(ordered) else ex["t1"]
        out.append(dict(ex, index=i, start=ex["t0"], end=end, last=i + 1 == len(ordered)))
    return out


def round_intervals(exchanges: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flower rounds: [first t0 of round r, first t0 of round r+1) (the last round: up to its last t1)."""
    rounds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ex in assign_rounds(exchanges):
        rounds[ex["round"]].append(ex)
    keys = sorted(rounds)
    out = []
    for i, r in enumerate(keys):
        start = min(e["t0"] for e in rounds[r])
        end = min(e["t0"] for e in rounds[keys[i + 1]]) if i + 1 < len(keys) else max(e["t1"] for e in rounds[r])
        out.append(
            {
                "round": r,
                "start": start,
                "end": end,
                "exchanges": len(rounds[r]),
                "last": i + 1 == len(keys),
                "wall": max(e["t1"] for e in rounds[r]) - start,
            }
        )
    return out


def apply_quick(args: argparse.Namespace, parser: argparse.ArgumentParser, values: dict[str, Any]) -> None:
    """--quick: smaller values for the options the user left at their defaults."""
    if not args.quick:
        return
    for name, value in values.items():
        if getattr(args, name) == parser.get_default(name):
            setattr(args, name, value)


def run_script(main: Callable[[], int]) -> None:
    """Entry point of every benchmark script: its exit code, or 130 on Ctrl-C."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
