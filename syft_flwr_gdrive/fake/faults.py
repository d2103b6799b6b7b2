"""Fault injection: latency, Drive error bodies, dropped connections, list lag, quota, bandwidth.

Real Drive is slow, rate limited, eventually consistent and occasionally drops
connections; code that only ever met a perfect server breaks on first contact. The
:class:`FaultConfig` is live: tests (or the ``/_fake/faults`` admin route) change it while
the server runs and the next request sees the new values. Draws come from one seeded
``random.Random`` so a sequential client sees a reproducible fault sequence.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from .exceptions import ApiError
from .links import MIN_RATE
from .links import UP
from .links import Links
from .links import slice_bytes

#: injectable error kinds: name -> (HTTP status, Drive reason)
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "429": (429, "rateLimitExceeded"),
    "403": (403, "userRateLimitExceeded"),
    "500": (500, "backendError"),
    "503": (503, "backendError"),
}

#: Drive's answer to an upload over its daily upload cap (field reports; see FaultConfig.upload_bytes_per_day)
DAILY_UPLOAD_CAP_MESSAGE = "User rate limit exceeded."
DAY = 86400.0

#: quota units per call class (Drive's published per-method costs)
COSTS: dict[str, int] = {"list": 100, "get": 5, "download": 200, "modify": 50}

_MESSAGES = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "backendError": "Backend Error",
}


@dataclass
class FaultConfig:
    """What can go wrong, and how often. All rates are probabilities in [0, 1]."""

    latency: float = 0.0  #: seconds added to every Drive HTTP request
    error_rate: float = 0.0  #: chance that an API call answers one of ``error_kinds``
    error_kinds: list[str] = field(default_factory=lambda: list(ERROR_KINDS))
    #: share of injected 5xx errors answered *after* the call took effect (as Drive sometimes does)
    error_after_fraction: float = 0.0
    drop_rate: float = 0.0  #: chance that the connection is closed without an answer
    #: share of drops that happen *after* the call took effect (the client cannot tell which)
    drop_after_fraction: float = 0.5
    list_lag: float = 0.0  #: seconds before a new file shows up in files.list / changes.list
    quota_units_per_min: int = 0  #: per-user budget (list 100, get 5, download 200, modify 50); 0 = unlimited
    quota_status: int = 403  #: 403 userRateLimitExceeded or 429 rateLimitExceeded when over budget
    seed: int | None = None  #: seed of the fault random stream (None: nondeterministic)
    #: route names faults apply to (e.g. ``["files.create", "upload.chunk"]``); None means all
    routes: list[str] | None = None
    #: each account's uplink in bytes/s, shared by all its requests: upload bodies (media, multipart,
    #: resumable chunks) are read no faster (0: unlimited; else >= 1000). Applies to every route.
    upload_bytes_per_s: float = 0.0
    #: each account's downlink in bytes/s, shared by all its requests: ``alt=media`` bodies (whole or
    #: ranged) are sent no faster (0: unlimited; else >= 1000). Applies to every route.
    download_bytes_per_s: float = 0.0
    #: each account's daily upload cap in body bytes, as Drive's 750 GB per account in 24 hours (0: none): an
    #: upload whose body would take the account's bytes of the day past it answers 403 userRateLimitExceeded
    #: "User rate limit exceeded." (Drive's answer at its cap, by field reports); the day starts at the
    #: account's first upload, and ``reset_quota()`` starts a new one
    upload_bytes_per_day: int = 0
    # -- the strict profile: what Drive's documentation allows beyond the happy path ------------
    #: ``list_lag`` also delays updates and deletes, each listing drawing a random age per file
    #: in [0, list_lag] (reads are not monotonic: a later list may show an older state)
    lag_all: bool = False
    write_rate: float = 0.0  #: sustained writes per second per account (0: unlimited)
    write_burst: int = 10  #: writes an idle account may make at once before ``write_rate`` applies
    #: answer to a write over the limit: 403 userRateLimitExceeded, 429 rateLimitExceeded, 0 either
    write_limit_status: int = 403
    hide_owner_emails: bool = False  #: ``User.emailAddress`` absent for everyone but the viewer
    max_query_terms: int = 0  #: more terms in ``q`` answer 400 "The query is too complex" (0: no limit)
    reject_mixed_or: bool = False  #: ``or`` between different collections (parents/owners/properties...) is too complex
    gmail_dots: bool = False  #: gmail addresses equal modulo dots/googlemail.com; Drive reports the registered form
    #: Workspace domains whose users transfer ownership within the domain without acceptance
    workspace_domains: list[str] = field(default_factory=list)
    # -- what field reports describe Drive doing (docs/drive-assumptions.md) -----------------------
    #: a ``files.list`` whose ``q`` ORs two or more ``'<id>' in parents`` terms answers, with
    #: ``incompleteSearch: false`` and no error, the files of: every folder ("all"), the first folder
    #: named ("first"), none ("none"), or the folders the caller owns plus a fixed per-account subset of
    #: the others, for some accounts none of them ("subset"; rclone #3114, #4289, #9810, Google 149522397)
    or_listing: str = "all"
    own_properties_search: bool = False  #: ``properties has`` matches only files the caller owns
    reserved_ids_owned: bool = False  #: a generated id takes a create only from the account that generated it
    reserved_id_ttl: float = 0.0  #: seconds a generated id stays usable for a create (0: forever)
    owners_exact: bool = False  #: ``'x' in owners`` matches only the owner's registered address, not a variant
    multipart_max_bytes: int = 0  #: ``uploadType=multipart`` bodies above this answer 413 (0: no limit)
    global_batch: bool = True  #: the global ``/batch`` endpoint (retired by Google in 2020) still answers
    share_rate: float = 0.0  #: sustained ``permissions.create`` per second per account (0: unlimited)
    share_burst: int = 10  #: shares an idle account may make at once before ``share_rate`` applies

    def validate(self) -> FaultConfig:
        for name in ("error_rate", "error_after_fraction", "drop_rate", "drop_after_fraction"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {v!r}")
        for name in ("latency", "list_lag"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if int(self.quota_units_per_min) < 0:
            raise ValueError("quota_units_per_min must be >= 0")
        if int(self.quota_status) not in (403, 429):
            raise ValueError("quota_status must be 403 or 429")
        if int(self.write_limit_status) not in (0, 403, 429):
            raise ValueError("write_limit_status must be 0 (either), 403 or 429")
        if float(self.write_rate) < 0 or int(self.write_burst) < 1:
            raise ValueError("write_rate must be >= 0 and write_burst >= 1")
        if int(self.max_query_terms) < 0:
            raise ValueError("max_query_terms must be >= 0")
        if self.or_listing not in OR_LISTINGS:
            raise ValueError(f"or_listing must be one of {sorted(OR_LISTINGS)}, got {self.or_listing!r}")
        if float(self.reserved_id_ttl) < 0 or int(self.multipart_max_bytes) < 0:
            raise ValueError("reserved_id_ttl and multipart_max_bytes must be >= 0")
        if float(self.share_rate) < 0 or int(self.share_burst) < 1:
            raise ValueError("share_rate must be >= 0 and share_burst >= 1")
        if int(self.upload_bytes_per_day) < 0:
            raise ValueError("upload_bytes_per_day must be >= 0 (0: no cap)")
        for name in ("upload_bytes_per_s", "download_bytes_per_s"):
            setattr(self, name, _link_rate(name, getattr(self, name)))
        self.workspace_domains = [str(d).lower() for d in self.workspace_domains]
        self.error_kinds = [str(k) for k in self.error_kinds]
        bad = [k for k in self.error_kinds if k not in ERROR_KINDS]
        if bad or not self.error_kinds:
            raise ValueError(f"error_kinds must be a non-empty subset of {sorted(ERROR_KINDS)}, got {self.error_kinds}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def for_profile(cls, profile: str = "default", **overrides: Any) -> FaultConfig:
        """The settings of a named profile (``default`` or ``strict``), with ``overrides`` applied."""
        if profile not in PROFILES:
            raise ValueError(f"unknown Drive profile {profile!r}; choose one of {sorted(PROFILES)}")
        return cls(**{**PROFILES[profile], **overrides}).validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data).validate()


OR_LISTINGS = ("all", "first", "none", "subset")  # see FaultConfig.or_listing
MULTIPART_LIMIT = 5 * 1024 * 1024  # Drive: "uploadType=multipart ... for small files (5 MB or less)"
# Nothing documents how long an id from files.generateIds stays usable. The strict profile gives it two
# minutes: longer than the product ever keeps one before its create (ids reserved just before use, a
# promised id used by the stream's next file, within a round), shorter than the gaps where it cannot know
# (a stream idle between runs, a slow round, a client waiting for its server), so the strict suite, whose
# runs last one to four minutes, meets expired ids and the fallbacks for them in its own federations.
RESERVED_ID_TTL = 120.0

#: Named profiles. ``strict`` grants only what Drive's documentation promises (see
#: docs/drive-assumptions.md) and does what field reports say Drive does beyond it: eventual
#: consistency for every change, a sustained write limit and a sharing limit per account, hidden
#: owner emails, query-complexity rejections, OR'ed parent listings that return a subset, property
#: search over the caller's own files only, reserved ids that belong to their account and expire,
#: owners matched by the registered address only, gmail address equivalence, Workspace ownership
#: transfer without acceptance, small multipart uploads and no global batch endpoint.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": {
        "list_lag": 1.0,
        "lag_all": True,
        "write_rate": 3.0,
        "write_burst": 10,
        "write_limit_status": 0,
        "hide_owner_emails": True,
        "max_query_terms": 60,
        "reject_mixed_or": True,
        "gmail_dots": True,
        "workspace_domains": ["workspace.example"],
        "or_listing": "subset",
        "own_properties_search": True,
        "reserved_ids_owned": True,
        "reserved_id_ttl": RESERVED_ID_TTL,
        "owners_exact": True,
        "multipart_max_bytes": MULTIPART_LIMIT,
        "global_batch": False,
        "share_rate": 1.0,
        "share_burst": 30,
    },
}


@dataclass
class CallFault:
    """An error to answer for one API call; ``after`` means: apply the call first."""

    error: ApiError
    after: bool = False


def _link_rate(name: str, value: Any) -> float:
    """A link rate field as a float, or a ValueError that names the field and what it accepts."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or 0 < value < MIN_RATE:
        raise ValueError(
            f"{name} must be a number of bytes per second: 0 (unlimited) or at least {MIN_RATE:.0f}, got {value!r}"
        )
    return float(value)


def _error(status: int, reason: str) -> ApiError:
    return ApiError(status, reason, _MESSAGES.get(reason, reason))


class FaultEngine:
    """Draws faults from a live :class:`FaultConfig` and keeps per-user quota windows."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = (config or FaultConfig()).validate()
        self._seed_seen = self._config.seed
        self._rng = random.Random(self._config.seed)
        self._usage: dict[str, collections.deque[tuple[float, int]]] = {}
        self._usage_sum: dict[str, int] = {}
        self.injected: collections.Counter[str] = collections.Counter()
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, at) for the write limit
        self._share_buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, at) for the sharing limit
        self.shares_throttled: collections.Counter[str] = collections.Counter()  # refused by the sharing limit
        self.writes: collections.Counter[str] = collections.Counter()  # accepted writes per user
        self.writes_throttled: collections.Counter[str] = collections.Counter()  # refused by the write limit
        self.links = Links()  # each account's uplink and downlink (upload/download_bytes_per_s)
        self._uploaded_today: dict[str, tuple[float, int]] = {}  # user -> (start of its day, bytes) for the cap
        self._halt = threading.Event()  # set while the server stops: link waits end at once

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, cfg: FaultConfig) -> None:
        cfg.validate()
        with self._lock:
            self._config = cfg
            self._reseed_locked(force=True)

    def _reseed_locked(self, force: bool = False) -> None:
        if force or self._config.seed != self._seed_seen:
            self._seed_seen = self._config.seed
            self._rng = random.Random(self._config.seed)

    def _applies(self, route: str) -> bool:
        routes = self._config.routes
        return routes is None or route in routes

    def transport(self, route: str) -> tuple[float, str | None]:
        """(latency seconds, drop phase None/"before"/"after") for one HTTP request."""
        cfg = self._config
        if not self._applies(route):
            return 0.0, None
        with self._lock:
            self._reseed_locked()
            drop = None
            if cfg.drop_rate > 0 and self._rng.random() < cfg.drop_rate:
                drop = "after" if self._rng.random() < cfg.drop_after_fraction else "before"
                self.injected[f"drop_{drop}"] += 1
            if cfg.latency > 0:
                self.injected["latency"] += 1
        return float(cfg.latency), drop

    def call(self, route: str) -> CallFault | None:
        """Maybe an injected error for one API call (batch parts are calls too)."""
        cfg = self._config
        if cfg.error_rate <= 0 or not self._applies(route):
            return None
        with self._lock:
            self._reseed_locked()
            if self._rng.random() >= cfg.error_rate:
                return None
            kind = cfg.error_kinds[self._rng.randrange(len(cfg.error_kinds))]
            status, reason = ERROR_KINDS[kind]
            after = status >= 500 and self._rng.random() < cfg.error_after_fraction
            self.injected[f"error_{kind}"] += 1
        return CallFault(_error(status, reason), after)

    def charge(self, user: str, cost_class: str, now: float | None = None) -> ApiError | None:
        """Spend quota units for ``user``; the error to answer when the budget is exhausted."""
        cfg = self._config
        limit = int(cfg.quota_units_per_min)
        if limit <= 0:
            return None
        cost = COSTS[cost_class]
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._usage.setdefault(user, collections.deque())
            total = self._usage_sum.get(user, 0)
            while window and window[0][0] <= now - 60.0:
                total -= window.popleft()[1]
            if total + cost > limit:
                self._usage_sum[user] = total
                self.injected["quota"] += 1
                if int(cfg.quota_status) == 429:
                    return _error(429, "rateLimitExceeded")
                return ApiError(
                    403,
                    "userRateLimitExceeded",
                    f"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' "
                    f"({limit} units) of service 'drive.googleapis.com'.",
                )
            window.append((now, cost))
            self._usage_sum[user] = total + cost
        return None

    def charge_write(self, user: str, now: float | None = None) -> ApiError | None:
        """Take one write from ``user``'s bucket (``write_rate``/s, ``write_burst`` deep); the error if empty."""
        cfg = self._config
        rate = float(cfg.write_rate)
        now = time.monotonic() if now is None else now
        with self._lock:
            if rate <= 0:
                self.writes[user] += 1
                return None
            burst = float(cfg.write_burst)
            tokens, at = self._buckets.get(user, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[user] = (tokens, now)
                self.writes_throttled[user] += 1
                self.injected["write_limit"] += 1
                status = int(cfg.write_limit_status) or (403 if self._rng.random() < 0.5 else 429)
                if status == 429:
                    return _error(429, "rateLimitExceeded")
                return _error(403, "userRateLimitExceeded")  # not the daily cap's wording: this one passes
            self._buckets[user] = (tokens - 1.0, now)
            self.writes[user] += 1
        return None

    def charge_share(self, user: str, now: float | None = None) -> ApiError | None:
        """Take one share from ``user``'s sharing bucket (``share_rate``/s, ``share_burst`` deep); Drive's
        403 ``sharingRateLimitExceeded`` when it is empty (a limit of its own, besides the write limit)."""
        rate = float(self._config.share_rate)
        if rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            burst = float(self._config.share_burst)
            tokens, at = self._share_buckets.get(user, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._share_buckets[user] = (tokens, now)
                self.shares_throttled[user] += 1
                self.injected["sharing_limit"] += 1
                return ApiError(
                    403,
                    "sharingRateLimitExceeded",
                    'Rate limit exceeded. User message: "Sorry, you have exceeded your sharing quota."',
                )
            self._share_buckets[user] = (tokens - 1.0, now)
        return None

    def charge_upload(self, user: str, n: int, now: float | None = None) -> ApiError | None:
        """Count an upload body of ``n`` bytes against ``user``'s daily cap; Drive's 403 if it would go past it."""
        cap = int(self._config.upload_bytes_per_day)
        if cap <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            start, used = self._uploaded_today.get(user, (now, 0))
            if now - start >= DAY:
                start, used = now, 0
            if used + n > cap:
                self._uploaded_today[user] = (start, used)
                self.injected["daily_upload_cap"] += 1
                return ApiError(403, "userRateLimitExceeded", DAILY_UPLOAD_CAP_MESSAGE)
            self._uploaded_today[user] = (start, used + n)
        return None

    def pace(self, user: str, direction: str, n: int) -> int:
        """Let up to ``n`` body bytes of ``user`` cross their ``direction`` link (``links.UP``/``DOWN``).

        Returns how many may pass now: all ``n`` when the link is unlimited, else one slice, after
        waiting (no lock held) until the link has carried it. Every wait ends when the server stops."""
        rate = float(self._config.upload_bytes_per_s if direction == UP else self._config.download_bytes_per_s)
        if rate > 0:
            n = min(n, slice_bytes(rate))
        due = self.links.reserve(user, direction, n, rate)
        if rate > 0:
            self._wait_until(due)
        return n

    def _wait_until(self, due: float) -> None:
        while not self._halt.is_set():
            left = due - self.links.clock()
            if left <= 0:
                return
            self._halt.wait(left)

    def halt_waits(self, halted: bool = True) -> None:
        """End every link wait at once (server stopping), or allow them again (server starting)."""
        if halted:
            self._halt.set()
        else:
            self._halt.clear()

    def link_counts(self) -> dict[str, dict[str, int]]:
        """Body bytes per account on each link: ``{"up": {user: n}, "down": {user: n}}``."""
        return self.links.counts()

    def write_counts(self) -> dict[str, dict[str, int]]:
        """Writes per user: accepted, and refused by the sustained write limit."""
        with self._lock:
            return {
                "accepted": dict(self.writes),
                "throttled": dict(self.writes_throttled),
                "shares_throttled": dict(self.shares_throttled),
            }

    def reset_quota(self) -> None:
        with self._lock:
            self._usage.clear()
            self._usage_sum.clear()
            self._buckets.clear()
            self._share_buckets.clear()
            self._uploaded_today.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)
