"""Child process for the bounded-memory test: upload then download a large stream.

Runs in its own interpreter so tracemalloc sees only the client side (the fake
server, holding the whole payload, lives in the parent test process).
Prints one JSON line: sizes, hashes and tracemalloc peaks.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
import tracemalloc

from google.oauth2.credentials import Credentials

from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy


class PatternStream(io.RawIOBase):
    """Deterministic pseudo-random bytes generated on the fly (never all in memory)."""

    def __init__(self, size: int, seed: int, block: int = 256 * 1024) -> None:
        self._left = size
        self._rng = random.Random(seed)
        self._block = block
        self._pending = b""
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        out = bytearray()
        while len(out) < n and (self._pending or self._left):
            if not self._pending:
                take = min(self._block, self._left)
                self._pending = self._rng.randbytes(take)
                self._left -= take
            piece, self._pending = self._pending[: n - len(out)], self._pending[n - len(out) :]
            out += piece
        data = bytes(out)
        self.sha.update(data)
        return data


class HashSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def main() -> None:
    base_url, email, size, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    policy = RetryPolicy(max_attempts=15, initial_wait=0.001, max_wait=0.01, max_retry_after=0.01)
    api = DriveApi(Credentials(token=fake_token_for(email)), base_url=base_url, chunk_size=chunk, retry=policy)
    folder = api.create_folder("big")
    source = PatternStream(size, seed=20240501)
    tracemalloc.start()
    meta = api.upload_stream("blob.bin", source, size, parent_id=folder["id"])
    _, upload_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    sink = HashSink()
    got = api.download_to(meta["id"], sink)
    _, download_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "uploaded_sha256": source.sha.hexdigest(),
                "downloaded_sha256": sink.sha.hexdigest(),
                "downloaded_bytes": got,
                "sink_bytes": sink.size,
                "remote_size": int(meta.get("size", -1)),
                "upload_peak": upload_peak,
                "download_peak": download_peak,
                "calls": api.calls.snapshot(),
                "retries": api.calls.retries,
            }
        )
    )


if __name__ == "__main__":
    main()
