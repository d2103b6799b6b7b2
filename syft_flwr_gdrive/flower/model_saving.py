"""Keep the global model of every round on disk: a drop-in for syft-flwr's ``FedAvgWithModelSaving``.

Flower's legacy ``FedAvg`` with one addition: before each round's centralized evaluation (round 0 is the
initial model) the global parameters are written to ``save_path/parameters_round_<n>.npz``, one array per
layer (``layer_0``, ``layer_1``, ...: ``numpy.load`` reads them back). syft-flwr wrote safetensors files
with the same names and keys; ``.npz`` needs nothing beyond numpy. A Message-API app can instead use
Flower's own checkpointing: the ``Result.arrays`` that ``Strategy.start`` returns, or its ``evaluate_fn``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import Parameters
from flwr.common import Scalar
from flwr.common import parameters_to_ndarrays
from flwr.server.strategy import FedAvg

logger = logging.getLogger(__name__)


def save_model(save_path: Path, server_round: int, arrays: list[np.ndarray]) -> Path:
    """Write one round's global model; returns the file."""
    save_path.mkdir(parents=True, exist_ok=True)
    target = save_path / f"parameters_round_{server_round}.npz"
    layers: dict[str, Any] = {f"layer_{i}": array for i, array in enumerate(arrays)}
    np.savez(target, **layers)
    return target


class FedAvgWithModelSaving(FedAvg):
    """``FedAvg`` that saves the global model of every round under ``save_path`` (same arguments as syft-flwr's)."""

    def __init__(self, save_path: str | Path, *args: Any, **kwargs: Any) -> None:
        self.save_path = Path(save_path)
        self.save_path.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        saved = save_model(self.save_path, server_round, parameters_to_ndarrays(parameters))
        logger.info("round %d: global model saved to %s", server_round, saved)
        return super().evaluate(server_round, parameters)
