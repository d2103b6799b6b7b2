#!/usr/bin/env python
"""Round latency with injected per-call Drive latency L and poll interval p.

A real Flower run (fixtures/message_app, FedAvg, train + evaluate per round,
or the compute-free bench echo app with ``--app echo``) with server and
clients as OS processes over the in-process fake Drive, every request delayed
by L (``FaultConfig(latency=L)``). The server worker times each
``send_and_receive`` (one exchange: N requests out, N replies in); a Flower
round is two exchanges.

The floor of one exchange is about 6L + p: server upload, client list, client
download, client upload, server list, server download (six calls in sequence,
L each), plus up to one poll interval of waiting. Reported: measured / (6L + p)
per exchange (target <= 1.3), the same per round against 2(6L + p), the share
of the client's own compute, and where the time goes (phases cut from the
fake's call log).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--latency", type=float, default=0.1, help="seconds added to every Drive request, L (default 0.1)")
    p.add_argument("--poll", type=float, default=1.0, help="poll interval p in seconds, all participants (default 1.0)")
    p.add_argument("--clients", type=int, default=2, help="number of clients (default 2)")
    p.add_argument("--rounds", type=int, default=10, help="Flower rounds (default 10; round 1 is reported apart)")
    p.add_argument(
        "--app",
        choices=("message", "echo"),
        default="message",
        help="message: the digits FedAvg fixture; echo: bench app with no compute (default message)",
    )
    p.add_argument(
        "--mode", choices=("processes", "threads"), default="processes", help="client placement (default processes)"
    )
    p.add_argument(
        "--trials",
        type=int,
        default=3,
        help="runs, each with the server started a random fraction of p after the clients (default 3)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up on one run (default 300)")
    p.add_argument(
        "--msg-timeout",
        type=float,
        default=None,
        help="SYFT_FLWR_MSG_TIMEOUT of the run (default max(60, 20(6L+p)); raise it under the strict profile "
        "at large N, where an exchange is bound by the write limit)",
    )
    p.add_argument(
        "--adaptive",
        choices=("default", "on", "off"),
        default="default",
        help="adaptive polling (SYFT_FLWR_ADAPTIVE_POLL): default leaves the measured code's default "
        "(code older than the setting has none)",
    )
    a = p.parse_args()
    H.apply_quick(a, p, {"rounds": 3, "trials": 1})
    if a.rounds < 2:
        p.error("--rounds must be >= 2")
    return a


def phases(ex: dict[str, Any], events: list[H.CallEvent], clients: list[str]) -> dict[str, float] | None:
    """Where one exchange's wall time went, from the fake's call log (approximate: event = answer time)."""
    t0, t1 = ex["t0"], ex["t1"]
    win = H.window(events, t0, t1 + 1e-6)
    server_up = [ev.t for ev in win if ev.user == H.SERVER_EMAIL and ev.route in ("upload.create", "files.create")]
    server_down = [ev.t for ev in win if ev.user == H.SERVER_EMAIL and ev.route == "files.download"]
    if not server_up or not server_down:
        return None
    send_end = max(server_up)
    per_client = []
    for c in clients:
        downs = [ev.t for ev in win if ev.user == c and ev.route == "files.download" and ev.t >= send_end - 1e-6]
        if not downs:
            continue
        got = min(downs)
        ups = [ev.t for ev in win if ev.user == c and ev.route in ("upload.create", "files.create") and ev.t >= got]
        if ups:
            per_client.append((min(ups), got))
    if not per_client:
        return None
    reply_at, got_at = max(per_client)  # the last client to answer is the critical path
    last_down = max(server_down)
    return {
        "server_send": send_end - t0,
        "client_pickup": got_at - send_end,
        "client_work": reply_at - got_at,
        "server_pickup": last_down - reply_at,
        "server_tail": t1 - last_down,
    }


def analyse(
    fed: H.FederationResult, events: list[H.CallEvent], clients: list[str], floor: float, trial: int
) -> list[dict[str, Any]]:
    app_calls: list[dict[str, Any]] = []
    for worker in fed.client_workers:
        app_calls.extend(worker.get("app_calls") or [])
    rows = []
    for ex in H.exchange_intervals(fed.exchanges):
        wall = ex["t1"] - ex["t0"]
        compute = [c["t1"] - c["t0"] for c in app_calls if ex["t0"] <= c["t0"] <= ex["t1"]]
        s_calls = H.requests_of([ev for ev in H.window(events, ex["t0"], ex["t1"] + 1e-6) if ev.user == H.SERVER_EMAIL])
        # writes over [start, next start): a write an exchange causes late (a delete) is still counted once
        users = H.by_user(H.window(events, ex["start"], ex["end"]))
        c_writes = [H.writes_of(users.get(c, [])) for c in clients]
        rows.append(
            {
                "trial": trial,
                "round": ex["round"],
                "type": ex["type"],
                "last": ex["last"],
                "wall": wall,
                "ratio": wall / floor,
                "client_compute_max": max(compute) if compute else 0.0,
                "ratio_minus_compute": (wall - (max(compute) if compute else 0.0)) / floor,
                "server_calls": s_calls,
                "replies": ex["replies"],
                "server_writes": H.writes_of(users.get(H.SERVER_EMAIL, [])),
                "client_writes_mean": sum(c_writes) / max(1, len(clients)),
                "client_writes_max": max(c_writes, default=0),
                "refused_writes": H.refused_writes_of([ev for u in users.values() for ev in u]),
                "phases": phases(ex, events, clients),
            }
        )
    return rows


def round_calls(
    fed: H.FederationResult, events: list[H.CallEvent], clients: list[str], trial: int
) -> list[dict[str, Any]]:
    """HTTP requests per participant in each steady Flower round: rounds 2 .. R-1 (set-up and the stop
    signal left out)."""
    out = []
    for r in H.round_intervals(fed.exchanges):
        if r["round"] < 2 or r["last"]:
            continue
        users = H.by_user(H.window(events, r["start"], r["end"]))
        per_client = [H.requests_of(users.get(c, [])) for c in clients]
        server = H.requests_of(users.get(H.SERVER_EMAIL, []))
        server_lists = H.polls_of(users.get(H.SERVER_EMAIL, []))  # listings and batch gets of promised files
        client_lists = sum(H.polls_of(users.get(c, [])) for c in clients)
        out.append(
            {
                "trial": trial,
                "round": r["round"],
                "wall": r["end"] - r["start"],
                "server": server,
                "clients": sum(per_client),
                "client_mean": sum(per_client) / max(1, len(clients)),
                "client_max": max(per_client, default=0),
                "total": server + sum(per_client),
                "server_lists": server_lists,
                "client_lists_mean": client_lists / max(1, len(clients)),
            }
        )
    return out


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    import random

    L, p, n = args.latency, args.poll, args.clients
    floor = 6 * L + p
    clients = H.client_emails(n)
    rng = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    extra_spec = {} if args.adaptive == "default" else {"settings_overrides": {"adaptive_poll": args.adaptive == "on"}}
    trials: list[dict[str, Any]] = []
    with H.Workdir(args.workdir, "latency") as wd:
        version = H.select_code(args.code, wd)
        from syft_flwr_gdrive.fake import FaultConfig

        if args.app == "message":
            app_kw: dict[str, Any] = {
                "project": H.message_app(),
                "run_config": {"num-server-rounds": args.rounds, "min-clients": n},
            }
        else:
            app_kw = {
                "server_app": "bench_apps:echo_server_app",
                "client_app": "bench_apps:echo_client_app",
                "app_name": "bench-echo",
                "run_config": {"num-server-rounds": args.rounds, "payload-bytes": 4096},
            }
        print(
            f"== {n} clients ({args.mode}), {args.trials} trial(s) of {args.rounds} rounds of the {args.app} app, "
            f"L={L}s per call, p={p}s; floor 6L+p = {floor:.2f}s per exchange",
            flush=True,
        )
        for trial in range(args.trials):
            delay = rng.uniform(0, p)  # a different phase between the server's and the clients' polls
            with H.fake_drive(FaultConfig(latency=L, seed=args.seed + trial)) as drive:
                tap = H.DriveTap(drive)
                fed = H.run_federation(
                    drive.url,
                    wd / f"trial{trial}",
                    n_clients=n,
                    mode=args.mode,
                    poll_interval=p,
                    msg_timeout=args.msg_timeout or max(60.0, 20 * floor),
                    timeout=args.timeout,
                    verbose=args.verbose,
                    server_delay=delay,
                    extra_spec=extra_spec,
                    **app_kw,
                )
                events = tap.snapshot()
            t_rows = analyse(fed, events, clients, floor, trial)
            rows.extend(t_rows)
            calls.extend(round_calls(fed, events, clients, trial))
            steady_t = [r["ratio"] for r in t_rows if r["round"] >= 2]
            trials.append(
                {
                    "trial": trial,
                    "server_delay_s": delay,
                    "completed": fed.completed,
                    "elapsed_s": round(fed.elapsed, 2),
                    "steady_ratio_mean": sum(steady_t) / max(1, len(steady_t)),
                    "server_log_tail": None if fed.completed else (fed.logs.get("server") or "")[-1500:],
                }
            )
            print(
                f"   trial {trial}: server started {delay:.2f}s after the clients; completed {fed.completed} in "
                f"{fed.elapsed:.1f}s; steady measured/(6L+p) mean {trials[-1]['steady_ratio_mean']:.2f}",
                flush=True,
            )
            if args.verbose or args.trials == 1:
                for r in t_rows:
                    ph = r["phases"] or {}
                    print(
                        f"     round {r['round']} {r['type']:<8} {r['wall']:.2f}s = {r['ratio']:.2f} x floor "
                        f"(client compute {r['client_compute_max'] * 1000:.0f} ms, server calls {r['server_calls']}); "
                        + " ".join(f"{k} {v:.2f}" for k, v in ph.items())
                    )
    completed = all(t["completed"] for t in trials)
    result: dict[str, Any] = {
        "bench": "round_latency",
        "version": version,
        "latency": L,
        "poll_interval": p,
        "clients": n,
        "rounds": args.rounds,
        "trials": trials,
        "app": args.app,
        "mode": args.mode
        if args.mode != "threads" or H.CLIENT_PROCS["count"] == 1
        else f"threads in {H.CLIENT_PROCS['count']} processes",
        "floor_exchange_s": floor,
        "completed": completed,
        "exchanges": rows,
        "adaptive": args.adaptive,
        "round_calls": calls,
    }
    steady = [r for r in rows if r["round"] >= 2]
    if steady:
        for kind in sorted({r["type"] for r in steady}):
            walls = H.stats([r["wall"] for r in steady if r["type"] == kind])
            result[f"steady_{kind}_s"] = walls
            print(
                f"   {kind:<8}: mean {walls['mean']:.2f}s, median {walls['median']:.2f}, min {walls['min']:.2f}, "
                f"max {walls['max']:.2f} (n={walls['n']}) = {walls['mean'] / floor:.2f} x floor"
            )
        st = H.stats([r["wall"] for r in steady])
        ratio = H.stats([r["ratio"] for r in steady])
        ratio_nc = H.stats([r["ratio_minus_compute"] for r in steady])
        slow = sum(1 for r in steady if r["wall"] > floor + 0.5 * p)
        mean_phases = {}
        with_ph = [r["phases"] for r in steady if r["phases"]]
        for k in ("server_send", "client_pickup", "client_work", "server_pickup", "server_tail"):
            mean_phases[k] = sum(ph[k] for ph in with_ph) / len(with_ph) if with_ph else None
        result.update(
            steady_exchange_s=st,
            steady_ratio=ratio,
            steady_ratio_minus_compute=ratio_nc,
            steady_phases_mean_s=mean_phases,
            meets_1_3=ratio["mean"] <= 1.3,
            exchanges_over_floor_plus_half_p=slow,
            steady_server_calls_mean=sum(r["server_calls"] for r in steady) / len(steady),
        )
        print(
            f"   steady state (rounds >= 2, all trials): exchange mean {st['mean']:.2f}s (median {st['median']:.2f}, "
            f"max {st['max']:.2f}); measured/(6L+p) mean {ratio['mean']:.2f}, max {ratio['max']:.2f} (target <= 1.3); "
            f"without client compute {ratio_nc['mean']:.2f}; {slow}/{len(steady)} exchanges waited an extra poll"
        )
        print(
            "   mean phases of train exchanges (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in mean_phases.items() if v is not None)
        )
    by_trial_round: dict[tuple[int, int], float] = {}
    for r in steady:
        key = (r["trial"], r["round"])
        by_trial_round[key] = by_trial_round.get(key, 0.0) + r["wall"]
    round_walls = list(by_trial_round.values())
    if round_walls:
        rs = H.stats(round_walls)
        result["steady_round_s"] = rs
        result["steady_round_ratio"] = rs["mean"] / (2 * floor)
        print(
            f"   Flower round (train + evaluate exchanges): mean {rs['mean']:.2f}s = "
            f"{rs['mean'] / (2 * floor):.2f} x 2(6L+p)"
        )
    if calls:
        per_round = {
            k: H.stats([c[k] for c in calls])
            for k in ("server", "clients", "client_mean", "client_max", "total", "server_lists", "client_lists_mean")
        }
        result["steady_round_calls"] = per_round
        print(
            f"   calls per steady round (rounds 2..R-1, n={len(calls)}): server {per_round['server']['mean']:.1f} "
            f"({per_round['server_lists']['mean']:.1f} polls), each client {per_round['client_mean']['mean']:.1f} "
            f"({per_round['client_lists_mean']['mean']:.1f} polls; max {per_round['client_max']['max']:.0f}), "
            f"federation {per_round['total']['mean']:.1f}"
        )
    steady_ex = [r for r in rows if r["round"] >= 2 and not r["last"]]  # the last one also sends the stop signal
    figures: dict[str, Any] = {
        "server_writes_per_exchange": H.stats([r["server_writes"] for r in steady_ex])["mean"],
        "client_writes_per_exchange": H.stats([r["client_writes_mean"] for r in steady_ex])["mean"],
        "client_writes_per_exchange_max": max((r["client_writes_max"] for r in steady_ex), default=None),
        "refused_writes_per_exchange": H.stats([r["refused_writes"] for r in steady_ex])["mean"],
        "round_s": (result.get("steady_round_s") or {}).get("mean"),
        "round_floor_s": 2 * floor,
        "round_s_over_floor": result.get("steady_round_ratio"),
    }
    result["figures"] = {str(n): figures}  # the named figures (issue 12), keyed by N like calls_per_round's
    if figures["server_writes_per_exchange"] is not None:
        print(
            f"   writes per exchange: server {figures['server_writes_per_exchange']:.1f}, each client "
            f"{figures['client_writes_per_exchange']:.2f} (max {figures['client_writes_per_exchange_max']}); "
            f"refused {figures['refused_writes_per_exchange']:.1f}"
        )
    H.print_json_last(result)
    return 0 if completed else 1


if __name__ == "__main__":
    H.run_script(main)
