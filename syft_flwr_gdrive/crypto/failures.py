"""What the crypto layer raises, in one module every part of it imports.

The chunk stream, the keys, the pins and both seals all refuse with ``CryptoError``, and the
mailbox tells a missing key (wait for the peer) from a bad message (drop it): neither belongs
to one of those parts. (Not ``errors.py``: ``transport/drive/errors.py`` has that name.)
"""

from __future__ import annotations


class CryptoError(ValueError):
    """A sealed message cannot be opened or verified; the text says why."""


class MissingPeerKey(LookupError):
    """No (trusted) public key is known for a peer yet."""
