"""`doctor --peer` through the contract: a failed step is reported, and the clean-up after it never raises."""

from __future__ import annotations

from collections.abc import Sequence

from syft_flwr_gdrive.ops.peer_roundtrip import check_peer
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport


class StorageDownOnDelete(MemoryTransport):
    def delete(self, handles: Sequence[str]) -> None:
        raise TransportError("storage is down")


def test_a_peer_that_never_answers_fails_the_list_step_and_the_clean_up_failure_is_swallowed():
    transport = StorageDownOnDelete("a@x.com", MemoryHub())
    steps = check_peer(transport, "b@x.com", timeout=0.2, poll=0.01, sleep=lambda _: None)
    assert [(s.name, s.ok) for s in steps] == [("share", True), ("send", True), ("list", False)]
    assert "no ping from b@x.com" in steps[-1].detail
