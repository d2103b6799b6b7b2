"""Transports are plugins: found by name in the ``syft_flwr.transports`` entry-point group.

A package adds a transport by declaring, in its pyproject::

    [project.entry-points."syft_flwr.transports"]
    mytransport = "my_pkg.module:MyTransport"

where ``MyTransport`` implements ``syft_flwr_gdrive.transport.contract.Transport``
and has a ``from_settings(settings)`` class method.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from syft_flwr_gdrive.config import SYFTBOX_TRANSPORT, ConfigError, Settings, syftbox_transport_error

GROUP = "syft_flwr.transports"


def available_transports() -> dict[str, EntryPoint]:
    """Installed transports by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def transport_class(name: str) -> Any:
    """Load the class registered under ``name``; a clear error lists what is installed."""
    found = available_transports()
    if name == SYFTBOX_TRANSPORT and name not in found:
        raise ConfigError(syftbox_transport_error("SYFT_FLWR_TRANSPORT or [tool.syft_flwr]"))
    if name not in found:
        names = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            f"No transport named {name!r} is installed (installed: {names}). Set "
            "`transport` in [tool.syft_flwr] or SYFT_FLWR_TRANSPORT to one of those, or install "
            "the package that provides it (is syft-flwr-gdrive installed with `pip install -e .`?)."
        )
    return found[name].load()


def create_transport(settings: Settings) -> Any:
    """Instantiate the transport the settings name."""
    return transport_class(settings.transport).from_settings(settings)
