"""Transports are plugins: found by name in the ``syft_flwr.transports`` entry-point group.

A package adds a transport by declaring, in its pyproject::

    [project.entry-points."syft_flwr.transports"]
    mytransport = "my_pkg.module:MyTransport"

where ``MyTransport`` subclasses ``syft_flwr_gdrive.transport.contract.Transport``
(its abstract primitives, ``from_settings`` among them) and passes the contract test suite.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from importlib.metadata import entry_points

from syft_flwr_gdrive.base.config import SYFTBOX_TRANSPORT
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import syftbox_transport_error
from syft_flwr_gdrive.transport.contract import Transport

GROUP = "syft_flwr.transports"


def available_transports() -> dict[str, EntryPoint]:
    """Installed transports by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def transport_class(name: str) -> type[Transport]:
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
    cls = found[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise ConfigError(
            f"The transport {name!r} ({found[name].value}) is not a subclass of "
            "syft_flwr_gdrive.transport.contract.Transport; update the package that provides it."
        )
    return cls


def create_transport(settings: Settings) -> Transport:
    """Instantiate the transport the settings name."""
    return transport_class(settings.transport).from_settings(settings)
