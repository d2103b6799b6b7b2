"""What the data owner sees and does before an app runs: list, review (files and diff), approve, reject.

The command line (``apps``, ``review``, ``approve``, ``reject``) and the notebook functions
(``syft_flwr_gdrive.apps`` ...) both call these; they work on the store alone (no Drive), from any
terminal, while the node runs: the node sends the answer at its next poll.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.flower.app_store import APPROVED
from syft_flwr_gdrive.flower.app_store import REJECTED
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.app_store import Offer
from syft_flwr_gdrive.flower.dependencies import missing_dependencies
from syft_flwr_gdrive.flower.dependencies import pip_command
from syft_flwr_gdrive.flower.fab import unpack_to

MAX_DIFF_LINES = 2000
TEXT_LIMIT = 1024 * 1024


def describe_offer(store: AppStore, offer: Offer) -> dict[str, Any]:
    """An offer as ``apps --json`` prints it: what it is, its state, what it needs that is missing here."""
    missing = missing_dependencies(offer.dependencies)
    return {
        **offer.as_public(),
        "missing_dependencies": missing,
        "install_missing": pip_command(missing),
        "path": str(store.app_dir(offer)),
    }


def list_apps(store: AppStore) -> list[dict[str, Any]]:
    return [describe_offer(store, o) for o in store.offers()]


def review_offer(store: AppStore, wanted: str, out: Path | None = None) -> dict[str, Any]:
    """The offer, where its files are (unpacked read-only; in ``out`` if given), and its diff against the last
    version of the same app from the same aggregator that this data owner approved."""
    offer = store.get(wanted)
    path = store.app_dir(offer)
    if out is not None:
        fab = store.fab_path(offer).read_bytes()
        unpack_to(fab, Path(out).expanduser().resolve(), max_bytes=max(len(fab), 1))
        path = Path(out).expanduser().resolve()
    previous = store.previous_approved(offer)
    diff = _diff(store.app_dir(previous), store.app_dir(offer)) if previous is not None else ""
    return {
        **describe_offer(store, offer),
        "path": str(path),
        "file_list": sorted(offer.files),
        "previous_approved": previous.id if previous is not None else None,
        "previous_version": previous.version if previous is not None else None,
        "diff": diff,
    }


def approve_offer(store: AppStore, wanted: str, node_config: dict[str, Any] | None = None) -> Offer:
    offer = store.get(wanted)
    if not store.app_dir(offer).is_dir():
        raise ConfigError(f"offer {offer.id}'s app is not installed under {store.app_dir(offer)}; it cannot run")
    return store.decide(offer.id, APPROVED, node_config=node_config)


def reject_offer(store: AppStore, wanted: str, reason: str) -> Offer:
    if not reason.strip():
        raise ConfigError("say why: --reason 'what the aggregator should change'")
    return store.decide(wanted, REJECTED, reason=reason.strip())


def _diff(old: Path, new: Path) -> str:
    """A unified diff of two unpacked apps (binary or huge files named, not shown)."""
    old_files = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()} if old.is_dir() else set()
    new_files = {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()} if new.is_dir() else set()
    lines: list[str] = []
    for path in sorted(old_files | new_files):
        a = _text(old / path) if path in old_files else ""
        b = _text(new / path) if path in new_files else ""
        if a is None or b is None:
            if (old / path).read_bytes() != (new / path).read_bytes():
                lines.append(f"Binary or large file {path} differs\n")
            continue
        lines += difflib.unified_diff(
            a.splitlines(keepends=True),
            b.splitlines(keepends=True),
            fromfile=f"approved/{path}" if path in old_files else "/dev/null",
            tofile=f"offered/{path}" if path in new_files else "/dev/null",
        )
        if len(lines) > MAX_DIFF_LINES:
            lines = lines[:MAX_DIFF_LINES] + [f"... diff cut at {MAX_DIFF_LINES} lines\n"]
            break
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if len(data) > TEXT_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
