"""The ServerApp: sums the data owners' histograms, one query per round, and prints the result."""

import numpy as np
from flwr.app import Context
from flwr.app import Message
from flwr.app import MessageType
from flwr.app import RecordDict
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    for server_round in range(int(context.run_config["num-server-rounds"])):
        nodes = list(grid.get_node_ids())
        messages = [Message(RecordDict(), node, MessageType.QUERY) for node in nodes]
        replies = [r for r in grid.send_and_receive(messages) if not r.has_error()]
        total = np.sum([r.content["histogram"]["counts"] for r in replies], axis=0)
        print(f"round {server_round + 1}: glucose histogram of {len(replies)} data owners: {total.tolist()}")
