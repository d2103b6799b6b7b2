"""Tiny Flower apps for the benchmarks (loaded by bench/_worker.py as ``bench_apps:<name>``).

* ``echo_server_app`` / ``echo_client_app``: ``num-server-rounds`` rounds of a
  train and an evaluate exchange with every node, carrying ``payload-bytes``
  bytes; the client answers at once (no compute), so only the transport is timed.
* ``payload_server_app`` / ``payload_client_app``: one exchange with one node
  carrying one ``ArrayRecord`` of ``payload-bytes`` bytes (uint8, seeded); the
  client echoes it back with every byte plus one (mod 256) and the server
  checks the SHA-256 of what came back. ``context.state["payload"]`` holds the
  timing and the check.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

_CHUNK = 16 * 1024 * 1024

# -- echo ------------------------------------------------------------------------------------

echo_server_app = ServerApp()
echo_client_app = ClientApp()


@echo_server_app.main()
def _echo_main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config.get("num-server-rounds", 3))
    size = int(context.run_config.get("payload-bytes", 4096))
    timeout = float(context.run_config.get("round-timeout", 600.0))
    nodes = sorted(grid.get_node_ids())
    record = ArrayRecord([np.zeros(size, dtype=np.uint8)])
    answered = 0
    for server_round in range(1, rounds + 1):
        for kind in ("train", "evaluate"):
            msgs = [grid.create_message(RecordDict({"arrays": record}),
                                        kind, node, str(server_round)) for node in nodes]
            replies = list(grid.send_and_receive(msgs, timeout=timeout))
            answered += sum(1 for r in replies if not r.has_error())
    context.state["echo"] = MetricRecord({"rounds": rounds, "answered": answered, "expected": 2 * rounds * len(nodes)})


def _echo_reply(msg: Message, context: Context) -> Message:
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)


echo_client_app.train()(_echo_reply)
echo_client_app.evaluate()(_echo_reply)


# -- large payload ---------------------------------------------------------------------------------

payload_server_app = ServerApp()
payload_client_app = ClientApp()


def _raw(array_data: bytes, nbytes: int) -> memoryview:
    """The raw array bytes inside Flower's .npy-format ``Array.data`` (no copy)."""
    return memoryview(array_data)[len(array_data) - nbytes:]


@payload_server_app.main()
def _payload_main(grid: Grid, context: Context) -> None:
    size = int(context.run_config["payload-bytes"])
    seed = int(context.run_config.get("seed", 0))
    timeout = float(context.run_config.get("round-timeout", 3600.0))
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, size=size, dtype=np.uint8)]
    expected = hashlib.sha256()
    for start in range(0, size, _CHUNK):
        expected.update((arrays[0][start:start + _CHUNK] + np.uint8(1)).tobytes())
    record = ArrayRecord(arrays, keep_input=False)  # the record now owns the only copy
    node = sorted(grid.get_node_ids())[0]
    msg = grid.create_message(RecordDict({"arrays": record}), "train", node, "1")
    del record
    t0 = time.perf_counter()
    replies = list(grid.send_and_receive([msg], timeout=timeout))
    seconds = time.perf_counter() - t0
    del msg
    ok = 0
    if replies and not replies[0].has_error():
        arr = next(iter(replies[0].content["arrays"].values()))
        ok = int(hashlib.sha256(_raw(arr.data, size)).hexdigest() == expected.hexdigest())
    context.state["payload"] = MetricRecord({"bytes": size, "exchange_s": seconds, "ok": ok})


@payload_client_app.train()
def _payload_echo(msg: Message, context: Context) -> Message:
    array = next(iter(msg.content["arrays"].values()))
    n = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
    changed = [np.frombuffer(_raw(array.data, n), dtype=np.uint8) + np.uint8(1)]
    del array
    reply = RecordDict({"arrays": ArrayRecord(changed, keep_input=False)})
    return Message(reply, reply_to=msg)
