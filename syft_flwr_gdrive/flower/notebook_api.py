"""The shipping commands as Python functions, for notebooks (Colab): offer, list, review, approve, reject, and a node
that runs in a background thread until ``stop()``.

Each takes the participant's settings as keywords (``email``, ``drive_url``, ``poll_interval``; the rest from the
environment, as the command line does) and returns plain data (dicts), so a notebook can show or test it.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.flower.app_review import approve_offer
from syft_flwr_gdrive.flower.app_review import describe_offer
from syft_flwr_gdrive.flower.app_review import list_apps
from syft_flwr_gdrive.flower.app_review import reject_offer
from syft_flwr_gdrive.flower.app_review import review_offer
from syft_flwr_gdrive.flower.app_store import AUTO_NONE
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.data_owner_node import Node


def _overrides(email: str | None, drive_url: str | None, poll_interval: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if email:
        out["email"] = email
    if drive_url:
        out["transport_options"] = {"drive_url": drive_url}
    if poll_interval is not None:
        out["poll_interval"] = poll_interval
    return out


def _store(email: str | None) -> AppStore:
    return AppStore.for_participant(Settings.from_env(**_overrides(email, None, None)).participant_state_dir())


def submit(
    project_dir: str | Path,
    datasites: Sequence[str] | None = None,
    *,
    wait: float = 60.0,
    email: str | None = None,
    drive_url: str | None = None,
    poll_interval: float | None = None,
) -> dict[str, Any]:
    """Offer the project's app to the datasites' nodes (``syft-flwr-gdrive submit``); each one's status."""
    from syft_flwr_gdrive.flower.offers import submit_project

    overrides = _overrides(email, drive_url, poll_interval)
    return submit_project(Path(project_dir), overrides, list(datasites) if datasites else None, wait=wait).as_dict()


def apps(*, email: str | None = None) -> list[dict[str, Any]]:
    """The offers and approved apps of this data owner (``syft-flwr-gdrive apps --json``)."""
    return list_apps(_store(email))


def review(app_id: str, out: str | Path | None = None, *, email: str | None = None) -> dict[str, Any]:
    """One offer: its files (unpacked read-only, into ``out`` if given) and its diff (``review``)."""
    return review_offer(_store(email), app_id, Path(out) if out is not None else None)


def approve(app_id: str, node_config: Mapping[str, Any] | None = None, *, email: str | None = None) -> dict[str, Any]:
    """Approve an offer, with this app's own node config (``approve``); the node answers and runs it."""
    store = _store(email)
    return describe_offer(store, approve_offer(store, app_id, dict(node_config) if node_config is not None else None))


def reject(app_id: str, reason: str, *, email: str | None = None) -> dict[str, Any]:
    """Reject an offer; the aggregator is shown ``reason`` (``reject``)."""
    store = _store(email)
    return describe_offer(store, reject_offer(store, app_id, reason))


def start_node(
    aggregators: Sequence[str] | str,
    node_config: Mapping[str, Any] | None = None,
    *,
    auto_approve: str = AUTO_NONE,
    email: str | None = None,
    drive_url: str | None = None,
    poll_interval: float | None = None,
) -> Node:
    """Start this data owner's node in a background thread (``syft-flwr-gdrive node``); call ``.stop()`` to end it
    and every app it runs."""
    settings = Settings.from_env(**_overrides(email, drive_url, poll_interval))
    names = [aggregators] if isinstance(aggregators, str) else list(aggregators)
    return Node(settings, names, node_config=node_config, auto_approve=auto_approve).start()
