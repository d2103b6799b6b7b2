#!/usr/bin/env python
"""Summarise a large_payload timeline (bench/_timeline): per exchange, its phases and CPU seconds per process.

    SFG_TIMELINE_DIR=/tmp/tl PYTHONPATH=bench/_timeline .venv/bin/python bench/large_payload.py --repeat 2
    .venv/bin/python bench/timeline_report.py /tmp/tl

Per exchange (the server's send_and_receive): its wall time; the CPU seconds the server, the client
and the benchmark process (the fake Drive) used inside it; and each phase's wall time: the server's
blob upload (``srv_up``), the client's blob download (``cli_down``, inside its fetch), the ClientApp
(``app``), sealing the reply (``seal``: 0 since message format version 2), the reply's upload
(``cli_up``) and the server opening it while it downloads (``srv_down``); ``gaps`` is the rest (polls,
small files, decoding). For the raw DriveApi runs: upload, download, and CPU of its process and the fake.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

PHASES = (
    ("server", "DriveApi._upload_resumable", "srv_up"),
    ("clients", "DriveApi._download", "cli_down"),
    ("clients", "ClientLoop._execute", "app"),
    ("clients", "Sealer.seal", "seal"),
    ("clients", "DriveApi._upload_resumable", "cli_up"),
    ("server", "MessageReader._check_streamed", "srv_down"),
)


def load(directory: str) -> dict[str, list[list[dict[str, Any]]]]:
    procs: dict[str, list[list[dict[str, Any]]]] = {}
    for path in glob.glob(os.path.join(directory, "trace-*.jsonl")):
        with open(path) as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        argv = " ".join(next((r["argv"] for r in records if r["f"] == "#argv"), []))
        role = (
            "bench"
            if "large_payload" in argv
            else "raw"
            if "raw-io" in argv
            else "server"
            if " server " in argv
            else "clients"
            if " clients " in argv
            else "other"
        )
        procs.setdefault(role, []).append(records)
    return procs


def cpu(procs: dict[str, list[list[dict[str, Any]]]], role: str, t0: float, t1: float) -> float:
    total = 0.0
    for records in procs.get(role, []):
        samples = [r for r in records if r["f"] == "#cpu" and t0 <= r["t"] <= t1]
        if len(samples) >= 2:
            total += (samples[-1]["u"] + samples[-1]["s"]) - (samples[0]["u"] + samples[0]["s"])
    return total


def first(procs: dict[str, list[list[dict[str, Any]]]], role: str, name: str, t0: float, t1: float) -> Any:
    for records in procs.get(role, []):
        for r in records:
            if r["f"] == name and t0 <= r["t0"] <= t1:
                return r
    return None


def main() -> int:
    procs = load(sys.argv[1])
    print("exchange   wall | CPU s: server client fake  sum | phases (s)")
    for records in procs.get("server", []):
        exchanges = sorted((r for r in records if r["f"] == "TransportGrid.send_and_receive"), key=lambda r: r["t0"])
        for e in exchanges:
            t0, t1 = e["t0"], e["t1"]
            phases = {}
            for role, name, key in PHASES:
                r = first(procs, role, name, t0, t1)
                phases[key] = (r["t1"] - r["t0"]) if r else 0.0
            phases["gaps"] = (t1 - t0) - sum(phases.values())
            s, c, b = cpu(procs, "server", t0, t1), cpu(procs, "clients", t0, t1), cpu(procs, "bench", t0, t1)
            print(
                f"         {t1 - t0:6.2f} |        {s:5.2f} {c:5.2f} {b:5.2f} {s + c + b:5.2f} | "
                + " ".join(f"{k} {v:.2f}" for k, v in phases.items())
            )
    for records in procs.get("raw", []):
        ups = [r for r in records if r["f"] == "DriveApi._upload_resumable"]
        downs = [r for r in records if r["f"] == "DriveApi._download"]
        for up, down in zip(ups, downs):
            print(
                f"raw      {down['t1'] - up['t0']:6.2f} | raw process {cpu(procs, 'raw', up['t0'], down['t1']):.2f} "
                f"fake {cpu(procs, 'bench', up['t0'], down['t1']):.2f} | up {up['t1'] - up['t0']:.2f} "
                f"down {down['t1'] - down['t0']:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
