"""What the server and a client set up alike: the app's key and a mailbox built from the settings.

Shared here so that ``client.py`` does not import ``server.py`` (nor the other way round).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.seal import PlainLayout
from syft_flwr_gdrive.crypto.seal import sealer_for
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import parts_layout
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import Transport


def app_key(app_name: str) -> str:
    """The name under which an app's messages are filed (the seed's ``flwr/<app>``)."""
    name = app_name.strip()
    if not name:
        raise ConfigError("app_name is empty; give the federated app a name, e.g. 'diabetes_prediction'.")
    return name if name.startswith("flwr/") else f"flwr/{name}"


def open_mailbox(settings: Settings, transport: Transport, app_name: str, peers: Iterable[str]) -> Mailbox:
    """A mailbox for ``app_name`` with ``peers``: my size limit and the Flower codec's payload layout (so big
    sealed payloads open while they download), on ``participant_mailbox``'s ledger and keys."""
    return participant_mailbox(
        settings,
        transport,
        app_key(app_name),
        peers,
        max_payload=settings.max_message_bytes,
        plain_layouts={CODEC_PARTS: parts_layout},
    )


def participant_mailbox(
    settings: Settings,
    transport: Transport,
    key: str,
    peers: Iterable[str],
    *,
    max_payload: int,
    plain_layouts: Mapping[str, PlainLayout] | None = None,
) -> Mailbox:
    """A mailbox filed under ``key`` with this participant's ledger for it and keys from its state dir, sealing
    if on, blob parts as configured: what every channel (an app's, the apps channel) builds alike."""
    state = settings.participant_state_dir()
    return Mailbox(
        transport,
        key,
        peers,
        Ledger.for_app(state, key),
        sealer=sealer_for(state, enabled=settings.encryption),
        max_payload=max_payload,
        blob_part_bytes=settings.blob_part_bytes,
        plain_layouts=plain_layouts,
    )
