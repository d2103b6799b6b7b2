#!/usr/bin/env python
"""Idle cost: Drive calls per minute of clients waiting for a run that has not started.

Client processes (``syftbox_flwr_client``, the echo app) run against the
in-process fake Drive with latency L and poll interval p, and no server ever
starts. After a warm-up that leaves out the set-up calls (about.get, folder
creation and sharing, the key), every call each client makes in the next
``--seconds`` is counted on the wire (bench/_harness.DriveTap) and scaled to one
minute. This is what a data owner's idle client costs its Google account: the
ceiling the poll interval promises (about 60 / (p + L) polls a minute).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--latency", type=float, default=0.1, help="seconds added to every Drive request, L (default 0.1)")
    p.add_argument("--poll", type=float, default=3.0, help="poll interval p in seconds (default 3.0)")
    p.add_argument("--clients", type=int, default=1, help="idle client processes (default 1)")
    p.add_argument("--seconds", type=float, default=60.0, help="measured window in seconds (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds left out after the clients start (default 10)")
    p.add_argument(
        "--adaptive",
        choices=("default", "on", "off"),
        default="default",
        help="adaptive polling (SYFT_FLWR_ADAPTIVE_POLL): default leaves the measured code's default",
    )
    a = p.parse_args()
    H.apply_quick(a, p, {"seconds": 20.0, "warmup": 5.0})
    if a.seconds <= 0 or a.warmup < 0 or a.clients < 1:
        p.error("--seconds must be positive, --warmup >= 0, --clients >= 1")
    return a


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    L, p = args.latency, args.poll
    clients = H.client_emails(args.clients)
    with H.Workdir(args.workdir, "idle") as wd:
        version = H.select_code(args.code, wd)
        from syft_flwr_gdrive.fake import FaultConfig

        print(
            f"== {len(clients)} idle client process(es), no server; L={L}s, p={p}s; warm-up {args.warmup:.0f}s, "
            f"measured {args.seconds:.0f}s",
            flush=True,
        )
        spec: dict[str, Any] = {
            "server_email": H.SERVER_EMAIL,
            "project": None,
            "app_name": "bench-echo",
            "client_app": "bench_apps:echo_client_app",
            "poll_interval": p,
            "msg_timeout": 60.0,
            "state_dir": str(wd / "state"),
            "max_seconds": args.warmup + args.seconds + 120,
            "num_partitions": len(clients),
        }
        if args.adaptive != "default":
            spec["settings_overrides"] = {"adaptive_poll": args.adaptive == "on"}
        group = H.ProcessGroup(wd)
        alive = True
        with H.fake_drive(FaultConfig(latency=L, seed=args.seed)) as drive:
            tap = H.DriveTap(drive)
            try:
                workers = [
                    group.spawn(f"idle{i:02d}", "clients", dict(spec, drive_url=drive.url, clients=[(i, e)]))
                    for i, e in enumerate(clients)
                ]
                time.sleep(args.warmup)
                t0 = time.time()
                time.sleep(args.seconds)
                t1 = time.time()
                alive = all(w.alive() for w in workers)
            finally:
                group.stop()
            events = tap.snapshot()
    window = H.window(events, t0, t1)
    users = H.by_user(window)
    scale = 60.0 / (t1 - t0)
    per_client = []
    for c in clients:
        evs = users.get(c, [])
        per_client.append(
            {
                "email": c,
                "calls_per_min": H.requests_of(evs) * scale,
                "by_route_per_min": {k: v * scale for k, v in H.calls_of(evs).items()},
                "units_per_min": H.units_of(evs) * scale,
            }
        )
    calls = H.stats([c["calls_per_min"] for c in per_client])
    units = H.stats([c["units_per_min"] for c in per_client])
    print(
        f"   idle client: {calls['mean']:.1f} calls/min (min {calls['min']:.1f}, max {calls['max']:.1f}), "
        f"{units['mean']:.0f} quota units/min; ceiling 60/(p+L) = {60 / (p + L):.1f} polls/min; "
        f"clients alive throughout: {alive}",
        flush=True,
    )
    for c in per_client:
        print(f"     {c['email']}: {c['calls_per_min']:.1f} calls/min ({H.fmt_counter(c['by_route_per_min'], 1)})")
    H.print_json_last(
        {
            "bench": "idle_poll",
            "version": version,
            "latency": L,
            "poll_interval": p,
            "clients": len(clients),
            "seconds": t1 - t0,
            "warmup": args.warmup,
            "adaptive": args.adaptive,
            "clients_alive": alive,
            "idle_calls_per_min": calls,
            "idle_units_per_min": units,
            "per_client": per_client,
            "ceiling_polls_per_min": 60 / (p + L),
        }
    )
    return 0 if alive else 1


if __name__ == "__main__":
    H.run_script(main)
