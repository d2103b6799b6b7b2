"""The ServerApp: FedAvg that keeps the global model of every round, under OUTPUT_DIR."""

import os
from pathlib import Path

from flwr.common import Context
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerApp
from flwr.server import ServerAppComponents
from flwr.server import ServerConfig

from diabetes_like.task import initial_weights


def weighted_accuracy(metrics):
    total = sum(num_examples for num_examples, _ in metrics)
    accuracy = sum(num_examples * m["accuracy"] for num_examples, m in metrics) / total
    print(f"aggregated accuracy of {len(metrics)} clients: {accuracy:.4f}")
    return {"accuracy": accuracy}


def server_fn(context: Context) -> ServerAppComponents:
    from syft_flwr.strategy import FedAvgWithModelSaving

    output_dir = os.getenv("OUTPUT_DIR")
    if output_dir is None:
        output_dir = Path.home() / ".syftbox/rds/"
    save_path = Path(output_dir) / "weights"
    print(f"saving the global model of every round to {save_path}")
    strategy = FedAvgWithModelSaving(
        save_path=save_path,
        min_available_clients=context.run_config["min-available-clients"],
        min_fit_clients=context.run_config["min-fit-clients"],
        min_evaluate_clients=context.run_config["min-evaluate-clients"],
        initial_parameters=ndarrays_to_parameters(initial_weights()),
        evaluate_metrics_aggregation_fn=weighted_accuracy,
    )
    config = ServerConfig(num_rounds=context.run_config["num-server-rounds"])
    return ServerAppComponents(config=config, strategy=strategy)


app = ServerApp(server_fn=server_fn)
