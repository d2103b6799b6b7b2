#!/usr/bin/env python
"""Bytes the server uploads per round vs N: is the global model uploaded once or N times?

For N = 2, 5, 10 clients, a run over the in-process fake Drive; every request
body the fake receives is counted per user (bench/_harness.DriveTap), and the
server's upload bytes are summed per steady-state round (rounds 2 .. R-1).

Apps:
* ``echo`` (default): FedAvg's traffic pattern without compute (bench_apps):
  one new model of ``--model-kib`` per round, sent in evaluate of round r and
  train of round r+1; the default 1024 KiB is above the transport's blob
  threshold (256 KiB), so shared blobs are exercised;
* ``message``: the digits FedAvg fixture, whose model (~2.6 KB of float32)
  travels inline in each message.

Reported per round: server upload bytes, / model bytes (about 1 if the model
goes up once per round, about 2N if each message carries it), server upload
requests, and bytes each client downloads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

UPLOAD_ROUTES = ("upload.create", "upload.chunk", "files.create", "upload.update")


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--clients", default="2,5,10", help="comma-separated client counts (default 2,5,10)")
    p.add_argument("--rounds", type=int, default=4, help="rounds per run, >= 3 (default 4; steady = rounds 2..R-1)")
    p.add_argument("--apps", default="echo,message", help="apps to run: echo, message or both (default echo,message)")
    p.add_argument("--model-kib", type=int, default=1024, help="echo app model size in KiB (default 1024)")
    p.add_argument("--poll", type=float, default=0.3, help="poll interval in seconds (default 0.3)")
    p.add_argument(
        "--mode",
        choices=("processes", "threads"),
        default="threads",
        help="clients as threads of one process (default) or one process each; byte counts do not depend on it",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run before giving up (default 300)")
    a = p.parse_args()
    H.apply_quick(a, p, {"clients": "2,5", "rounds": 3})
    a.client_counts = [int(x) for x in a.clients.split(",") if x.strip()]
    a.app_list = [x.strip() for x in a.apps.split(",") if x.strip()]
    if a.rounds < 3:
        p.error("--rounds must be at least 3")
    return a


def model_bytes_message_app() -> int:
    """Bytes of the digits model's arrays (what FedAvg sends)."""
    sys.path.insert(0, str(Path(H.CODE["root"]) / "fixtures"))
    from fl_common.task import initial_weights  # type: ignore[import-not-found]

    return int(sum(w.nbytes for w in initial_weights()))


def run_one(app: str, n: int, args: Any, workdir: Path) -> dict[str, Any]:
    from syft_flwr_gdrive.fake import FaultConfig

    clients = H.client_emails(n)
    if app == "echo":
        model = args.model_kib * 1024
        kw: dict[str, Any] = {
            "server_app": "bench_apps:echo_server_app",
            "client_app": "bench_apps:echo_client_app",
            "app_name": "bench-echo",
            "run_config": {"num-server-rounds": args.rounds, "payload-bytes": model, "seed": args.seed},
        }
    else:
        model = model_bytes_message_app()
        kw = {"project": H.message_app(), "run_config": {"num-server-rounds": args.rounds, "min-clients": n}}
    with H.fake_drive(FaultConfig(seed=args.seed)) as drive:
        tap = H.DriveTap(drive)
        fed = H.run_federation(
            drive.url,
            workdir / f"{app}-n{n}",
            n_clients=n,
            mode=args.mode,
            poll_interval=args.poll,
            msg_timeout=120.0,
            timeout=args.timeout,
            verbose=args.verbose,
            **kw,
        )
        events = tap.snapshot()
    rounds = [r for r in H.round_intervals(fed.exchanges) if 2 <= r["round"] <= args.rounds - 1 and not r["last"]]
    up_bytes, up_reqs, down = [], [], []
    for r in rounds:
        win = H.window(events, r["start"], r["end"])
        s_up = [ev for ev in win if ev.user == H.SERVER_EMAIL and ev.route in UPLOAD_ROUTES]
        up_bytes.append(sum(ev.bytes_in for ev in s_up))
        up_reqs.append(sum(1 for ev in s_up if ev.route in ("upload.create", "files.create")))
        down.append(sum(ev.bytes_out for ev in win if ev.user in clients and ev.route == "files.download") / n)
    k = max(1, len(rounds))
    out = {
        "app": app,
        "clients": n,
        "mode": args.mode,
        "completed": fed.completed,
        "elapsed_s": round(fed.elapsed, 2),
        "model_bytes": model,
        "steady_rounds": len(rounds),
        "server_upload_bytes_per_round": sum(up_bytes) / k,
        "server_upload_x_model": sum(up_bytes) / k / model,
        "server_upload_files_per_round": sum(up_reqs) / k,
        "client_download_bytes_per_round": sum(down) / k,
        "client_download_x_model": sum(down) / k / model,
        "fake_total_bytes_in_server": sum(ev.bytes_in for ev in events if ev.user == H.SERVER_EMAIL),
    }
    return out


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    result: dict[str, Any] = {"bench": "broadcast", "rounds": args.rounds, "runs": []}
    with H.Workdir(args.workdir, "broadcast") as wd:
        result["version"] = H.select_code(args.code, wd)
        for app in args.app_list:
            for n in args.client_counts:
                print(f"== {app} app, N={n}, {args.rounds} rounds ...", flush=True)
                r = run_one(app, n, args, wd)
                result["runs"].append(r)
                print(
                    f"   completed {r['completed']} in {r['elapsed_s']}s; model {r['model_bytes'] / 1024:.1f} KiB; "
                    f"server uploads {r['server_upload_bytes_per_round'] / 1024:.1f} KiB/round = "
                    f"{r['server_upload_x_model']:.2f} x model in {r['server_upload_files_per_round']:.1f} files; "
                    f"each client downloads {r['client_download_x_model']:.2f} x model/round",
                    flush=True,
                )
    print("   summary: server upload per round / model size")
    for app in args.app_list:
        rows = [r for r in result["runs"] if r["app"] == app]
        print(f"     {app:<8} " + "  ".join(f"N={r['clients']}: {r['server_upload_x_model']:.2f}" for r in rows))
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            slope = (b["server_upload_x_model"] - a["server_upload_x_model"]) / max(1, b["clients"] - a["clients"])
            result[f"{app}_upload_x_model_per_extra_client"] = slope
            result[f"{app}_model_uploaded"] = "once per round" if abs(slope) < 0.2 else "per client"
            print(
                f"              -> {slope:.2f} x model more per extra client: the model is uploaded "
                f"{result[f'{app}_model_uploaded']}"
            )
    H.print_json_last(result)
    return 0 if all(r["completed"] for r in result["runs"]) else 1


if __name__ == "__main__":
    H.run_script(main)
