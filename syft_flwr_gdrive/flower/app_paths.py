"""Where an app finds its data and puts its outputs: syft-flwr's conventions, for apps written for it.

syft-flwr's apps find a data owner's dataset in the folder ``DATA_DIR`` names (``.data/`` when unset) and
branch on whether it exists: the private data of a real run, or Flower's own partitions in a local
simulation. They write what the data scientist keeps (model checkpoints, figures) under ``OUTPUT_DIR``.
These helpers keep those conventions (``syft-flwr-gdrive migrate`` points syft-flwr's imports here):

- data owners run ``DATA_DIR=/path/to/dataset syft-flwr-gdrive client -p .``;
- ``syft-flwr-gdrive run -p . --data-dir 'mock/{i}'`` gives each simulated data owner a mock dataset of its
  own, as ``syft_flwr.run(project, mock_dataset_paths)`` did;
- outputs go to ``OUTPUT_DIR``, or ``outputs/`` in the working directory (``run``: ``OUT/participants``).
"""

from __future__ import annotations

from pathlib import Path

from syft_flwr_gdrive.base.config import ENV_DATA_DIR
from syft_flwr_gdrive.base.config import ENV_OUTPUT_DIR
from syft_flwr_gdrive.base.config import app_folder

DEFAULT_DATA_DIR = ".data/"  # syft-flwr's default
DEFAULT_OUTPUT_DIR = "outputs"
_PRIVATE_DATASETS = "syft://private/syft_datasets/"


def data_dir() -> Path:
    """This data owner's dataset folder (``DATA_DIR``, default ``.data/``); FileNotFoundError if it does not exist.

    The equivalent of ``syft_flwr.utils.get_syftbox_dataset_path``."""
    path = Path(app_folder(ENV_DATA_DIR) or DEFAULT_DATA_DIR)
    if not path.exists():
        raise FileNotFoundError(
            f"No dataset at {path}: set {ENV_DATA_DIR} to this data owner's dataset folder "
            f"(`{ENV_DATA_DIR}=/path/to/data syft-flwr-gdrive client -p .`, or `run --data-dir` for mock data)."
        )
    return path


def has_data_dir() -> bool:
    """Whether a dataset folder is there (``data_dir`` would succeed): a real data owner's run, not a simulation
    on Flower's own partitions. The equivalent of ``syft_flwr.utils.run_syft_flwr``."""
    try:
        data_dir()
    except FileNotFoundError:
        return False
    return True


def resolve_path(url: str) -> Path:
    """A ``syft://private/syft_datasets/<dataset>/<file>`` address as a file of ``data_dir()``.

    The equivalent of ``syft_client.resolve_path`` for a data owner's private dataset: here a data owner
    keeps one dataset per run, in ``DATA_DIR``, so ``<dataset>`` names it and ``<file>`` is found in it."""
    if not url.startswith(_PRIVATE_DATASETS):
        raise ValueError(f"{url!r}: only {_PRIVATE_DATASETS}<dataset>/<file> addresses resolve here (to DATA_DIR).")
    dataset, _, rest = url[len(_PRIVATE_DATASETS) :].partition("/")
    if not dataset or not rest:
        raise ValueError(f"{url!r} names no file: use {_PRIVATE_DATASETS}<dataset>/<file>.")
    return data_dir() / rest


def output_dir() -> Path:
    """Where the app writes what the data scientist keeps (``OUTPUT_DIR``, default ``outputs/``); created."""
    path = Path(app_folder(ENV_OUTPUT_DIR) or DEFAULT_OUTPUT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
