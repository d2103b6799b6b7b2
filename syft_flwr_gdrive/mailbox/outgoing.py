"""What a push hands the mailbox, and what it gets back: one item per recipient, one result per item.

The caller says what each recipient gets; the mailbox decides how it travels (``Mailbox.push``): one
bundle for the recipients of identical shared content when the transport stores bundles, else one
file each. So an item carries both forms, each made only if it is used: ``payload`` (a file of its
own) and ``shared`` plus ``private`` (its part of a bundle).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.crypto.keys import PublicKeys

MAX_BUNDLE_PAYLOAD = 16 * 1024 * 1024  # larger shared content (many arrays under the blob size) goes one file each


@dataclass(frozen=True)
class Outgoing:
    """One message of a push, to one recipient."""

    recipient: str
    message_id: str
    created_at: float
    ttl: float
    payload: Callable[[], bytes | Sequence[Buffer]]  # its payload as a file of its own (made only if it goes alone)
    codecs: tuple[str, ...] = ()  # of that payload
    shared: Callable[[], bytes] | None = None  # content it may share with the push's others (None: always alone)
    private: Mapping[str, Any] = field(default_factory=dict)  # its own fields, in its part of a bundle
    # Seal it to these keys, not the recipient's trusted ones (always a file of its own): only for an item with
    # no secret in it, to a recipient whose changed key was refused (a stop signal). See ``Sealer.seal``.
    untrusted_keys: PublicKeys | None = None


@dataclass(frozen=True)
class Pushed:
    """How one item went: the handle of the file it is in (a bundle's is every part's), or why it was not sent."""

    message_id: str
    handle: str | None = None
    error: Exception | None = None


# Called once per stored file with the items in it, in the thread that stored it, before the push returns:
# the caller records them as sent at once (a reply may come back before the push's last file is stored).
# If it raises, those items are reported with its error (the caller removed the file).
OnStored = Callable[[str, Sequence[Outgoing]], None]
