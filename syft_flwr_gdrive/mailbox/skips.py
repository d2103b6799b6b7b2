"""One skip policy for every way a posting is read: refuse for good, note for later, or retry at the next poll.

Nothing is deleted that this participant does not own, so a skipped posting stays listed and comes
back at every poll. ``SkipLog`` remembers what was refused (never read again) and what was noted
(one log line per reason, not one per poll). ``judge`` is the one place that says what an error
raised while reading or opening a posting means; every reader hands its errors to
``SkipLog.failed``.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.base.recent import RecentSet
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.mailbox.envelope import EnvelopeError
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import TransportError

logger = logging.getLogger(__name__)

SKIPS_REMEMBERED = 4096  # refused handles and logged (handle, reason) pairs remembered, the newest


class Refused(Exception):
    """A rule failed where only raising can stop the work (a streamed body's header): refuse with this reason."""


class Skip(enum.Enum):
    REFUSE = "refuse"  # for good: never read again, one log line
    DEFER = "defer"  # not yet (a peer's key, the caller's run): asked again at every poll, noted once per reason
    RETRY = "retry"  # the storage failed to deliver it: read again at the next poll
    HELD = "held"  # the caller is acting on it already (a reply whose parts are being fetched): nothing logged


@dataclass(frozen=True)
class Verdict:
    skip: Skip
    reason: str


def judge(exc: BaseException) -> Verdict | None:
    """What an error raised while reading or opening a posting means; None: not the posting's fault (re-raise)."""
    if isinstance(exc, TransportError):
        return Verdict(Skip.RETRY, str(exc))
    if isinstance(exc, MissingPeerKey):
        return Verdict(Skip.DEFER, str(exc))
    if isinstance(exc, Refused):
        return Verdict(Skip.REFUSE, str(exc))
    if isinstance(exc, EnvelopeError):
        return Verdict(Skip.REFUSE, f"invalid envelope: {exc}")
    if isinstance(exc, CryptoError):
        return Verdict(Skip.REFUSE, f"rejected: {exc}")
    if isinstance(exc, Exception):  # a hostile body must never break the poll loop
        return Verdict(Skip.REFUSE, f"rejected: could not be opened ({type(exc).__name__})")
    return None  # KeyboardInterrupt, SystemExit: not ours to swallow


class SkipLog:
    """Postings skipped so far, and the log lines that say why; thread-safe (a poll reads side by side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _refused and _noted
        # Both keep their newest SKIPS_REMEMBERED: a forgotten handle is only vetted (and logged) again; the rules
        # that refused it refuse it again (and a handled message stays handled: the ledger).
        self._refused: RecentSet[str] = RecentSet(SKIPS_REMEMBERED)  # handles refused for good (logged once)
        self._noted: RecentSet[tuple[str, str]] = RecentSet(SKIPS_REMEMBERED)  # (handle, reason) logged, passing

    def is_refused(self, handle: str) -> bool:
        with self._lock:
            return handle in self._refused

    def refuse(self, posting: Posting, reason: str) -> bool:
        """Skip a posting for good, with one log line; True the first time."""
        with self._lock:
            if posting.handle in self._refused:
                return False
            self._refused.add(posting.handle)
        logger.warning(
            "skipping message file %s (%s): %s", posting.handle, printable(posting.name or "?"), printable(reason)
        )
        return True

    def defer(self, posting: Posting, reason: str) -> None:
        """Not now (asked again at the next poll); logged once per reason."""
        key = (posting.handle, reason)
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        logger.info("not acting on message file %s yet: %s", posting.handle, printable(reason))

    def retry(self, posting: Posting, reason: str) -> None:
        """The storage could not hand the body over now: read again at the next poll."""
        logger.info(
            "could not read message file %s yet (%s); will retry on the next poll", posting.handle, printable(reason)
        )

    def failed(self, posting: Posting, exc: BaseException) -> bool:
        """Apply the policy ``judge`` gives for ``exc``; False if the error is not the posting's (re-raise it)."""
        verdict = judge(exc)
        if verdict is None:
            return False
        self.skip(posting, verdict)
        return True

    def skip(self, posting: Posting, verdict: Verdict) -> None:
        """Skip a posting as ``verdict`` says (a caller's ``Accept``, or ``judge``)."""
        if verdict.skip is Skip.REFUSE:
            self.refuse(posting, verdict.reason)
        elif verdict.skip is Skip.DEFER:
            self.defer(posting, verdict.reason)
        elif verdict.skip is Skip.RETRY:
            self.retry(posting, verdict.reason)
        # HELD: the caller has it in hand; nothing to say


def verdict_of(answer: str | Verdict | None) -> Verdict | None:
    """A caller's ``Accept`` answer as a verdict: a bare reason means "not now" (``DEFER``)."""
    if answer is None or isinstance(answer, Verdict):
        return answer
    return Verdict(Skip.DEFER, answer)
