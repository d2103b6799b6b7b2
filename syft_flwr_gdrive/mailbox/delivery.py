"""What a poll hands its caller (verified deliveries, refusals the caller may owe an answer for, the listing),
and the rule the caller hands the poll (``Accept``).

Kept apart from the readers that make them (``messages``, ``bundles``) so that both readers and the
mailbox share these types without importing one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import BinaryIO

from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.skips import Verdict
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing

# The caller's rule, asked before anything is downloaded: None to go on; a reason (str) to leave a message for
# now (asked again at the next poll); or a ``Verdict``: refuse it for good (it can never be acted on: not for me),
# defer it, or hold it (the caller is acting on it already).
Accept = Callable[[Routing], str | Verdict | None]


@dataclass(frozen=True)
class Delivery:
    """A verified message ready to act on; its body is in memory or in a temporary file."""

    envelope: Envelope
    posting: Posting
    body: BinaryIO
    offset: int
    private: dict[str, Any] | None = (
        None  # a bundle part's own fields (its Flower metadata); None for a file of its own
    )

    def open_payload(self) -> BinaryIO:
        """The body positioned at the payload's first byte (``envelope.size`` bytes follow)."""
        self.body.seek(self.offset)
        return self.body

    @property
    def payload(self) -> bytes:
        """The whole payload in memory (fine for small messages)."""
        return self.open_payload().read(self.envelope.size)

    def close(self) -> None:
        self.body.close()


@dataclass(frozen=True)
class Refusal:
    """A message from a peer refused unread (over the size limit); the caller may owe its sender an answer."""

    routing: Routing
    reason: str


@dataclass(frozen=True)
class PollResult:
    deliveries: tuple[Delivery, ...]
    listing: Listing
    refused: tuple[Refusal, ...] = ()  # each reported once
    parts: frozenset[str] = frozenset()  # ids of my parts in bundles still listed

    def inbound_message_ids(self) -> set[str]:
        """Ids of everything addressed to me that is still stored (handled or not), bundle parts included."""
        return {p.routing.message_id for p in self.listing.inbound if p.routing is not None} | self.parts
