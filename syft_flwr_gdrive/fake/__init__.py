"""A fake Google Drive v3 server for offline tests and the demo.

It speaks enough of the real REST API (files, uploads, downloads, permissions, changes,
batch) that the real ``googleapiclient`` works against it unchanged, with Drive's
semantics (ownership, inherited sharing, eventual consistency of listings, quotas) and
injectable faults. It imports nothing from the rest of the package: stdlib only.
"""

from .drive_server import FakeDriveServer
from .faults import FaultConfig
from .oauth import fake_token_for

__all__ = ["FakeDriveServer", "FaultConfig", "fake_token_for"]
