"""Logistic regression in numpy on diabetes-like tabular data, and where each side finds its data."""

from pathlib import Path

import numpy as np

FEATURES = 6
PROJECT_DIR = Path(__file__).resolve().parent.parent

Data = tuple[np.ndarray, np.ndarray]


def read_csv(path) -> Data:
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    x, y = table[:, :FEATURES], table[:, FEATURES]
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9), y


def load_syftbox_dataset() -> tuple[Data, Data]:
    """This data owner's private dataset (syft-flwr: through syft-client, else DATA_DIR)."""
    try:
        import syft_client as sc

        train_path = sc.resolve_path("syft://private/syft_datasets/diabetes/train.csv")
        test_path = sc.resolve_path("syft://private/syft_datasets/diabetes/test.csv")
        print(f"dataset through syft-client: {train_path}")
    except (ImportError, Exception) as exc:
        from syft_flwr.utils import get_syftbox_dataset_path

        print(f"no syft-client ({exc}): dataset from DATA_DIR")
        data_dir = get_syftbox_dataset_path()
        train_path, test_path = data_dir / "train.csv", data_dir / "test.csv"
    return read_csv(train_path), read_csv(test_path)


def load_flwr_data(partition_id: int, num_partitions: int) -> tuple[Data, Data]:
    """A partition of the pooled data, for a plain Flower simulation."""
    x, y = read_csv(PROJECT_DIR / "data" / "pooled.csv")
    rows = np.arange(len(y))[partition_id::num_partitions]
    cut = int(len(rows) * 0.75)
    return (x[rows[:cut]], y[rows[:cut]]), (x[rows[cut:]], y[rows[cut:]])


def initial_weights() -> list[np.ndarray]:
    return [np.zeros(FEATURES), np.zeros(1)]


def _predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights[0] + weights[1][0])))


def fit(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int) -> list[np.ndarray]:
    w, b = weights[0].copy(), weights[1].copy()
    for _ in range(epochs):
        error = _predict([w, b], x) - y
        w -= 0.5 * x.T @ error / len(y)
        b -= 0.5 * error.mean()
    return [w, b]


def evaluate(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(_predict(weights, x), 1e-7, 1 - 1e-7)
    loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return loss, float(((p > 0.5) == y).mean())
