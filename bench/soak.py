#!/usr/bin/env python
"""Soak: does anything grow with the number of rounds? (issue 21, item 1)

A real federation runs for hours. This runs one server and ``--clients`` N data owners, **each its own
OS process** (so RSS, open file descriptors and threads are per participant, read from ``/proc/<pid>``),
for ``--rounds`` R rounds (default 500) of ``bench_apps`` echo (FedAvg's traffic pattern, one new 4 KiB
model per round, no compute) over the in-process fake Drive with light faults:

* latency ``--latency`` (0.02 s) on every request,
* ``--error-rate`` (0.5 %) of API calls answered 429 / 403 userRateLimitExceeded / 500 / 503 (the fake's four
  kinds; half of the 5xx answered *after* the call took effect),
* ``--list-lag`` (0.5 s): a new file shows up in listings that much later.

The server worker writes one line per exchange and, after the last exchange of each sampled round (round 10,
every ``--every`` rounds, and the last), waits until this script has measured every participant, so all are
measured between two exchanges. Per participant: RSS, fds, threads (``/proc``), Python's allocated blocks
and its largest containers (a probe thread in each worker), the bytes of each file of its state dir (ledger,
pins, id book, folder ids, ...), the files it owns on Drive (``FakeDriveServer.owned_files``: the store's
ground truth, not a lagging listing) and the round time (the sampled round's own, and the median of the 10
rounds up to it).

**Flat** means no figure at the last round grew past its value at round 10 by more than 10 % or a stated
constant (``TOLERANCE``: 8 MiB RSS, 2 fds, 2 threads, 4 KiB of state dir besides the ledger, 3 Drive files,
0.25 s of round time, 20,000 allocated blocks); a figure that fell (a faster round) is flat. The ledger is
judged by its own bound instead: it keeps a sender's newest 64 entries and compacts at 128
(mailbox/ledger.py), so it fills up to round ~64 and then saws between 64 and 128 lines per sender; flat means
it holds at most ``2 * KEEP_PER_SENDER + 1`` lines per sender at every sample (the timeline shows it level
from round 100 on). The last JSON line gives both samples per participant, the flags and ``flat``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

# A figure is flat when |last - at round 10| <= max(10 % of the round-10 value, this constant).
TOLERANCE: dict[str, float] = {
    "rss_kib": 8 * 1024,
    "fds": 2,
    "threads": 2,
    "state_bytes_besides_ledger": 4096,
    "drive_files": 3,
    "round_s_median10": 0.25,
    "allocated_blocks": 20_000,
}
RELATIVE = 0.10
FIRST_SAMPLE = 10
LEDGER_FILES = "handled-"  # the ledger's file names start so (mailbox/ledger.py ``Ledger.for_app``)


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--rounds", type=int, default=500, help="Flower rounds (default 500)")
    p.add_argument("--clients", type=int, default=10, help="data owners, one process each (default 10)")
    p.add_argument("--poll", type=float, default=0.25, help="poll interval in seconds (default 0.25)")
    p.add_argument("--latency", type=float, default=0.02, help="seconds added to every Drive request (0.02)")
    p.add_argument("--error-rate", type=float, default=0.005, help="share of API calls answered an error (0.005)")
    p.add_argument("--list-lag", type=float, default=0.5, help="seconds before a new file is listed (0.5)")
    p.add_argument("--every", type=int, default=50, help="also sample every this many rounds (default 50)")
    p.add_argument("--model-kib", type=int, default=4, help="model size in KiB (default 4)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds the whole run may take (default 7200)")
    a = p.parse_args()
    H.apply_quick(a, p, {"rounds": 25, "clients": 3, "every": 5})
    if a.rounds <= FIRST_SAMPLE:
        p.error(f"--rounds must be above {FIRST_SAMPLE} (flatness is measured from round {FIRST_SAMPLE})")
    return a


# -- what is measured of one participant ---------------------------------------------------------


def proc_figures(pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": pid}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_kib"] = int(line.split()[1])
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as exc:
        out["error"] = str(exc)
    return out


def state_files(folder: Path) -> dict[str, int]:
    """Bytes of every file under a participant's state dir, by path relative to it."""
    files: dict[str, int] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                try:
                    files[str(path.relative_to(folder))] = path.stat().st_size
                except OSError:
                    pass
    return files


def ledger_lines(folder: Path) -> int:
    total = 0
    for path in folder.glob(LEDGER_FILES + "*"):
        try:
            total += len(path.read_bytes().splitlines())
        except OSError:
            pass
    return total


def participant_state_dir(state_root: Path, email: str) -> Path:
    from syft_flwr_gdrive.base.config import Settings

    return Settings(email=email, state_dir=state_root).participant_state_dir()


def drive_files(drive: Any, email: str) -> dict[str, int]:
    owned = drive.owned_files(email)
    return {"count": len(owned), "bytes": sum(int(f.get("size") or 0) for f in owned)}


# -- the sampler -----------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Follows the server's progress file; at each held exchange measures everyone, then lets the server go."""

    def __init__(self, *, drive: Any, group: H.ProcessGroup, workdir: Path, emails: list[str], holds: dict[int, int]):
        super().__init__(name="soak-sampler", daemon=True)
        self.drive, self.group, self.workdir, self.emails, self.holds = drive, group, workdir, emails, holds
        self.progress = workdir / "progress.jsonl"
        self.probe_dir = workdir / "probe"
        self.probe_dir.mkdir(parents=True, exist_ok=True)
        self.samples: dict[int, dict[str, Any]] = {}  # round -> figures
        self.exchanges: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        offset = 0
        while not self._halt.is_set():
            time.sleep(0.1)
            try:
                with self.progress.open(encoding="utf-8") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except OSError:
                continue
            complete, _, _rest = chunk.rpartition("\n")
            if not complete:
                continue
            offset += len(complete) + 1
            for line in complete.splitlines():
                ex = json.loads(line)
                self.exchanges.append(ex)
                if ex["index"] in self.holds:
                    try:
                        self.samples[self.holds[ex["index"]]] = self.measure(ex["index"], self.holds[ex["index"]])
                    finally:
                        (self.probe_dir / f"go-{ex['index']}").touch()

    def workers(self) -> dict[str, H.Proc]:
        by_name = {p.name: p for p in self.group.procs}
        out = {H.SERVER_EMAIL: by_name["server"]}
        for i, email in enumerate(self.emails):
            out[email] = by_name[f"clients{i:02d}"]
        return out

    def measure(self, index: int, round_no: int) -> dict[str, Any]:
        (self.probe_dir / f"req-{index}").touch()
        workers = self.workers()
        state_root = self.workdir / "state"
        figures: dict[str, Any] = {}
        for email, proc in workers.items():
            folder = participant_state_dir(state_root, email)
            files = state_files(folder)
            figures[email] = {
                **proc_figures(proc.popen.pid),
                "state_bytes": sum(files.values()),
                "state_bytes_besides_ledger": sum(v for k, v in files.items() if not k.startswith(LEDGER_FILES)),
                "ledger_lines": ledger_lines(folder),
                "state_files": files,
                "drive": drive_files(self.drive, email),
            }
        deadline = time.monotonic() + 30
        for email, proc in workers.items():
            answer = self.probe_dir / f"{proc.name}-{index}.json"
            while not answer.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                figures[email]["heap"] = json.loads(answer.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                figures[email]["heap"] = None
        walls = round_walls(self.exchanges)
        recent = [walls[r] for r in range(max(1, round_no - 9), round_no + 1) if r in walls]
        timing = {"round_s": walls.get(round_no), "round_s_median10": H.stats(recent)["median"]}
        return {"round": round_no, "t": time.time(), "timing": timing, "participants": figures}


def round_walls(exchanges: list[dict[str, Any]]) -> dict[int, float]:
    """Each round's wall time: first exchange start to last exchange end (a hold after it is not counted)."""
    spans: dict[int, list[float]] = {}
    for ex in exchanges:
        try:
            r = int(str(ex["group"]).split(",")[0])
        except ValueError:
            continue
        span = spans.setdefault(r, [ex["t0"], ex["t1"]])
        span[0], span[1] = min(span[0], ex["t0"]), max(span[1], ex["t1"])
    return {r: t1 - t0 for r, (t0, t1) in spans.items()}


# -- judging flatness ----------------------------------------------------------------------------------


def flat_figure(name: str, first: float | None, last: float | None) -> bool:
    """No growth beyond the tolerance (a figure that falls, e.g. a round that got faster, is flat)."""
    if first is None or last is None:
        return False
    return last - first <= max(RELATIVE * abs(first), TOLERANCE[name])


def compact(sample: dict[str, Any], email: str) -> dict[str, Any]:
    p = sample["participants"][email]
    heap = p.get("heap") or {}
    return {
        "rss_kib": p.get("rss_kib"),
        "fds": p.get("fds"),
        "threads": p.get("threads"),
        "state_bytes": p.get("state_bytes"),
        "state_bytes_besides_ledger": p.get("state_bytes_besides_ledger"),
        "ledger_lines": p.get("ledger_lines"),
        "state_files": p.get("state_files"),
        "drive_files": p["drive"]["count"],
        "drive_bytes": p["drive"]["bytes"],
        "allocated_blocks": heap.get("allocated_blocks"),
        "largest_containers": heap.get("largest"),
        "round_s": sample["timing"]["round_s"],
        "round_s_median10": sample["timing"]["round_s_median10"],
    }


def ledger_bound(senders: int) -> int:
    """Most lines a bounded ledger holds: per sender 2 x keep entries (compacted past that) and a floor line."""
    from syft_flwr_gdrive.mailbox.ledger import KEEP_PER_SENDER

    return senders * (2 * KEEP_PER_SENDER + 1)


def judge(first: dict[str, Any], last: dict[str, Any], ledger_lines_seen: list[int], senders: int) -> dict[str, bool]:
    verdict = {name: flat_figure(name, first.get(name), last.get(name)) for name in TOLERANCE}
    verdict["ledger_lines"] = max(ledger_lines_seen) <= ledger_bound(senders)
    return verdict


# -- main -----------------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    emails = H.client_emails(args.clients)
    sampled = sorted({FIRST_SAMPLE, args.rounds, *range(args.every, args.rounds, args.every)})
    holds = {2 * r: r for r in sampled}  # the echo app: a train and an evaluate exchange per round
    with H.Workdir(args.workdir, "soak") as wd:
        version = H.select_code(args.code, wd)
        from syft_flwr_gdrive.fake import FaultConfig

        faults = FaultConfig(
            latency=args.latency,
            error_rate=args.error_rate,
            error_after_fraction=0.5,
            list_lag=args.list_lag,
            seed=args.seed,
        )
        print(
            f"== soak: {args.rounds} rounds, {args.clients} client processes + 1 server, poll {args.poll}s, "
            f"L={args.latency}s, errors {args.error_rate:.1%}, list lag {args.list_lag}s; sampling rounds {sampled}",
            flush=True,
        )
        group = H.ProcessGroup(wd)
        with H.fake_drive(faults) as drive:
            sampler = Sampler(drive=drive, group=group, workdir=wd, emails=emails, holds=holds)
            sampler.start()
            try:
                fed = H.run_federation(
                    drive.url,
                    wd,
                    n_clients=args.clients,
                    mode="processes",
                    poll_interval=args.poll,
                    msg_timeout=120.0,
                    timeout=args.timeout,
                    server_app="bench_apps:echo_server_app",
                    client_app="bench_apps:echo_client_app",
                    app_name="bench-echo",
                    run_config={
                        "num-server-rounds": args.rounds,
                        "payload-bytes": args.model_kib * 1024,
                        "seed": args.seed,
                        "round-timeout": 300.0,
                    },
                    procs=group,
                    verbose=args.verbose,
                    extra_spec={
                        "progress_file": str(wd / "progress.jsonl"),
                        "probe_dir": str(wd / "probe"),
                        "hold_after": sorted(holds),
                        "hold_s": 120.0,
                        "record_app_calls": False,
                    },
                )
                left_on_drive = {e: drive_files(drive, e) for e in [H.SERVER_EMAIL, *emails]}
            finally:
                sampler.stop()
                group.stop()
    samples = sampler.samples
    participants = [H.SERVER_EMAIL, *emails]
    result: dict[str, Any] = {
        "bench": "soak",
        "version": version,
        "rounds": args.rounds,
        "clients": args.clients,
        "participants_as": "processes (one per participant: RSS, fds, threads are each participant's own)",
        "poll_interval": args.poll,
        "faults": {"latency": args.latency, "error_rate": args.error_rate, "list_lag": args.list_lag},
        "completed": fed.completed,
        "elapsed_s": round(fed.elapsed, 1),
        "sampled_rounds": sorted(samples),
        "tolerance": {"relative": RELATIVE, **TOLERANCE, "ledger_lines": "at most 2 x keep + 1 per sender"},
        "left_on_drive_after_run": left_on_drive,
    }
    last_round = max(samples) if samples else None
    first, last = samples.get(FIRST_SAMPLE), samples.get(last_round) if last_round else None
    per: dict[str, Any] = {}
    flat = bool(first and last and last_round == args.rounds and fed.completed)
    for email in participants:
        if not (first and last):
            break
        a, b = compact(first, email), compact(last, email)
        senders = args.clients if email == H.SERVER_EMAIL else 1
        seen = [int(s["participants"][email]["ledger_lines"]) for s in samples.values()]
        verdict = judge(a, b, seen, senders)
        flat = flat and all(verdict.values())
        per[email] = {f"round_{FIRST_SAMPLE}": a, f"round_{last_round}": b, "flat": verdict}
        print(
            f"   {email:18s} rss {a['rss_kib'] / 1024:.1f} -> {b['rss_kib'] / 1024:.1f} MiB, fds {a['fds']} -> "
            f"{b['fds']}, threads {a['threads']} -> {b['threads']}, state {a['state_bytes']} -> {b['state_bytes']} B "
            f"(ledger {a['ledger_lines']} -> {b['ledger_lines']} lines, max {max(seen)}, "
            f"bound {ledger_bound(senders)}), "
            f"drive files {a['drive_files']} -> {b['drive_files']}, blocks {a['allocated_blocks']} -> "
            f"{b['allocated_blocks']}, round {a['round_s_median10']:.2f} -> {b['round_s_median10']:.2f} s; "
            f"not flat: {[k for k, v in verdict.items() if not v] or 'none'}",
            flush=True,
        )
    result["per_participant"] = per
    result["timeline"] = {
        str(r): {
            "round_s_median10": s["timing"]["round_s_median10"],
            "state_bytes": {e: s["participants"][e]["state_bytes"] for e in participants},
            "ledger_lines": {e: s["participants"][e]["ledger_lines"] for e in participants},
            "allocated_blocks": {
                e: (s["participants"][e].get("heap") or {}).get("allocated_blocks") for e in participants
            },
            "rss_kib": {e: s["participants"][e].get("rss_kib") for e in participants},
            "drive_files": {e: s["participants"][e]["drive"]["count"] for e in participants},
        }
        for r, s in sorted(samples.items())
    }
    result["flat"] = flat
    print(f"   completed: {fed.completed}, {fed.elapsed:.0f} s; flat: {flat}", flush=True)
    H.print_json_last(result)
    return 0 if fed.completed else 1


if __name__ == "__main__":
    H.run_script(main)
