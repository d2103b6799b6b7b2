"""The sample apps' per-round figures, read from what Flower itself recorded (``round_metrics``).

The apps keep no history of their own: their strategy's ``Result`` (Message API) or ``History`` (legacy)
is recorded by the server and reported as ``metrics``. ``history_of`` lays those out as the tests compare
them: equal-length lists, one entry per round that was evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HISTORY_KEYS = ("round", "loss", "accuracy", "train_loss", "train_accuracy", "num_clients")


def history_of(metrics: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{"round": [...], "loss": [...], ...}`` from a report's ``metrics`` (``RoundMetrics.snapshot``)."""
    history: dict[str, list[Any]] = {key: [] for key in HISTORY_KEYS}
    for entry in metrics["rounds"]:
        evaluated, trained = entry.get("evaluate"), entry.get("train") or {}
        if entry["round"] < 1 or not evaluated:
            continue
        history["round"].append(entry["round"])
        history["loss"].append(evaluated.get("loss"))
        history["accuracy"].append(evaluated.get("accuracy"))
        history["train_loss"].append(trained.get("train_loss"))
        history["train_accuracy"].append(trained.get("train_accuracy"))
        history["num_clients"].append(evaluated.get("num_clients"))
    return history


def server_history(report: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``history_of`` a ``server`` command's JSON report."""
    return history_of(report["metrics"])
