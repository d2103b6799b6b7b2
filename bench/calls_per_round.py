#!/usr/bin/env python
"""Drive calls per federated round, per participant and per method, for N clients.

A real Flower run (fixtures/message_app: FedAvg, train + evaluate per round)
over the in-process fake Drive. Every call the fake answers is logged with its
time and user (bench/_harness.DriveTap); the server worker timestamps each
``send_and_receive``, and the calls are cut at those boundaries:

* a Flower round = [first exchange of round r, first exchange of round r+1);
* an exchange = one send_and_receive (N requests out, N replies in), up to the
  next exchange's start;
* steady state = rounds 2 .. R-1 (the first round and set-up calls such as
  about.get, folder creation and sharing, and the last round with the stop
  signal, are excluded).

"calls" are HTTP requests (a batch of deletes is one request); API calls with
batch parts counted one by one are given too (that is what Drive's quota counts).

Then an idle-poll experiment: the calls one poll costs with 0 vs P pending
messages (addressed to someone else, written by me, or addressed to me and
already handled), with 2 vs 50 peers.

And the cost of a straightforward per-file polling design with the same polls
and messages: one files.list per watched peer folder per poll, one get per
received file, one create per sent file, one delete per deleted file.

Targets: steady-state server calls per round
<= 3N + 2; idle poll O(1); ours <= 1/5 of the per-file polling design.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402


def parse_args() -> Any:
    p = H.base_parser(__doc__)
    p.add_argument("--clients", default="2,10,50", help="comma-separated client counts (default 2,10,50)")
    p.add_argument(
        "--rounds", type=int, default=5, help="Flower rounds per run, >= 3 (default 5; steady = rounds 2..R-1)"
    )
    p.add_argument(
        "--poll", type=float, default=0.5, help="poll interval in seconds for every participant (default 0.5)"
    )
    p.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds added to every Drive request, L (default 0); round_s_over_floor divides by 2(6L + p)",
    )
    p.add_argument(
        "--mode",
        choices=("auto", "processes", "threads"),
        default="auto",
        help="clients as one OS process each, or as threads of one process; auto: processes up to 10 clients",
    )
    p.add_argument(
        "--app",
        choices=("message", "legacy", "echo"),
        default="message",
        help="message / legacy: the digits fixtures; echo: bench_apps echo (FedAvg's traffic, no compute) "
        "(default message)",
    )
    p.add_argument(
        "--compute-s",
        type=float,
        default=0.0,
        help="echo app: seconds of emulated local training per train request (longer rounds, more polls)",
    )
    p.add_argument("--model-kib", type=int, default=4, help="echo app: model size in KiB (default 4)")
    p.add_argument(
        "--pending", type=int, default=200, help="pending messages in the idle-poll experiment (default 200)"
    )
    p.add_argument("--idle-peers", default="2,50", help="peer counts in the idle-poll experiment (default 2,50)")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per federation run before giving up (default 300)"
    )
    p.add_argument("--skip-idle", action="store_true", help="skip the idle-poll experiment")
    p.add_argument(
        "--events-out",
        type=Path,
        default=None,
        help="write every Drive call the fake answered (time, user, route, status, batch part) and the exchanges "
        "as JSON to this path, one file per N (suffix -nN), for a timeline of where a round's time goes",
    )
    a = p.parse_args()
    H.apply_quick(a, p, {"clients": "2,5", "rounds": 3, "pending": 50, "idle_peers": "2,10"})
    a.client_counts = [int(x) for x in a.clients.split(",") if x.strip()]
    a.idle_peer_counts = [int(x) for x in a.idle_peers.split(",") if x.strip()]
    if a.rounds < 3:
        p.error("--rounds must be at least 3 (steady state = rounds 2..R-1)")
    return a


# -- analysis -----------------------------------------------------------------------------


CREATE_ROUTES = ("files.create", "upload.create")


def creates(events: list[H.CallEvent]) -> int:
    c = H.calls_of(events)
    return sum(c[r] for r in CREATE_ROUTES)


def naive_cost(events: list[H.CallEvent], folders: int, received: float) -> float:
    """Same polls and messages, per-file polling: one list per watched folder per poll, one get per
    received file, one create per sent file, one delete per deleted file (no batches)."""
    c = H.calls_of(events)
    return H.polls_of(events) * folders + received + creates(events) + c["files.delete"]


def interval_figures(
    events: list[H.CallEvent], server: str, clients: list[str], t0: float, t1: float
) -> dict[str, Any]:
    win = H.window(events, t0, t1)
    users = H.by_user(win)
    s_ev = users.get(server, [])
    per_client = [H.requests_of(users.get(c, [])) for c in clients]
    per_client_api = [len(users.get(c, [])) for c in clients]
    per_client_writes = [H.writes_of(users.get(c, [])) for c in clients]
    n = len(clients)
    ours_all = H.requests_of(win)
    # files each side receives: every client file goes to the server; the server's files (requests, and
    # blobs) are spread over the clients. Small bodies now ride in the listing, so downloads undercount them.
    server_received = sum(creates(users.get(c, [])) for c in clients)
    client_received = creates(s_ev) / n
    server_naive = naive_cost(s_ev, n, server_received)
    naive_all = server_naive + sum(naive_cost(users.get(c, []), 1, client_received) for c in clients)
    return {
        "server_requests": H.requests_of(s_ev),
        "server_api_calls": len(s_ev),
        "server_by_method": dict(Counter(ev.route + (" (batch part)" if ev.part else "") for ev in s_ev)),
        "server_polls": H.polls_of(s_ev),
        "server_poll_occasions": H.poll_occasions(s_ev),
        "server_poll_units": H.poll_units_of(s_ev),  # what the server's polls cost in quota units
        "server_units": H.units_of(s_ev),  # Drive quota units (list 100, get 5, download 200, modify 50)
        "client_units": [H.units_of(users.get(c, [])) for c in clients],
        "client_requests": per_client,
        "client_api_calls": per_client_api,
        "client_by_method": dict(
            Counter(ev.route + (" (batch part)" if ev.part else "") for c in clients for ev in users.get(c, []))
        ),
        "server_writes": H.writes_of(s_ev),
        "server_refused_writes": H.refused_writes_of(s_ev),
        "client_writes": per_client_writes,
        "client_refused_writes": sum(H.refused_writes_of(users.get(c, [])) for c in clients),
        "server_naive": server_naive,
        "all_requests": ours_all,
        "all_naive": naive_all,
        "seconds": t1 - t0,
    }


def summarize(intervals: list[dict[str, Any]], n: int) -> dict[str, Any]:
    if not intervals:
        return {"count": 0}
    k = len(intervals)

    def mean(key: str) -> float:
        return sum(iv[key] for iv in intervals) / k

    by_method: Counter = Counter()
    client_by_method: Counter = Counter()
    for iv in intervals:
        by_method.update(iv["server_by_method"])
        client_by_method.update(iv["client_by_method"])
    client_means = [sum(iv["client_requests"][i] for iv in intervals) / k for i in range(n)]
    return {
        "count": k,
        "seconds_mean": mean("seconds"),
        "server_requests_mean": mean("server_requests"),
        "server_api_calls_mean": mean("server_api_calls"),
        "server_polls_mean": mean("server_polls"),
        "server_by_method_mean": {m: v / k for m, v in sorted(by_method.items())},
        "client_requests_mean": sum(client_means) / n,
        "client_requests_max": max(max(iv["client_requests"]) for iv in intervals),
        "client_by_method_mean_per_client": {m: v / k / n for m, v in sorted(client_by_method.items())},
        "server_writes_mean": mean("server_writes"),
        "server_units_mean": mean("server_units"),
        "server_units_per_poll": sum(iv["server_poll_units"] for iv in intervals)
        / max(1, sum(iv["server_poll_occasions"] for iv in intervals)),
        "server_polls_per_second": sum(iv["server_poll_occasions"] for iv in intervals)
        / max(1e-9, sum(iv["seconds"] for iv in intervals)),
        "client_units_mean": sum(sum(iv["client_units"]) for iv in intervals) / k / n,
        "client_api_calls_mean": sum(sum(iv["client_api_calls"]) for iv in intervals) / k / n,
        "server_refused_writes_mean": mean("server_refused_writes"),
        "client_writes_mean": sum(sum(iv["client_writes"]) for iv in intervals) / k / n,
        "client_writes_max": max(max(iv["client_writes"]) for iv in intervals),
        "client_refused_writes_mean": mean("client_refused_writes") / n,
        "server_naive_mean": mean("server_naive"),
        "server_ratio_to_naive": mean("server_requests") / max(1e-9, mean("server_naive")),
        "all_requests_mean": mean("all_requests"),
        "all_naive_mean": mean("all_naive"),
        "all_ratio_to_naive": mean("all_requests") / max(1e-9, mean("all_naive")),
    }


def run_one(n: int, args: Any, workdir: Path) -> dict[str, Any]:
    from syft_flwr_gdrive.fake import FaultConfig

    mode = args.mode if args.mode != "auto" else ("processes" if n <= 10 else "threads")
    clients = H.client_emails(n)
    if args.app == "echo":
        app_kw: dict[str, Any] = {
            "server_app": "bench_apps:echo_server_app",
            "client_app": "bench_apps:echo_client_app",
            "app_name": "bench-echo",
            "run_config": {
                "num-server-rounds": args.rounds,
                "payload-bytes": args.model_kib * 1024,
                "seed": args.seed,
                "client-compute-s": args.compute_s,
            },
        }
    else:
        app_kw = {
            "project": H.message_app() if args.app == "message" else H.legacy_app(),
            "run_config": {"num-server-rounds": args.rounds, "min-clients": n},
        }
    with H.fake_drive(FaultConfig(seed=args.seed, latency=args.latency)) as drive:
        tap = H.DriveTap(drive)
        fed = H.run_federation(
            drive.url,
            workdir / f"n{n}",
            n_clients=n,
            mode=mode,
            poll_interval=args.poll,
            msg_timeout=max(60.0, args.timeout / 2),
            timeout=args.timeout,
            verbose=args.verbose,
            **app_kw,
        )
        events = tap.snapshot()
    if args.events_out is not None:
        dump_events(args.events_out.with_name(f"{args.events_out.stem}-n{n}{args.events_out.suffix}"), events, fed)
    out: dict[str, Any] = {
        "clients": n,
        "mode": mode
        if mode != "threads" or H.CLIENT_PROCS["count"] == 1
        else f"threads in {H.CLIENT_PROCS['count']} processes",
        "completed": fed.completed,
        "elapsed_s": round(fed.elapsed, 2),
        "server_exit": fed.server_exit,
        "client_exits": fed.client_exits,
    }
    exchanges = H.exchange_intervals(fed.exchanges)
    rounds = H.round_intervals(fed.exchanges)
    out["exchanges"] = len(exchanges)
    # Flower's legacy server_fn path calls send_and_receive once per client (one message each), from threads.
    out["messages_per_exchange"] = sum(e["n"] for e in exchanges) / max(1, len(exchanges))
    out["rounds_seen"] = len(rounds)
    steady_rounds = [r for r in rounds if 2 <= r["round"] <= args.rounds - 1 and not r["last"]]
    steady_ex = [e for e in exchanges if 2 <= e["round"] <= args.rounds - 1 and not e["last"]]
    round_ivs = [interval_figures(events, H.SERVER_EMAIL, clients, r["start"], r["end"]) for r in steady_rounds]
    ex_ivs = [interval_figures(events, H.SERVER_EMAIL, clients, e["start"], e["end"]) for e in steady_ex]
    out["per_round"] = summarize(round_ivs, n)
    out["per_exchange"] = summarize(ex_ivs, n)
    out["per_exchange_by_type"] = {
        t: summarize([iv for iv, e in zip(ex_ivs, steady_ex) if e["type"] == t], n)["server_requests_mean"]
        for t in sorted({e["type"] for e in steady_ex})
    }
    pe = out["per_exchange"]
    if pe.get("count"):
        # Projection: with k polls per exchange (longer local training, longer poll waits) the server pays
        # fixed + k here and naive_fixed + k*N in the per-file design; the ratio falls toward 1/N.
        fixed = pe["server_requests_mean"] - pe["server_polls_mean"]
        naive_fixed = pe["server_naive_mean"] - pe["server_polls_mean"] * n
        out["server_fixed_per_exchange"] = fixed
        out["server_ratio_limit_many_polls"] = 1.0 / n
        out["server_polls_per_exchange_for_one_fifth"] = (5 * fixed - naive_fixed) / (n - 5) if n > 5 else None
    users = H.by_user(events)
    s_all = users.get(H.SERVER_EMAIL, [])
    first = min((e["t0"] for e in exchanges), default=fed.t_end)
    out["server_setup_requests"] = H.requests_of([ev for ev in s_all if ev.t < first])
    out["server_setup_by_method"] = dict(H.calls_of([ev for ev in s_all if ev.t < first]))
    out.update(setup_figures(fed, events, clients))
    out["server_total_requests"] = H.requests_of(s_all)
    out["server_total_own_counter"] = sum((fed.server.get("drive_calls") or {}).values())
    out["client_total_requests_mean"] = sum(H.requests_of(users.get(c, [])) for c in clients) / n
    out["target_server_per_round"] = 3 * n + 2
    pr = out["per_round"]
    floor = H.round_floor(args.latency, args.poll)
    out["figures"] = {  # the named figures (issue 12), comparable from one change to the next
        "server_writes_per_exchange": pe.get("server_writes_mean"),
        "client_writes_per_exchange": pe.get("client_writes_mean"),
        "client_writes_per_exchange_max": pe.get("client_writes_max"),
        "refused_writes_per_exchange": (pe["server_refused_writes_mean"] + pe["client_refused_writes_mean"] * n)
        if pe.get("count")
        else None,
        "round_s": pr.get("seconds_mean"),
        "round_floor_s": floor,
        "round_s_over_floor": pr["seconds_mean"] / floor if pr.get("count") else None,
        "setup_s": out.get("setup_s"),
        "server_units_per_poll": pe.get("server_units_per_poll"),
    }
    if pr.get("count"):
        out["server_per_round_meets_3n_plus_2"] = pr["server_requests_mean"] <= 3 * n + 2
        out["server_per_exchange_meets_3n_plus_2"] = out["per_exchange"]["server_requests_mean"] <= 3 * n + 2
    if not fed.completed:
        out["server_log_tail"] = (fed.logs.get("server") or "")[-1500:]
    return out


def dump_events(path: Path, events: list[H.CallEvent], fed: H.FederationResult) -> None:
    """The raw material of a timeline: every call, the exchanges, and each ClientApp call's start and end."""
    import json

    app_calls = [c for worker in fed.client_workers for c in worker.get("app_calls") or []]
    path.write_text(
        json.dumps(
            {
                "events": [[ev.t, ev.user, ev.route, ev.status, ev.part] for ev in events],
                "exchanges": fed.exchanges,
                "app_calls": app_calls,
                "server_start": fed.server.get("t_start"),
            }
        ),
        encoding="utf-8",
    )


def setup_figures(fed: H.FederationResult, events: list[H.CallEvent], clients: list[str]) -> dict[str, Any]:
    """Set-up: from the server worker's start until every datasite holds its first request (its ClientApp's
    first call began), in seconds (``setup_s``), and the Drive calls the server and the datasites made meanwhile."""
    start = fed.server.get("t_start")
    firsts: dict[str, float] = {}
    for call in (c for worker in fed.client_workers for c in worker.get("app_calls") or []):
        firsts[call["email"]] = min(call["t0"], firsts.get(call["email"], call["t0"]))
    if start is None or len(firsts) < len(clients):
        return {"setup_s": None}
    end = max(firsts.values())
    win = H.window(events, start, end)
    users = H.by_user(win)
    s_ev = users.get(H.SERVER_EMAIL, [])
    c_ev = [ev for c in clients for ev in users.get(c, [])]
    return {
        "setup_s": round(end - start, 2),
        "setup_server_requests": H.requests_of(s_ev),
        "setup_server_api_calls": len(s_ev),
        "setup_server_units": H.units_of(s_ev),
        "setup_server_writes": H.writes_of(s_ev),
        "setup_server_refused_writes": H.refused_writes_of(s_ev),
        "setup_server_by_method": dict(Counter(ev.route + (" (batch part)" if ev.part else "") for ev in s_ev)),
        "setup_client_requests_mean": H.requests_of(c_ev) / len(clients),
        "setup_client_writes_mean": H.writes_of(c_ev) / len(clients),
        "setup_client_refused_writes": H.refused_writes_of(c_ev),
    }


# -- idle poll ----------------------------------------------------------------------------------


def idle_poll(peers: int, pending: int, seed: int, workdir: Path) -> dict[str, Any]:
    """Calls of one poll by the server with `peers` peers: 0 pending, P pending elsewhere, P handled."""
    from syft_flwr_gdrive.base.config import Settings
    from syft_flwr_gdrive.fake import FaultConfig
    from syft_flwr_gdrive.flower.app_mailbox import app_key
    from syft_flwr_gdrive.mailbox.ledger import Ledger
    from syft_flwr_gdrive.mailbox.mailbox import Mailbox
    from syft_flwr_gdrive.transport.registry import create_transport

    app = app_key("bench-idle")
    emails = H.client_emails(peers)
    other = "someone.else@example.com"
    state = workdir / f"idle-{peers}"

    def mailbox(drive: Any, email: str, peer_list: list[str]) -> Mailbox:
        settings = Settings.from_env(
            {},
            email=email,
            poll_interval=1.0,
            msg_timeout=60,
            state_dir=state,
            transport_options={"drive_url": drive.url},
        )
        return Mailbox(create_transport(settings), app, peer_list, Ledger(None))

    def one_poll(tap: H.DriveTap, fn: Any, user: str, repeat: int = 5) -> dict[str, Any]:
        counts, times = [], []
        for _ in range(repeat):
            mark = tap.mark()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            counts.append(H.requests_of([ev for ev in tap.since(mark) if ev.user == user]))
        return {"calls": max(counts), "calls_min": min(counts), "seconds_mean": sum(times) / len(times)}

    out: dict[str, Any] = {"peers": peers, "pending": pending}
    with H.fake_drive(FaultConfig(seed=seed)) as drive:
        tap = H.DriveTap(drive)
        server = mailbox(drive, H.SERVER_EMAIL, emails)
        clients = [mailbox(drive, e, [H.SERVER_EMAIL, other]) for e in emails]
        for c in clients:
            c.prepare()
        server.prepare()
        server.announce_run(1)
        out["empty"] = one_poll(tap, lambda: server.transport.poll(server.app), H.SERVER_EMAIL)
        # P messages from a peer to a third party: invisible to me
        for _ in range(pending):
            clients[0].send(kind="request", recipient=other, run_id=1, payload=b"x" * 64)
        out["pending_peer_to_other"] = one_poll(tap, lambda: server.transport.poll(server.app), H.SERVER_EMAIL)
        # P messages I wrote to a peer, not yet answered (they come back in my listing, for clean-up)
        for i in range(pending):
            server.send(kind="request", recipient=emails[i % peers], run_id=1, payload=b"x" * 64)
        out["pending_mine_outbound"] = one_poll(tap, lambda: server.transport.poll(server.app), H.SERVER_EMAIL)
        # P replies addressed to me, already handled (Mailbox.poll: listed, vetted, not downloaded again)
        for i in range(pending):
            clients[i % peers].send(kind="reply", recipient=H.SERVER_EMAIL, run_id=1, payload=b"x" * 64)
        first = tap.mark()
        got = server.poll()
        out["first_poll_downloads"] = H.calls_of([ev for ev in tap.since(first) if ev.user == H.SERVER_EMAIL])[
            "files.download"
        ]
        for d in got.deliveries:
            server.mark_handled(d.envelope.message_id)
        out["pending_to_me_handled"] = one_poll(tap, lambda: server.poll(), H.SERVER_EMAIL)
        out["naive_idle_poll_calls"] = peers  # one files.list per peer folder
    return out


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    H.install_sigterm_as_interrupt()
    result: dict[str, Any] = {
        "bench": "calls_per_round",
        "poll_interval": args.poll,
        "latency": args.latency,
        "rounds": args.rounds,
        "app": args.app,
        "compute_s": args.compute_s,
        "runs": [],
        "idle_poll": [],
    }
    with H.Workdir(args.workdir, "calls") as wd:
        result["version"] = H.select_code(args.code, wd)
        for n in args.client_counts:
            print(f"== N={n}: {args.rounds} rounds, poll {args.poll}s ...", flush=True)
            run = run_one(n, args, wd)
            result["runs"].append(run)
            pr, pe = run["per_round"], run["per_exchange"]
            print(
                f"   mode {run['mode']}, completed {run['completed']}, {run['elapsed_s']}s, "
                f"{run['exchanges']} exchanges of {run['messages_per_exchange']:.1f} messages; steady rounds "
                f"{pr.get('count', 0)}"
            )
            if pr.get("count"):
                print(
                    f"   server per round:    {pr['server_requests_mean']:.1f} calls (target 3N+2 = {3 * n + 2}); "
                    f"{pr['server_api_calls_mean']:.1f} API calls with batch parts; {pr['server_polls_mean']:.1f} polls"
                )
                print(f"     by method: {H.fmt_counter(pr['server_by_method_mean'], 1)}")
                print(
                    f"   server per exchange: {pe['server_requests_mean']:.1f} calls "
                    f"({', '.join(f'{t} {v:.1f}' for t, v in run['per_exchange_by_type'].items())})"
                )
                print(
                    f"   client per round:    mean {pr['client_requests_mean']:.1f}, max "
                    f"{pr['client_requests_max']} calls; "
                    f"per exchange mean {pe['client_requests_mean']:.1f}"
                )
                print(
                    f"   per exchange: server {pe['server_api_calls_mean']:.1f} API calls, "
                    f"{pe['server_units_mean']:.0f} quota units; each client {pe['client_api_calls_mean']:.1f} API "
                    f"calls, {pe['client_units_mean']:.0f} quota units"
                )
                print(f"     by method (per client): {H.fmt_counter(pr['client_by_method_mean_per_client'], 2)}")
                print(
                    f"   per-file polling design: server {pr['server_naive_mean']:.1f}/round -> ours/naive "
                    f"{pr['server_ratio_to_naive']:.2f}; whole federation {pr['all_requests_mean']:.1f} vs "
                    f"{pr['all_naive_mean']:.1f} -> {pr['all_ratio_to_naive']:.2f} (target <= 0.20)"
                )
            fg = run["figures"]
            if fg["server_writes_per_exchange"] is not None:
                print(
                    f"   writes per exchange: server {fg['server_writes_per_exchange']:.1f}, each client "
                    f"{fg['client_writes_per_exchange']:.2f} (max {fg['client_writes_per_exchange_max']}); refused "
                    f"{fg['refused_writes_per_exchange']:.1f}; round {fg['round_s']:.2f}s = "
                    f"{fg['round_s_over_floor']:.2f} x 2(6L+p) = {fg['round_floor_s']:.2f}s"
                )
            if run.get("server_fixed_per_exchange") is not None:
                k = run["server_polls_per_exchange_for_one_fifth"]
                print(
                    f"   projection: server ratio -> 1/N = {1 / n:.2f} as polls per exchange grow; reaches 1/5 at "
                    + (f"{k:.1f} polls per exchange" if k is not None else "no poll count (N <= 5)")
                )
            print(
                f"   set-up calls by the server before round 1: {run['server_setup_requests']} "
                f"({H.fmt_counter(run['server_setup_by_method'], 0)})",
                flush=True,
            )
        if not args.skip_idle:
            for peers in args.idle_peer_counts:
                print(f"== idle poll, {peers} peers, {args.pending} pending ...", flush=True)
                ip = idle_poll(peers, args.pending, args.seed, wd)
                result["idle_poll"].append(ip)
                print(
                    "   calls per poll: "
                    + ", ".join(
                        f"{k} {ip[k]['calls']} ({ip[k]['seconds_mean'] * 1000:.0f} ms)"
                        for k in ("empty", "pending_peer_to_other", "pending_mine_outbound", "pending_to_me_handled")
                    )
                )
                print(f"   per-file polling design: {ip['naive_idle_poll_calls']} lists per idle poll", flush=True)
    idle_calls = [
        ip[k]["calls"]
        for ip in result["idle_poll"]
        for k in ("empty", "pending_peer_to_other", "pending_mine_outbound", "pending_to_me_handled")
    ]
    result["idle_poll_o1"] = bool(idle_calls) and max(idle_calls) == 1
    result["figures"] = {str(r["clients"]): r["figures"] for r in result["runs"]}
    H.print_json_last(result)
    return 0 if all(r["completed"] for r in result["runs"]) else 1


if __name__ == "__main__":
    H.run_script(main)
