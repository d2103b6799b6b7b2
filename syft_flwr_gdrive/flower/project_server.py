"""The ``server`` command's work: run a Flower project's ServerApp against its datasites and report how it went.

``serve`` takes an app already loaded; this starts from the project folder, as the command line does: it
loads the project, checks who may run it and with whom before any credential or Drive call (so a typo fails
at once), and turns the outcome into the JSON report the command prints.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord
from flwr.app import Context
from flwr.app import RecordDict

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.flower.fingerprint import app_identity
from syft_flwr_gdrive.flower.offers import DEFAULT_APPROVAL_TIMEOUT
from syft_flwr_gdrive.flower.offers import OfferOutcome
from syft_flwr_gdrive.flower.offers import offer_app
from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.flower.syftbox_server import serve
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.registry import create_transport


def serve_project(
    project_dir: Path,
    settings_overrides: Mapping[str, Any],
    *,
    datasites: Sequence[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    offer: bool = True,
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
) -> dict[str, Any]:
    """Run the project's ServerApp as the aggregator; returns the run's report (``completed`` says if it ran through;
    ``access_lost``, when set, that the storage refused this server for good, with the fix).

    ``datasites`` default to ``[tool.syft_flwr] datasites``; ``run_config`` overrides keys of
    ``[tool.flwr.app.config]``; ``settings_overrides`` are ``Settings`` fields by name (the command's options);
    ``on_progress`` gets the run so far about twice a second (``syftbox_server.progress_of``).
    The report's ``metrics`` are Flower's own per-round figures (``round_metrics``), for any app.
    """
    proj = FlowerProject.load(project_dir, dict(run_config or {}))
    settings = Settings.from_env(project=proj.syft, **settings_overrides)
    if proj.syft.aggregator and proj.syft.aggregator != settings.email:
        raise ConfigError(
            f"{proj.path}/pyproject.toml names {proj.syft.aggregator} as the aggregator, but this is "
            f"{settings.email}. Run the server as {proj.syft.aggregator}, or fix [tool.syft_flwr] aggregator."
        )
    sites = list(datasites) if datasites is not None else list(proj.syft.datasites)
    if not sites:
        raise ConfigError("No datasites: pass --datasites a@x.com,b@y.com or set [tool.syft_flwr] datasites.")
    sites = [validate_email(site, what="datasites") for site in sites]  # before touching credentials
    transport = create_transport(settings)
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=proj.run_config)
    identity = app_identity(proj.path)
    shipped = None
    if offer:
        shipped = offer_app(proj.path, settings, transport, sites, approval_timeout=approval_timeout)
        sites = shipped.participants
        if not sites:
            return _nobody_approved(shipped, transport)
    outcome = serve(
        proj.load_server_app(),
        context,
        sites,
        proj.app_name,
        settings=settings,
        transport=transport,
        app_fingerprint=identity.as_run_info(),
        on_progress=on_progress,
    )
    return {
        "completed": outcome.completed,
        "error": outcome.error,
        "access_lost": outcome.access_lost,
        "run_id": outcome.run_id,
        "run_config": dict(outcome.context.run_config),
        "app_fingerprint": identity.fingerprint,
        "rounds": outcome.rounds,
        "summary": outcome.summary,
        "metrics": outcome.metrics,
        "excluded": outcome.excluded,
        "state": {k: record_to_jsonable(v) for k, v in outcome.context.state.items()},
        "drive_calls": transport.call_counts(),
        **_approval_report(shipped),
    }


def _approval_report(shipped: OfferOutcome | None) -> dict[str, Any]:
    """Each datasite's answer to the offer (``approved``, ``awaiting approval``, ``rejected: <reason>``, or
    no node), and what the offer cost."""
    if shipped is None:
        return {}
    return {"approval": dict(shipped.status), "offer": shipped.as_dict()}


def _nobody_approved(shipped: OfferOutcome, transport: Transport) -> dict[str, Any]:
    waiting = ", ".join(f"{site}: {state}" for site, state in sorted(shipped.status.items()))
    return {
        "completed": False,
        "error": f"no datasite approved the app within the approval timeout ({waiting})",
        "access_lost": None,
        "run_id": None,
        "app_fingerprint": shipped.fingerprint,
        "excluded": {},
        "drive_calls": transport.call_counts(),
        **_approval_report(shipped),
    }


def record_to_jsonable(record: Any) -> Any:
    """MetricRecord/ConfigRecord -> dict; arrays are summarised, never dumped."""
    if isinstance(record, ArrayRecord):
        digest = hashlib.sha256()
        for key, array in record.items():  # lets two runs be compared bit for bit
            digest.update(key.encode() + array.dtype.encode() + repr(array.shape).encode() + array.data)
        return {"arrays": len(record), "bytes": record.count_bytes(), "sha256": digest.hexdigest()}
    out = {}
    for key, value in dict(record).items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, list):
            value = [None if isinstance(v, float) and not math.isfinite(v) else v for v in value]
        elif isinstance(value, bytes):
            value = f"<{len(value)} bytes>"
        out[key] = value
    return out
