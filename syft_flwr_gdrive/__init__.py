"""syft-flwr-gdrive: Flower federated learning over Google Drive folders.

The public entry points are re-exported lazily so that importing the package
(for example to start the fake Drive server) does not pull in Flower.
"""

from typing import Any

__version__ = "0.1.0"

# The shipping functions for notebooks: offer an app, list/review/approve/reject offers, run a node in a thread.
_NOTEBOOK_API = ("submit", "apps", "review", "approve", "reject", "start_node")

__all__ = ["__version__", "syftbox_flwr_server", "syftbox_flwr_client", *_NOTEBOOK_API]


def __getattr__(name: str) -> Any:  # pragma: no cover - thin lazy re-export
    if name == "syftbox_flwr_server":
        from syft_flwr_gdrive.flower.syftbox_server import syftbox_flwr_server

        return syftbox_flwr_server
    if name == "syftbox_flwr_client":
        from syft_flwr_gdrive.flower.syftbox_client import syftbox_flwr_client

        return syftbox_flwr_client
    if name in _NOTEBOOK_API:
        from syft_flwr_gdrive.flower import notebook_api

        return getattr(notebook_api, name)
    raise AttributeError(name)
