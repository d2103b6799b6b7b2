"""Survival-style queries: each round the server asks every node for its event times and prints a summary."""

from __future__ import annotations

import os
import time

import numpy as np
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MessageType
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp

server = ServerApp()
client = ClientApp()


@client.query()
def query(msg: Message, context: Context) -> Message:
    times = np.arange(5, dtype=np.float64) + 10 * int(context.node_config["partition-id"])
    print(f"sending {len(times)} event times")
    os.write(1, b"a line written straight to file descriptor 1\n")  # as native libraries do
    return Message(RecordDict({"times": ArrayRecord({"T": Array(times)})}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    behaviour = context.run_config["behaviour"]
    if behaviour == "fail":
        raise ValueError("min-num-clients is 5, but the federation has 2 nodes")
    while behaviour == "hang":
        time.sleep(0.2)
    for rnd in range(1, int(context.run_config["num-server-rounds"]) + 1):
        messages = [Message(RecordDict(), node, MessageType.QUERY) for node in grid.get_node_ids()]
        replies = [r for r in grid.send_and_receive(messages) if not r.has_error()]
        times = np.concatenate([r.content["times"]["T"].numpy() for r in replies])
        print(f"Survival summary, round {rnd}: {len(times)} events, median time {float(np.median(times)):.1f}")
