"""Tiny Flower apps for the benchmarks (loaded by bench/_worker.py as ``bench_apps:<name>``).

* ``echo_server_app`` / ``echo_client_app``: ``num-server-rounds`` rounds of a
  train and an evaluate exchange with every node, carrying a ``payload-bytes``
  model (a new one each round, as FedAvg's); the client answers with metrics
  only, at once or, for train, after ``client-compute-s`` seconds of emulated
  local training.
* ``payload_server_app`` / ``payload_client_app``: one exchange with one node
  carrying one ``ArrayRecord`` of ``payload-bytes`` bytes (uint8, seeded); the
  client echoes it back with every byte plus one (mod 256) and the server
  checks the SHA-256 of what came back; ``exchanges`` times, each with fresh
  content. ``context.state["payload"]`` holds the timings and the checks.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from collections.abc import Iterator

import numpy as np
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp

_CHUNK = 2 * 1024 * 1024  # the apps' own scratch: small, so peak RSS shows the transport, not the app
_NUMPY_STYPE = Array(np.zeros(1, dtype=np.uint8)).stype

# -- echo ------------------------------------------------------------------------------------

echo_server_app = ServerApp()
echo_client_app = ClientApp()


@echo_server_app.main()
def _echo_main(grid: Grid, context: Context) -> None:
    """FedAvg's traffic pattern without the compute: round r trains model r-1 and evaluates model r.

    So each round has one new model (``payload-bytes`` of seeded random uint8),
    sent to every node twice (evaluate of round r, train of round r+1).
    """
    rounds = int(context.run_config.get("num-server-rounds", 3))
    size = int(context.run_config.get("payload-bytes", 4096))
    seed = int(context.run_config.get("seed", 0))
    timeout = float(context.run_config.get("round-timeout", 600.0))
    compute = float(context.run_config.get("client-compute-s", 0.0))  # emulated local training time
    nodes = sorted(grid.get_node_ids())

    def model(version: int) -> ArrayRecord:
        return ArrayRecord([np.random.default_rng(seed + version).integers(0, 256, size=size, dtype=np.uint8)])

    current = model(0)
    answered = 0
    for server_round in range(1, rounds + 1):
        for kind in ("train", "evaluate"):
            if kind == "evaluate":
                current = model(server_round)  # the "aggregated" model of this round
            config = ConfigRecord({"compute-s": compute if kind == "train" else 0.0})
            msgs = [
                grid.create_message(RecordDict({"arrays": current, "config": config}), kind, node, str(server_round))
                for node in nodes
            ]
            replies = list(grid.send_and_receive(msgs, timeout=timeout))
            answered += sum(1 for r in replies if not r.has_error())
    context.state["echo"] = MetricRecord({"rounds": rounds, "answered": answered, "expected": 2 * rounds * len(nodes)})


def _echo_reply(msg: Message, context: Context) -> Message:
    config = msg.content.config_records.get("config")
    if config is not None and float(config.get("compute-s", 0.0)) > 0:
        time.sleep(float(config["compute-s"]))
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)


echo_client_app.train()(_echo_reply)
echo_client_app.evaluate()(_echo_reply)


# -- large payload ---------------------------------------------------------------------------------
#
# Both sides hold at most one copy of the payload (plus a 2 MiB chunk): the array's
# .npy bytes are written chunk by chunk to a temporary file and read back as one
# ``bytes`` object (one allocation), the server hands its only reference to the
# request to the grid (a generator), and the client drops the request's array before
# it builds the reply. So peak RSS beyond one payload is what Flower and the
# transport add, not this app.

payload_server_app = ServerApp()
payload_client_app = ClientApp()


def _npy_header(nbytes: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (nbytes,)})
    return buf.getvalue()


def _uint8_array(chunks: Iterator[bytes], nbytes: int) -> Array:
    """A Flower Array (.npy bytes) of ``nbytes`` uint8 from chunks, built with one full-size allocation."""
    with tempfile.TemporaryFile() as fh:
        fh.write(_npy_header(nbytes))
        for chunk in chunks:
            fh.write(chunk)
        fh.seek(0)
        data = fh.read()
    return Array(dtype="uint8", shape=(nbytes,), stype=_NUMPY_STYPE, data=data)


def _raw(array_data: bytes, nbytes: int) -> memoryview:
    """The raw array bytes inside Flower's .npy-format ``Array.data`` (no copy)."""
    return memoryview(array_data)[len(array_data) - nbytes :]


def _handed_over(outbox: list[Message]) -> Iterator[Message]:
    """Yield the messages, dropping each from ``outbox``: the caller keeps no reference."""
    while outbox:
        yield outbox.pop(0)


@payload_server_app.main()
def _payload_main(grid: Grid, context: Context) -> None:
    """``exchanges`` times: a fresh payload (like a new global model each round) out and back."""
    size = int(context.run_config["payload-bytes"])
    seed = int(context.run_config.get("seed", 0))
    exchanges = int(context.run_config.get("exchanges", 1))
    timeout = float(context.run_config.get("round-timeout", 3600.0))
    node = sorted(grid.get_node_ids())[0]
    seconds: list[float] = []
    oks: list[int] = []
    for k in range(exchanges):
        rng = np.random.default_rng(seed + k)
        expected = hashlib.sha256()

        def chunks(rng=rng, expected=expected) -> Iterator[bytes]:  # this iteration's generator and digest
            for start in range(0, size, _CHUNK):
                chunk = rng.integers(0, 256, size=min(_CHUNK, size - start), dtype=np.uint8)
                expected.update((chunk + np.uint8(1)).tobytes())
                yield chunk.tobytes()

        outbox = [
            grid.create_message(
                RecordDict({"arrays": ArrayRecord({"payload": _uint8_array(chunks(), size)})}),
                "train",
                node,
                str(k + 1),
            )
        ]
        t0 = time.perf_counter()
        # Hand the grid the only reference (a generator that pops it): once the request is sent nothing
        # holds it, so the reply arrives while the app holds one payload, not two.
        replies = list(grid.send_and_receive(_handed_over(outbox), timeout=timeout))
        seconds.append(time.perf_counter() - t0)
        ok = 0
        if replies and not replies[0].has_error():
            arr = next(iter(replies[0].content["arrays"].values()))
            ok = int(hashlib.sha256(_raw(arr.data, size)).hexdigest() == expected.hexdigest())
            del arr
        del replies
        oks.append(ok)
    context.state["payload"] = MetricRecord({"bytes": size, "exchange_s": seconds, "ok": oks})


@payload_client_app.train()
def _payload_echo(msg: Message, context: Context) -> Message:
    record = msg.content["arrays"]
    key = next(iter(record.keys()))
    array = record.pop(key)  # the message no longer holds the request's array
    n = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
    raw = _raw(array.data, n)

    def chunks() -> Iterator[bytes]:
        for start in range(0, n, _CHUNK):
            yield (np.frombuffer(raw[start : start + _CHUNK], dtype=np.uint8) + np.uint8(1)).tobytes()

    with tempfile.TemporaryFile() as fh:  # write the reply out, drop the request, read the reply in
        fh.write(_npy_header(n))
        for chunk in chunks():
            fh.write(chunk)
        raw.release()
        del array
        fh.seek(0)
        data = fh.read()
    reply = RecordDict({"arrays": ArrayRecord({key: Array(dtype="uint8", shape=(n,), stype=_NUMPY_STYPE, data=data)})})
    return Message(reply, reply_to=msg)
