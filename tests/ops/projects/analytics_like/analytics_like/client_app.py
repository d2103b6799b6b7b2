"""The ClientApp: a histogram of this data owner's glucose values (its dataset, or a partition of the pooled one)."""

from pathlib import Path

import numpy as np
from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from syft_flwr.utils import get_syftbox_dataset_path
from syft_flwr.utils import run_syft_flwr

BINS = np.linspace(40, 250, 11)
POOLED = Path(__file__).resolve().parent.parent / "data" / "pooled.csv"

app = ClientApp()


def glucose(node_config) -> np.ndarray:
    if run_syft_flwr():
        table = np.loadtxt(get_syftbox_dataset_path() / "train.csv", delimiter=",", skiprows=1, ndmin=2)
        return table[:, 1]
    table = np.loadtxt(POOLED, delimiter=",", skiprows=1, ndmin=2)
    return table[int(node_config["partition-id"]) :: int(node_config["num-partitions"]), 1]


@app.query()
def query(msg: Message, context: Context) -> Message:
    counts, _ = np.histogram(glucose(context.node_config), bins=BINS)
    print(f"histogram of {int(counts.sum())} glucose values")
    return Message(RecordDict({"histogram": MetricRecord({"counts": [int(c) for c in counts]})}), reply_to=msg)
