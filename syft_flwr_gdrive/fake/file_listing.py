"""``files.list``: the files a user can see that match a ``q``, sorted and keyset-paginated.

Page tokens carry the last file's sort key (and a fingerprint of the query), so files created
between pages are neither skipped nor repeated. Under the strict profile a listing shows each
file as it was at a random moment of the lag window (:mod:`lag_history`), and an OR of folders
may answer only some of them (``strict.or_listing_folders``).

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: ``list`` takes it (parsing the
page token and mapping gmail addresses happen before, on the caller's own values); ``_View`` is
only used under it.
"""

from __future__ import annotations

import bisect
import builtins
import hashlib
import threading
from collections.abc import Iterable
from typing import Any

from . import query as q
from . import strict
from .exceptions import invalid
from .lag_history import LagHistory
from .records import ORDER_KEYS
from .records import ROLE_RANK
from .records import Desc
from .records import FileRec
from .records import b64
from .records import now
from .records import parse_order
from .records import unb64
from .resources import Resources


class _View:
    """A file seen by one user: what :func:`query.evaluate` needs, computed lazily."""

    __slots__ = ("rec", "store", "email", "memo")

    def __init__(self, rec: FileRec, store: FileListing, email: str, memo: dict) -> None:
        self.rec, self.store, self.email, self.memo = rec, store, email, memo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rec, name)

    @property
    def description(self) -> str:
        return self.rec.description or ""

    @property
    def app_properties(self) -> dict[str, str]:
        return self.rec.app_properties.get(self.store._app(self.email), {})

    @property
    def properties(self) -> dict[str, str]:
        """What ``properties has`` searches: with ``own_properties_search`` only the caller's own files'."""
        if self.store.rule("own_properties_search", False) and self.rec.owner != self.email:
            return {}
        return self.rec.properties

    def is_trashed(self) -> bool:
        return self.store._trashed(self.rec)

    def is_starred(self) -> bool:
        return self.rec.starred

    def is_shared_with_me(self) -> bool:
        return self.store._shared_with_me(self.rec, self.email)

    def role_of(self, email: str) -> int:
        if email == "anyone":
            return max((ROLE_RANK[p["role"]] for p in self.rec.permissions if p["type"] == "anyone"), default=0)
        if email == self.email:
            return self.store._role(self.rec, email, self.memo)
        return self.store._role(self.rec, email, {})


class FileListing(Resources, LagHistory):
    """Answers ``files.list`` from the files, the children index and the lag history."""

    lock: threading.RLock
    gmail_dots: bool  # strict profile: gmail addresses in ``q`` name one account modulo dots

    def rule(self, name: str, default: Any) -> Any:  # provided by the store
        raise NotImplementedError

    def account(self, email: str) -> str:  # provided by the store
        raise NotImplementedError

    def list(
        self,
        email: str,
        node: q.Node | None,
        order_by: str | None,
        page_size: int,
        page_token: str | None,
        lag: float,
        query_text: str = "",
    ) -> tuple[list[dict], str | None]:
        """files.list: visible files matching ``node``, keyset-paginated so that files added
        between pages are neither skipped nor repeated."""
        order = parse_order(order_by)
        fingerprint = hashlib.sha256(f"{email}\n{query_text}\n{order_by or ''}".encode()).hexdigest()[:16]
        after: tuple | None = None
        if page_token:
            try:
                tok = unb64(page_token)
                if tok["h"] != fingerprint:
                    raise ValueError("token of another query")
                after = self._wrap_key(tok["k"], order)
            except Exception:
                raise invalid("Invalid Value", "pageToken") from None
        if node is not None and self.gmail_dots:
            node = strict.map_emails(node, self.account, owners=not self.rule("owners_exact", False))
        or_terms = strict.or_parent_terms(node) if node is not None else None
        with self.lock:
            cutoff = now() - lag
            lag_all = self.lag_window > 0
            cands: Iterable[FileRec]
            pins = q.parent_candidates(node) if node is not None else None
            if pins is not None:
                ids: set[str] = set()
                for p in pins:
                    ids |= self.children.get(self._resolve(p, email), set())
            else:
                ids = set(self.files)
            if lag_all:  # every file as it was at a random moment of the lag window
                self._hist_prune()
                ids |= set(self.history)
                cands = [r for r in (self._lagged(i) for i in ids) if r is not None]
            else:
                cands = [self.files[i] for i in ids if i in self.files]
            memo: dict = {}
            resolve = lambda s: self._resolve(s, email)  # noqa: E731
            hits = []
            for rec in cands:
                if (
                    rec.is_root
                    or (lag > 0 and not lag_all and rec.created > cutoff)
                    or self._role(rec, email, memo) == 0
                ):
                    continue
                if node is None or q.evaluate(node, _View(rec, self, email, memo), resolve, email):
                    hits.append((self._sort_key(rec, order), rec))
            if or_terms is not None:  # an OR of folders: maybe only some folders' files (FaultConfig.or_listing)
                shown = strict.or_listing_folders(
                    self.rule("or_listing", "all"),
                    [resolve(f) for f in or_terms],
                    email,
                    lambda fid: self.files[fid].owner if fid in self.files else "",
                )
                hits = [h for h in hits if shown.intersection(h[1].parents)]
            hits.sort(key=lambda h: h[0])
            if after is not None:
                start = bisect.bisect_right([h[0] for h in hits], after)
                hits = hits[start:]
            page = hits[:page_size]
            token = None
            if len(hits) > page_size:
                token = b64({"h": fingerprint, "k": self._raw_key(page[-1][1], order)})
            return [self.resource(rec, email, memo) for _, rec in page], token

    @staticmethod
    def _raw_key(rec: FileRec, order: builtins.list[tuple[str, bool]]) -> builtins.list:
        return [ORDER_KEYS[k](rec) for k, _ in order] + [rec.seq]

    @staticmethod
    def _wrap_key(raw: builtins.list, order: builtins.list[tuple[str, bool]]) -> tuple:
        if len(raw) != len(order) + 1:
            raise ValueError("bad key")
        return tuple(Desc(v) if desc else v for v, (_, desc) in zip(raw, order)) + (raw[-1],)

    def _sort_key(self, rec: FileRec, order: builtins.list[tuple[str, bool]]) -> tuple:
        return self._wrap_key(self._raw_key(rec, order), order)
