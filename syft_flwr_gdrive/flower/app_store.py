"""A data owner's apps on disk: the offers received, what they decided, and the installed, read-only trees.

Laid out under the node's state dir (``<state>/<me>/apps/``):

* ``offers/<id>.json``: one record per offer (one aggregator, one FAB): who, what, its state
  (``pending``, ``approved``, ``rejected``), the reason, the per-app node config, whether the
  answer still has to go out;
* ``fabs/<fab hash>.fab``: the FAB as received (its signature was checked on receipt);
* ``installed/<fab hash>/``: the FAB unpacked read-only, checked against its signed fingerprint;
  the node runs an approved app's ClientApp from here, never from the working directory.

The node writes offers in; ``apps``, ``review``, ``approve`` and ``reject`` read and decide from
other terminals while it runs. Every change is a read-modify-write under an exclusive lock file
(``fcntl.flock``), and every file is replaced whole (written beside, then renamed), so two
processes never lose each other's change and no reader sees half a record.

An approval is for exactly one FAB (its hash pins its fingerprint): a changed app is a new offer,
pending until its data owner decides, unless an auto-approval rule (off by default) says otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import tomllib

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
STATES = (PENDING, APPROVED, REJECTED)

# Auto-approval rules, off by default: "config-only" approves an app whose only change from the last version the
# data owner approved (same aggregator, same app) is its [tool.flwr.app.config]; "all" approves everything (for the
# local federation of `run --ship` / `demo --ship`, never for real data).
AUTO_NONE = "none"
AUTO_CONFIG_ONLY = "config-only"
AUTO_ALL = "all"
AUTO_RULES = (AUTO_NONE, AUTO_CONFIG_ONLY, AUTO_ALL)


@dataclass(frozen=True)
class Offer:
    """One offer as the store keeps it (``as_public`` is what ``apps --json`` prints)."""

    id: str
    sender: str
    name: str
    version: str
    publisher: str
    fingerprint: str
    fab_hash: str
    files: dict[str, int]
    size: int
    dependencies: list[str]
    state: str = PENDING
    reason: str = ""
    node_config: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0
    decided_at: float = 0.0
    decided_by: str = ""  # "hand", or the auto-approval rule that decided
    message_id: str = ""  # the offer message the answer replies to
    answer_due: bool = False  # the current state is not sent yet for message_id (the node sends it)

    def as_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "name": self.name,
            "version": self.version,
            "publisher": self.publisher,
            "fingerprint": self.fingerprint,
            "fab_hash": self.fab_hash,
            "state": self.state,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "node_config": dict(self.node_config),
            "files": dict(self.files),
            "size": self.size,
            "dependencies": list(self.dependencies),
            "received_at": self.received_at,
        }


def offer_id(sender: str, fab_hash: str) -> str:
    """Short, stable, typeable: one aggregator's one FAB."""
    return hashlib.sha256(f"{sender}\n{fab_hash}".encode()).hexdigest()[:10]


class AppStore:
    """The offers and installed apps under ``root``; safe to use from several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.offers_dir = self.root / "offers"
        self.fabs_dir = self.root / "fabs"
        self.installed_dir = self.root / "installed"

    @classmethod
    def for_participant(cls, participant_state_dir: Path) -> AppStore:
        return cls(participant_state_dir / "apps")

    # -- locking and files -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive for a read-modify-write across processes (the node, and `approve` in another terminal)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

    def _save(self, offer: Offer) -> Offer:
        self._write(self.offers_dir / f"{offer.id}.json", json.dumps(asdict(offer), indent=1, sort_keys=True).encode())
        return offer

    def _load(self, path: Path) -> Offer | None:
        try:
            return Offer(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    # -- reading -----------------------------------------------------------------------------------------

    def offers(self) -> list[Offer]:
        """Every offer, oldest first."""
        if not self.offers_dir.is_dir():
            return []
        found = [self._load(p) for p in self.offers_dir.glob("*.json")]
        return sorted((o for o in found if o is not None), key=lambda o: (o.received_at, o.id))

    def get(self, wanted: str) -> Offer:
        """The offer whose id is ``wanted`` (or starts with it, if only one does)."""
        matches = [o for o in self.offers() if o.id == wanted] or [o for o in self.offers() if o.id.startswith(wanted)]
        if len(matches) != 1:
            known = ", ".join(o.id for o in self.offers()) or "none"
            what = "no offer" if not matches else "more than one offer"
            raise ConfigError(f"{what} has id {wanted!r} (offers here: {known}); `syft-flwr-gdrive apps` lists them.")
        return matches[0]

    def fab_path(self, offer: Offer) -> Path:
        return self.fabs_dir / f"{offer.fab_hash}.fab"

    def app_dir(self, offer: Offer) -> Path:
        """The installed, read-only tree of the offer's app."""
        return self.installed_dir / offer.fab_hash

    def previous_approved(self, offer: Offer) -> Offer | None:
        """The last version of the same app from the same aggregator that this data owner approved (not ``offer``)."""
        earlier = [
            o
            for o in self.offers()
            if o.sender == offer.sender and o.name == offer.name and o.state == APPROVED and o.id != offer.id
        ]
        return max(earlier, key=lambda o: o.decided_at) if earlier else None

    def runnable(self, aggregators: frozenset[str] | None = None) -> list[Offer]:
        """What the node runs: per aggregator and app, the newest approved version."""
        newest: dict[tuple[str, str], Offer] = {}
        for o in self.offers():
            if o.state != APPROVED or (aggregators is not None and o.sender not in aggregators):
                continue
            key = (o.sender, o.name)
            if key not in newest or o.decided_at > newest[key].decided_at:
                newest[key] = o
        return sorted(newest.values(), key=lambda o: (o.sender, o.name))

    # -- changing ----------------------------------------------------------------------------------------

    def receive(
        self, *, sender: str, message_id: str, meta: dict[str, Any], fab: bytes, auto: str = AUTO_NONE
    ) -> Offer:
        """Keep an offer whose FAB was installed (checked) under ``installed/<fab hash>``; returns its record.

        An offer of a FAB this aggregator offered before keeps its decision (an approval pins the FAB: the node
        answers again at once); a new one is pending unless ``auto`` approves it."""
        oid = offer_id(sender, meta["fab_hash"])
        with self.locked():
            if not self.fab_path_for(meta["fab_hash"]).exists():
                self._write(self.fab_path_for(meta["fab_hash"]), fab)
            known = self._load(self.offers_dir / f"{oid}.json")
            if known is not None:  # offered again: answer again with what stands
                return self._save(replace(known, message_id=message_id, answer_due=True))
            offer = Offer(
                id=oid,
                sender=sender,
                name=meta["name"],
                version=meta["version"],
                publisher=meta["publisher"],
                fingerprint=meta["fingerprint"],
                fab_hash=meta["fab_hash"],
                files=dict(meta["files"]),
                size=int(meta["size"]),
                dependencies=list(meta["dependencies"]),
                received_at=time.time(),
                message_id=message_id,
                answer_due=True,  # "pending" at first: the aggregator learns the offer reached this node
            )
            rule = self._auto_rule(offer, auto)
            if rule:
                offer = replace(
                    offer, state=APPROVED, decided_at=time.time(), decided_by=f"auto: {rule}", answer_due=True
                )
                previous = self.previous_approved(offer)
                if previous is not None:  # the node config set for the approved version carries over
                    offer = replace(offer, node_config=dict(previous.node_config))
            return self._save(offer)

    def fab_path_for(self, digest: str) -> Path:
        return self.fabs_dir / f"{digest}.fab"

    def decide(self, wanted: str, state: str, *, reason: str = "", node_config: dict[str, Any] | None = None) -> Offer:
        """Approve or reject an offer (by hand); the node sends the answer. Deciding again changes the decision."""
        if state not in (APPROVED, REJECTED):
            raise ValueError(state)
        with self.locked():
            offer = self.get(wanted)
            changed = replace(
                offer,
                state=state,
                reason=reason,
                decided_at=time.time(),
                decided_by="hand",
                answer_due=bool(offer.message_id),
                node_config=dict(node_config) if node_config is not None else offer.node_config,
            )
            return self._save(changed)

    def answered(self, sent: Offer) -> None:
        """The answer ``sent`` stood for went out: nothing is due unless the offer was offered again, or decided
        again (from another terminal) since it was read."""
        with self.locked():
            offer = self._load(self.offers_dir / f"{sent.id}.json")
            same = offer is not None and (offer.message_id, offer.state, offer.decided_at, offer.reason) == (
                sent.message_id,
                sent.state,
                sent.decided_at,
                sent.reason,
            )
            if offer is not None and same:
                self._save(replace(offer, answer_due=False))

    def _auto_rule(self, offer: Offer, auto: str) -> str | None:
        if auto == AUTO_ALL:
            return "all (local run)"
        if auto != AUTO_CONFIG_ONLY:
            return None
        previous = self.previous_approved(offer)
        if previous is None or not self.app_dir(previous).is_dir() or not self.app_dir(offer).is_dir():
            return None
        return "config-only" if config_only_change(self.app_dir(previous), self.app_dir(offer)) else None


def config_only_change(old: Path, new: Path) -> bool:
    """True if two unpacked apps differ at most in pyproject's ``[tool.flwr.app.config]``."""
    old_files = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    new_files = {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()}
    if old_files != new_files:
        return False
    for path in old_files - {"pyproject.toml"}:
        if (old / path).read_bytes() != (new / path).read_bytes():
            return False

    def without_config(root: Path) -> dict[str, Any]:
        config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        config.get("tool", {}).get("flwr", {}).get("app", {}).pop("config", None)
        return config

    try:
        return without_config(old) == without_config(new)
    except (OSError, ValueError):
        return False
