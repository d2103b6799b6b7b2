"""``syftbox_flwr_client``: serve a Flower ClientApp to the aggregator until its stop signal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.clientapp import ClientApp

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.flower.app_mailbox import open_mailbox
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.client_loop import ClientReport
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.registry import create_transport

logger = logging.getLogger(__name__)


def syftbox_flwr_client(
    client_app: ClientApp,
    app_name: str,
    *,
    aggregator: str | None = None,
    project_dir: Path | None = None,
    node_config: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    app_identity: Any = None,
    allow_project_changes: bool = False,
    settings: Settings | None = None,
    transport: Transport | None = None,
    stop_event: threading.Event | None = None,
) -> ClientReport:
    """Poll for the aggregator's requests, run ``client_app`` on each, reply; return on stop.

    The aggregator (the data scientist's email) is the only sender whose
    messages are acted on: from the argument, SYFT_FLWR_AGGREGATOR, or
    ``[tool.syft_flwr] aggregator``. The ClientApp's Context gets ``node_config`` and the
    server's run config (sent with the run), merged into ``run_config`` (this project's
    ``[tool.flwr.app.config]``) as Flower merges it: a request setting an undeclared key, or a value
    of another type, is refused. With ``run_config`` None the server's is taken as sent, unchecked.
    """
    project = ProjectConfig.load(project_dir) if project_dir is not None else None
    settings = settings or Settings.from_env(project=project)
    server = aggregator or settings.aggregator or (project.aggregator if project else None)
    if not server:
        raise ConfigError(
            "The aggregator's email is unknown. Pass aggregator=..., set SYFT_FLWR_AGGREGATOR, "
            'or add `aggregator = "ds@example.com"` under [tool.syft_flwr] in the project\'s pyproject.toml.'
        )
    server = validate_email(server, what="aggregator")
    if server == settings.email:
        raise ConfigError(f"{settings.email} is both the aggregator and this client; use distinct accounts.")
    transport = transport or create_transport(settings)
    mailbox = open_mailbox(settings, transport, app_name, [server])
    loop = ClientLoop(
        client_app,
        mailbox,
        poll_interval=settings.poll_interval,
        node_config=node_config,
        run_config=run_config,
        stop_event=stop_event,
        poll_schedule=PollSchedule.for_settings(settings, min_gap=transport.min_poll_gap()),
        app_identity=app_identity,
        allow_project_changes=allow_project_changes,
    )
    try:
        return loop.run()
    finally:
        transport.close()
