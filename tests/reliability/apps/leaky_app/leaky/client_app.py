"""A ClientApp that fails on private data: the exception text holds a data value and a local path.

``context.node_config["data-path"]`` names a local file whose first line is the private value.
train raises a ValueError chained to a FileNotFoundError (both naming the path); evaluate raises a
RuntimeError with the value and the path; query returns normally (a control).
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _private(context: Context) -> tuple[Path, str]:
    path = Path(str(context.node_config["data-path"]))
    return path, path.read_text(encoding="utf-8").splitlines()[0]


@app.train()
def train(msg: Message, context: Context) -> Message:
    path, value = _private(context)
    try:
        (path.parent / "labels-for-this-patient.csv").open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValueError(f"cannot use record {value!r} read from {path}") from exc
    raise AssertionError("unreachable")


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    path, value = _private(context)
    raise RuntimeError(f"{path}: patient value {value} is out of range")


@app.query()
def query(msg: Message, context: Context) -> Message:
    return Message(RecordDict({"metrics": MetricRecord({"ok": 1})}), reply_to=msg)
