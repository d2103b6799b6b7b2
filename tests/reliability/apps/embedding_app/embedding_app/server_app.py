"""FedAvg.start over [embedding, dense]; the final embedding's statistics go to context.state."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    rows = int(float(context.run_config["embedding-mib"]) * 1024 * 1024) // (4 * 16)
    initial = ArrayRecord([np.zeros((rows, 16), dtype=np.float32), np.zeros(16, dtype=np.float32)])
    strategy = FedAvg(
        fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=int(context.run_config["min-clients"])
    )
    result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, timeout=120)
    embedding, dense = result.arrays.to_numpy_ndarrays()
    context.state["final"] = ConfigRecord(
        {
            "rows": int(embedding.shape[0]),
            "embedding_min": float(embedding.min()),
            "embedding_max": float(embedding.max()),
            "dense_mean": float(dense.mean()),
        }
    )
