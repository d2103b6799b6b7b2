#!/usr/bin/env python
"""A 10-client run under a per-user Drive quota: does it finish, and what reaches Flower?

1. Calibration (skipped with ``--budget``): the same run without a quota; the
   fake's call log gives each user's quota units (list 100, get 5, download
   200, modify 50 - Drive's costs, which the fake charges) in its busiest
   60-second window.
2. The run again with ``FaultConfig(quota_units_per_min=B)``, B = ``--fraction``
   (default 0.5) x the heaviest user's busiest minute, so the unthrottled run
   would exceed it by 1/fraction.
3. (unless ``--skip-paced``) the throttled run once more with the package's own
   client-side pacing on (the Drive transport's option ``quota_units_per_min=B`` in every
   participant's settings, i.e. SYFT_FLWR_QUOTA_UNITS_PER_MIN).

Reported: whether the run finished (all rounds, all replies), its time against
the unthrottled one, the quota errors the fake answered (per user), the
retries the participants' retry policy made, and what reached Flower: Drive
errors that escaped the retry policy into a participant's log (WARNING and
up), replies missing from a round, failed rounds, the ServerApp error, and the
exit codes.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--clients", type=int, default=10, help="number of clients (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="Flower rounds (default 3)")
    p.add_argument("--poll", type=float, default=1.0, help="poll interval in seconds (default 1.0)")
    p.add_argument("--budget", type=int, default=0, help="quota units per minute per user (default: calibrated)")
    p.add_argument(
        "--fraction",
        type=float,
        default=0.5,
        help="calibrated budget = this x the heaviest user's busiest minute (default 0.5)",
    )
    p.add_argument(
        "--status",
        type=int,
        choices=(403, 429),
        default=403,
        help="answer to an over-quota call: 403 userRateLimitExceeded or 429 (default 403)",
    )
    p.add_argument(
        "--msg-timeout",
        type=float,
        default=120.0,
        help="SYFT_FLWR_MSG_TIMEOUT of the run (default 120, the package default)",
    )
    p.add_argument(
        "--mode",
        choices=("processes", "threads"),
        default="processes",
        help="client placement (default processes; the package's quota pacer is per process, so keep processes)",
    )
    p.add_argument(
        "--skip-paced",
        action="store_true",
        help="skip the third run, with the package's client-side pacing (SYFT_FLWR_QUOTA_UNITS_PER_MIN) set "
        "to the budget",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run before giving up (default 600)")
    a = p.parse_args()
    H.apply_quick(a, p, {"clients": 5, "rounds": 2, "fraction": 0.75})
    return a


def run(
    args: Any, wd: Path, name: str, budget: int, pace: int = 0
) -> tuple[H.FederationResult, list[H.CallEvent], dict[str, Any]]:
    from syft_flwr_gdrive.fake import FaultConfig

    faults = FaultConfig(seed=args.seed, quota_units_per_min=budget, quota_status=args.status)
    with H.fake_drive(faults) as drive:
        tap = H.DriveTap(drive)
        fed = H.run_federation(
            drive.url,
            wd / name,
            n_clients=args.clients,
            mode=args.mode,
            poll_interval=args.poll,
            msg_timeout=args.msg_timeout,
            timeout=args.timeout,
            project=H.message_app(),
            run_config={"num-server-rounds": args.rounds, "min-clients": args.clients},
            verbose=args.verbose,
            extra_spec={"transport_options": {"quota_units_per_min": pace}} if pace else None,
        )
        events = tap.snapshot()
        fake_stats = drive.stats()
    return fed, events, fake_stats


def _logger_of(key: str) -> str:
    return key.split(" ", 2)[1].rstrip(":") if key.count(" ") >= 2 else ""


def surfaced(fed: H.FederationResult) -> dict[str, Any]:
    """Log records at WARNING and up from the package and Flower (Drive errors past the retry policy,
    missing replies, stop signals not acknowledged, run errors); googleapiclient's own warning on each
    refused attempt is counted apart (the retry policy handles those)."""
    reached = {"server": Counter(), "clients": Counter()}
    library: Counter = Counter()
    info: Counter = Counter()
    for role, reps in (("server", [fed.server]), ("clients", fed.client_workers)):
        for rep in reps:
            for key, n in (rep.get("log_counts") or {}).items():
                if key.startswith("INFO"):
                    info[key] += n
                elif _logger_of(key).startswith(("syft_flwr_gdrive", "flwr", "bench")):
                    reached[role][key] += n
                else:
                    library[key] += n
    retries_logged = sum(n for k, n in info.items() if "syft_flwr_gdrive.transport.drive" in k and "retry" in k)
    return {
        "server": dict(reached["server"]),
        "clients": dict(reached["clients"]),
        "server_total": sum(reached["server"].values()),
        "clients_total": sum(reached["clients"].values()),
        "library_warnings": dict(library),
        "retry_log_lines": retries_logged,
        "info_recovered": {
            k: n for k, n in info.items() if not ("syft_flwr_gdrive.transport.drive" in k and "retry" in k)
        },
        "samples": (fed.server.get("log_samples") or [])[:10]
        + [x for w in fed.client_workers for x in (w.get("log_samples") or []) if "googleapiclient" not in x][:10],
    }


def summarize(fed: H.FederationResult, events: list[H.CallEvent], args: Any) -> dict[str, Any]:
    users = H.by_user(events)
    quota_by_user = {u: sum(1 for ev in evs if H.is_quota_error(ev)) for u, evs in sorted(users.items())}
    evaluated = [r["evaluate"] for r in (fed.server.get("metrics") or {}).get("rounds") or [] if r.get("evaluate")]
    history = {
        "round": list(range(1, len(evaluated) + 1)),
        "num_clients": [e.get("num_clients") for e in evaluated],
        "accuracy": [e.get("accuracy") for e in evaluated],
    }
    num_clients = history["num_clients"]
    exchanges = fed.exchanges
    missing = sum(e["n"] - e["replies"] for e in exchanges)
    reply_errors = sum(e.get("errors", 0) for e in exchanges)
    rounds_done = len(history.get("round") or [])
    failed_rounds = sum(1 for c in num_clients if c is None or int(c) < args.clients) + max(
        0, args.rounds - rounds_done
    )
    retries = {"server": sum((fed.server.get("drive_retries") or {}).values())}
    retries["clients"] = sum(sum((c.get("drive_retries") or {}).values()) for c in fed.clients)
    return {
        "completed": fed.completed,
        "finished_in_time": fed.finished,
        "elapsed_s": round(fed.elapsed, 2),
        "server_exit": fed.server_exit,
        "client_exits": fed.client_exits,
        "clients_stopped_by": dict(Counter(c.get("stopped_by", c.get("exception", "?")) for c in fed.clients)),
        "rounds_done": rounds_done,
        "failed_rounds": failed_rounds,
        "missing_replies": missing,
        "error_replies": reply_errors,
        "quota_errors_total": sum(quota_by_user.values()),
        "quota_errors_by_user": {u: n for u, n in quota_by_user.items() if n},
        "units_peak_minute_by_user": {u: H.max_units_per_minute(evs) for u, evs in sorted(users.items())},
        "retries": retries,
        "requests_total": H.requests_of(events),
        "surfaced": surfaced(fed),
        "accuracy": (history.get("accuracy") or [None])[-1],
    }


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    result: dict[str, Any] = {
        "bench": "quota",
        "clients": args.clients,
        "rounds": args.rounds,
        "poll_interval": args.poll,
        "quota_status": args.status,
        "msg_timeout": args.msg_timeout,
    }
    with H.Workdir(args.workdir, "quota") as wd:
        result["version"] = H.select_code(args.code, wd)
        budget = args.budget
        if not budget:
            print(f"== calibration: {args.clients} clients, {args.rounds} rounds, no quota ...", flush=True)
            fed, events, _ = run(args, wd, "calibration", 0)
            cal = summarize(fed, events, args)
            result["calibration"] = cal
            peaks = cal["units_peak_minute_by_user"]
            heaviest = max(peaks, key=peaks.get)
            budget = max(1000, int(args.fraction * peaks[heaviest]))
            client_peaks = [v for u, v in peaks.items() if u != H.SERVER_EMAIL]
            print(
                f"   completed {cal['completed']} in {cal['elapsed_s']}s; busiest minute: server "
                f"{peaks.get(H.SERVER_EMAIL, 0)} units, clients up to {max(client_peaks or [0])} units"
            )
            print(f"   budget = {args.fraction} x {peaks[heaviest]} ({heaviest}) = {budget} units/min/user", flush=True)
        result["budget_units_per_min"] = budget
        print(f"== throttled: quota {budget} units/min/user, over-quota answer {args.status} ...", flush=True)
        fed, events, fake_stats = run(args, wd, "throttled", budget)
        th = summarize(fed, events, args)
        th["fake_injected"] = fake_stats.get("faults")
        result["throttled"] = th
        if not args.skip_paced:
            print(
                "== throttled and paced: the same quota, every participant with "
                f"SYFT_FLWR_QUOTA_UNITS_PER_MIN={budget} ...",
                flush=True,
            )
            try:
                fed_p, events_p, stats_p = run(args, wd, "paced", budget, pace=budget)
                paced = summarize(fed_p, events_p, args)
                paced["fake_injected"] = stats_p.get("faults")
            except Exception as exc:  # an older revision without the setting
                paced = {"error": f"{type(exc).__name__}: {exc}"}
            result["paced"] = paced
    runs = [("throttled", th)] + (
        [("paced", result["paced"])] if "paced" in result and "error" not in result["paced"] else []
    )
    for name, r in runs:
        s = r["surfaced"]
        print(
            f"   [{name}] completed {r['completed']} (rounds {r['rounds_done']}/{args.rounds}, failed rounds "
            f"{r['failed_rounds']}, "
            f"missing replies {r['missing_replies']}) in {r['elapsed_s']}s"
            + (f" vs {result['calibration']['elapsed_s']}s unthrottled" if "calibration" in result else "")
        )
        print(
            f"   [{name}] quota errors answered by the fake: {r['quota_errors_total']} "
            f"({', '.join(f'{u.split(chr(64))[0]} {n}' for u, n in r['quota_errors_by_user'].items()) or 'none'})"
        )
        print(
            f"   [{name}] retries by the participants' retry policy: server {r['retries']['server']}, clients "
            f"{r['retries']['clients']}"
        )
        print(
            f"   [{name}] reached the package / Flower (WARNING+ log records): server {s['server_total']}, clients "
            f"{s['clients_total']}; exit codes server {r['server_exit']}, clients "
            f"{sorted(set(r['client_exits']), key=str)}; "
            f"googleapiclient warnings (one per refused attempt) {sum(s['library_warnings'].values())}"
        )
        for key, n in list(s["info_recovered"].items())[:4]:
            print(f"     recovered at the next poll x{n}: {key[:160]}")
        for key, n in list(s["server"].items())[:6]:
            print(f"     server x{n}: {key[:160]}")
        for key, n in list(s["clients"].items())[:6]:
            print(f"     clients x{n}: {key[:160]}")
    s = th["surfaced"]
    result["run_finished"] = th["completed"] and th["failed_rounds"] == 0
    result["errors_reached_flower"] = (
        th["failed_rounds"] + th["missing_replies"] + th["error_replies"] + s["server_total"] + s["clients_total"]
    )
    H.print_json_last(result)
    return 0


if __name__ == "__main__":
    H.run_script(main)
