"""DriveApi's keep-alive connections against the real fake Drive server (transport/drive/connections.py).

A connection the server closed while idle must neither lose nor duplicate a create, and every
request must be counted once by the call counters (and by the server).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Any

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive import api as api_module
from syft_flwr_gdrive.transport.drive import connections
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from tests.helpers.fake_service import drive_api_for

POLICY = RetryPolicy(max_attempts=5, max_total=10, initial_wait=0.001, max_wait=0.01, max_retry_after=0.01)
ALICE = "alice@example.com"
SERVER_IDLE_TIMEOUT = 0.3  # the fake closes a keep-alive idle this long


def counting_channels(api: DriveApi) -> list[Any]:
    """Record every channel (connection) the DriveApi opens."""
    made: list[Any] = []
    original = api._new_http

    def new_http() -> Any:
        made.append(original())
        return made[-1]

    api._new_http = new_http  # type: ignore[method-assign]
    return made


def wait_until_server_closed(channel: Any) -> None:
    """Until the server's close of the channel's idle connection has arrived (it is readable)."""
    end = time.monotonic() + 5
    while not any(connections._readable(s) for s in connections._sockets(channel)):
        assert time.monotonic() < end, "the fake never closed the idle connection"
        time.sleep(0.05)


@pytest.fixture
def srv():
    with FakeDriveServer(idle_timeout=SERVER_IDLE_TIMEOUT) as server:
        yield server


def test_reads_reuse_one_connection_and_close_closes_it(srv):
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    made = counting_channels(api)
    for _ in range(5):
        api.list_files("trashed = false")
    assert len(made) == 1 and api._channels.idle_count() == 1
    assert api.calls.snapshot() == {"files.list": 5} and srv.stats()["requests"] == {"GET files.list": 5}
    sock = connections._sockets(made[0])[0]
    api.close()
    assert sock.fileno() == -1 and api._channels.idle_count() == 0
    api.list_files("trashed = false")  # still works after close, on a connection it does not keep
    assert len(made) == 2 and api._channels.idle_count() == 0 and not connections._sockets(made[1])


def test_creates_go_on_a_new_connection(srv):
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    made = counting_channels(api)
    (file_id,) = api.generate_ids(1)
    api.upload_bytes("m", b"1", parent_id=None, file_id=file_id)
    api.create_folder("f")
    api.list_files("trashed = false")
    assert len(made) == 3  # generateIds; each create its own; the list reuses a kept one
    assert api._channels.idle_count() == 1  # a create's connection is not kept beside an idle one


def test_a_connection_closed_while_idle_is_not_reused(srv):
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    made = counting_channels(api)
    (file_id,) = api.generate_ids(1)
    wait_until_server_closed(made[0])
    api.list_files("trashed = false")  # not sent on the closed connection: no dropped connection, no retry
    assert len(made) == 2 and api.calls.retries == 0


def test_a_connection_idle_past_the_bound_is_not_reused(srv):
    now = [0.0]
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    api._channels = connections.ConnectionPool(lambda: api._new_http(), max_idle_s=1.0, clock=lambda: now[0])
    made = counting_channels(api)
    api.list_files("trashed = false")
    now[0] = 0.9
    api.list_files("trashed = false")
    assert len(made) == 1
    now[0] = 2.0  # idle 1.1 s since the last put back
    api.list_files("trashed = false")
    assert len(made) == 2


def test_a_create_on_a_connection_the_server_closed_is_made_once(srv, monkeypatch):
    """The race the pool's checks leave (a close that arrives while the request is on the wire), forced:
    the request is sent on a connection the server has closed. The retry policy sees a dropped
    connection, retries on a new connection, and the file exists once; every send is counted once."""
    monkeypatch.setattr(api_module, "FRESH_CONNECTION_METHODS", frozenset())
    monkeypatch.setattr(connections, "_readable", lambda sock: False)
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    made = counting_channels(api)
    (file_id,) = api.generate_ids(1)
    closed = made[0]
    real_sock = connections._sockets(closed)[0]
    time.sleep(SERVER_IDLE_TIMEOUT * 3)  # the fake closes it meanwhile
    created = api.upload_bytes("reply", b"payload", parent_id=None, file_id=file_id)

    assert created["id"] == file_id
    assert [f["id"] for f in api.list_files("name = 'reply'")] == [file_id]
    assert api.download_bytes(file_id) == b"payload"
    assert real_sock.fileno() == -1  # the failed attempt closed the stale connection
    calls, retries = api.calls.snapshot(), api.calls.retry_snapshot()
    server = srv.stats()["requests"]
    assert server["POST upload.create"] == 1  # the server made it once
    # the client counts each send: one lost on the closed connection (a retry followed) and the one that arrived
    assert calls["files.create"] == 2 and retries == {"files.create": 1}


def test_threads_never_share_a_connection(srv):
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    in_use: set[int] = set()
    shared: list[int] = []
    lock = threading.Lock()
    original = api._channels.lend

    @contextmanager
    def watched_lend(*, fresh: bool = False):
        with original(fresh=fresh) as channel:
            with lock:
                if id(channel) in in_use:
                    shared.append(id(channel))
                in_use.add(id(channel))
            try:
                yield channel
            finally:
                with lock:
                    in_use.discard(id(channel))

    api._channels.lend = watched_lend  # type: ignore[method-assign]

    def work() -> None:
        for _ in range(10):
            api.list_files("trashed = false")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not shared
    assert api.calls.snapshot() == {"files.list": 60} and srv.stats()["requests"] == {"GET files.list": 60}
    assert api._channels.idle_count() <= connections.MAX_IDLE_CHANNELS
    api.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_does_not_use_its_parents_connections(srv):
    api = drive_api_for(srv.url, ALICE, retry=POLICY)
    made = counting_channels(api)
    api.list_files("trashed = false")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit code
        try:
            api.list_files("trashed = false")
            os._exit(0 if len(made) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    api.list_files("trashed = false")  # the parent's connection still works
    assert len(made) == 1 and api.calls.retries == 0
