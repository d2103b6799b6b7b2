"""Train: every weight moves by (partition-id + 1); evaluate: the embedding's mean as the loss."""

from __future__ import annotations

from flwr.app import ArrayRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    step = float(context.node_config["partition-id"]) + 1.0
    arrays = [a + step for a in msg.content["arrays"].to_numpy_ndarrays()]
    content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 10})})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    embedding = msg.content["arrays"].to_numpy_ndarrays()[0]
    metrics = MetricRecord({"loss": float(embedding.mean()), "num-examples": 10})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
