"""Sends one train, evaluate and query message to every node; records what came back.

``context.state["received"]`` (a ConfigRecord) holds, per message type, the number of replies,
the error codes and the error reasons (joined with " | "), so the CLI report shows exactly
what the server was told.
"""

from __future__ import annotations

from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import RecordDict
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    nodes = sorted(grid.get_node_ids())
    timeout = float(context.run_config.get("round-timeout", 30.0))
    received: dict = {}
    for message_type in ("train", "evaluate", "query"):
        messages = [
            Message(RecordDict({"config": ConfigRecord({"round": 1})}), node, message_type, group_id="1")
            for node in nodes
        ]
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        errors = [reply for reply in replies if reply.has_error()]
        received[f"{message_type}-replies"] = len(replies)
        received[f"{message_type}-errors"] = len(errors)
        received[f"{message_type}-codes"] = " | ".join(str(int(e.error.code)) for e in errors)
        received[f"{message_type}-reasons"] = " | ".join(str(e.error.reason) for e in errors)
        received[f"{message_type}-content"] = " | ".join(repr(r.content) for r in replies if not r.has_error())
    context.state["received"] = ConfigRecord(received)
