"""A tiny in-process flwr Grid that hands each message straight to a ClientApp.

No network, no Drive, no SuperLink: ``push_messages`` serialises the instruction
with Flower's own protobuf serde, runs the ClientApp on the copy with that node's
Context, serialises the reply back and keeps it for ``pull_messages``. It exists to
prove the sample ServerApps and ClientApps run unchanged against the ``Grid``
interface, and it records how flwr drives a Grid (which methods, from which
threads, with which timeouts) so tests can pin that behaviour down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from uuid import uuid4

from flwr.app import Context
from flwr.app import Error
from flwr.app import Message
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto
from flwr.common.serde import message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module
from flwr.server.run_serverapp import run as run_serverapp
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.flower.round_metrics import recording


def roundtrip(message: Message) -> Message:
    """Serialise and parse a Message the way a byte transport would."""
    proto = ProtoMessage()
    proto.ParseFromString(message_to_proto(message).SerializeToString())
    return message_from_proto(proto)


@dataclass
class GridCall:
    """One call into the Grid, as recorded by :class:`DirectGrid`."""

    method: str
    thread: str
    num_messages: int = 0
    timeout: float | None = None
    message_types: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    ttls: tuple[float, ...] = ()


@dataclass
class DirectGrid(Grid):
    """Delivers every pushed message synchronously to ``client_app``.

    ``node_configs`` maps node id -> that node's ``node_config``; each node keeps
    one Context (with its own ``state``) for the whole run.
    """

    client_app: ClientApp
    node_configs: Mapping[int, Mapping[str, Any]]
    run_id: int = 1
    client_run_config: Mapping[str, Any] = field(default_factory=dict)
    calls: list[GridCall] = field(default_factory=list)
    # Flower's own per-round metrics of the run (``round_metrics.RoundMetrics.snapshot``), set by run_federation.
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._run = Run.create_empty(self.run_id)
        self._lock = threading.Lock()
        self._replies: dict[str, Message] = {}
        self.contexts = {
            node_id: Context(
                run_id=self.run_id,
                node_id=node_id,
                node_config=dict(cfg),
                state=RecordDict(),
                run_config=dict(self.client_run_config),
            )
            for node_id, cfg in self.node_configs.items()
        }

    def _record(self, method: str, messages: list[Message] = (), timeout: float | None = None) -> None:
        call = GridCall(
            method=method,
            thread=threading.current_thread().name,
            num_messages=len(messages),
            timeout=timeout,
            message_types=tuple(m.metadata.message_type for m in messages),
            group_ids=tuple(m.metadata.group_id for m in messages),
            ttls=tuple(m.metadata.ttl for m in messages),
        )
        with self._lock:
            self.calls.append(call)

    # -- Grid interface ------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        self._record("get_node_ids")
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        self._record("push_messages", messages)
        ids = []
        for msg in messages:
            if msg.metadata.dst_node_id not in self.contexts:
                raise ValueError(f"unknown node {msg.metadata.dst_node_id}")
            msg_id = uuid4().hex
            msg.metadata.__dict__["_message_id"] = msg_id
            delivered = roundtrip(msg)
            try:
                reply = self.client_app(delivered, self.contexts[msg.metadata.dst_node_id])
            except Exception as exc:  # report like a SuperNode would: an error reply
                reply = Message(Error(code=0, reason=f"{type(exc).__name__}: {exc}"), reply_to=delivered)
            reply.metadata.__dict__["_message_id"] = uuid4().hex
            with self._lock:
                self._replies[msg_id] = roundtrip(reply)
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        with self._lock:
            return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        self._record("send_and_receive", messages, timeout)
        return self.pull_messages(self.push_messages(messages))


@contextmanager
def task_identity(run_id: int) -> Iterator[None]:
    """Set flwr's process-global TaskIdentity (needed to build instruction Messages)."""
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)  # noqa: SLF001
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    try:
        yield
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved  # noqa: SLF001


def run_federation(
    server_app: ServerApp,
    client_app: ClientApp,
    num_clients: int = 3,
    run_config: Mapping[str, Any] | None = None,
    run_id: int = 7,
    *,
    node_configs: Mapping[int, Mapping[str, Any]] | None = None,
    context: Context | None = None,
) -> tuple[Context, DirectGrid]:
    """Run ``server_app`` over ``num_clients`` in-process nodes; return its Context (and the grid, with the run's
    per-round metrics as Flower recorded them).

    Node ``i`` (id ``100 + i``) gets ``{"partition-id": i, "num-partitions": n}``
    unless ``node_configs`` is given. A fresh server Context is made from
    ``run_config`` unless ``context`` is given. Runs through
    ``flwr.server.run_serverapp.run``, as a real launcher would.
    """
    if node_configs is None:
        node_configs = {100 + i: {"partition-id": i, "num-partitions": num_clients} for i in range(num_clients)}
    grid = DirectGrid(client_app=client_app, node_configs=node_configs, run_id=run_id)
    if context is None:
        context = Context(
            run_id=run_id,
            node_id=SUPERLINK_NODE_ID,
            node_config={},
            state=RecordDict(),
            run_config=dict(run_config or {}),
        )
    with task_identity(run_id), recording() as recorder:
        context = run_serverapp(grid=grid, context=context, server_app_dir="", loaded_server_app=server_app)
    grid.metrics = recorder.snapshot()
    return context, grid
