"""``python -m syft_flwr_gdrive.fake`` / ``fake-gdrive``: run the fake Drive as a process.

Prints one JSON line ``{"url": ..., "port": ..., "pid": ...}`` on stdout once it accepts
connections (and writes the URL to ``--port-file``), so a parent process or a shell script
can wait for it without polling; with ``--human`` (what ``syft-flwr-gdrive fake-drive`` uses)
the first line is the URL alone, followed by how to use it. SIGINT and SIGTERM stop it quickly
and cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .drive_server import FakeDriveServer
from .faults import FaultConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fake-gdrive", description="A fake Google Drive v3 server for offline runs.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="port (default 0: pick a free one; give one, e.g. --port 8765, to know the URL in advance)",
    )
    p.add_argument("--data-dir", default=None, help="keep files here across restarts (default: a temporary directory)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per Drive request, in milliseconds")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of calls answered 429/403/500/503")
    p.add_argument("--error-kinds", default=None, help="comma list of injected errors (429,403,500,503)")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of requests whose connection is dropped")
    p.add_argument("--list-lag", type=float, default=0.0, help="seconds before new files appear in list/changes")
    p.add_argument(
        "--drive-profile",
        choices=["default", "strict"],
        default="default",
        help="strict: only what Drive documents (lag on every change, write limit, hidden owner emails, ...)",
    )
    p.add_argument(
        "--or-listing",
        choices=["all", "first", "none", "subset"],
        default=None,
        help="what an OR'ed 'in parents' listing answers, as field reports describe Drive (default: the "
        "profile's; 'first': only the first folder's files, 'none': nothing, 'subset': a per-account subset)",
    )
    p.add_argument("--quota-units-per-min", type=int, default=0, help="per-user quota units per minute (0: unlimited)")
    p.add_argument(
        "--upload-bytes-per-s",
        type=float,
        default=0.0,
        help="each account's uplink: upload bodies are read no faster (0: unlimited; else >= 1000)",
    )
    p.add_argument(
        "--download-bytes-per-s",
        type=float,
        default=0.0,
        help="each account's downlink: download bodies are sent no faster (0: unlimited; else >= 1000)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the fault random stream")
    p.add_argument("--port-file", default=None, help="write the server URL to this file when ready")
    p.add_argument(
        "--access-token-ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of the access tokens POST /token issues (default 3600, Google's hour)",
    )
    p.add_argument(
        "--access-token-accepted-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="accept an issued access token only this long (default: its whole lifetime); shorter makes "
        "clients meet Drive's 401 and refresh",
    )
    p.add_argument(
        "--upload-bytes-per-day",
        type=int,
        default=0,
        help="each account's daily upload cap in bytes, as Drive's 750 GB (0: none)",
    )
    p.add_argument("--strict-tokens", action="store_true", help="accept only tokens registered with --user")
    p.add_argument("--user", action="append", default=[], metavar="EMAIL[=TOKEN]", help="register a user (repeatable)")
    p.add_argument("--human", action="store_true", help="print the URL alone as the first line, then usage (not JSON)")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> FaultConfig:
    cfg = FaultConfig(
        latency=args.latency_ms / 1000.0,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        list_lag=args.list_lag,
        quota_units_per_min=args.quota_units_per_min,
        seed=args.seed,
        upload_bytes_per_s=args.upload_bytes_per_s,
        download_bytes_per_s=args.download_bytes_per_s,
        upload_bytes_per_day=args.upload_bytes_per_day,
    )
    if args.or_listing is not None:
        cfg.or_listing = args.or_listing
    if args.error_kinds:
        cfg.error_kinds = [k.strip() for k in args.error_kinds.split(",") if k.strip()]
    return cfg.validate()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        faults = config_from(args)
    except ValueError as e:
        print(f"fake-gdrive: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server = FakeDriveServer(
            args.host,
            args.port,
            args.data_dir,
            faults,
            strict_tokens=args.strict_tokens,
            profile=args.drive_profile,
            access_token_ttl=args.access_token_ttl,
            access_token_accepted_for=args.access_token_accepted_for,
        )
    except ValueError as e:
        print(f"fake-gdrive: {e}", file=sys.stderr)
        return 2
    for spec in args.user:
        email, _, token = spec.partition("=")
        server.add_user(email, token or None)
    server.start()
    try:
        if args.port_file:
            tmp = Path(args.port_file + ".tmp")
            tmp.write_text(server.url + "\n")
            os.replace(tmp, args.port_file)
        if args.human:
            print(server.url, flush=True)
            print(
                f"fake Google Drive listening (pid {os.getpid()}). In each participant's terminal:\n"
                f"  export SYFT_FLWR_DRIVE_URL={server.url}\n"
                "Files live in memory (or --data-dir) until Ctrl-C.",
                flush=True,
            )
        else:
            print(json.dumps({"url": server.url, "port": server.port, "pid": os.getpid()}), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
