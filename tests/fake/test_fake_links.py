"""Bandwidth: each account's uplink and downlink (``upload_bytes_per_s``, ``download_bytes_per_s``).

Timing assertions are lower bounds only (a limited transfer cannot be faster than size / rate,
whatever the machine's load); whether two accounts share a link is shown by the bucket itself
on an explicit clock and by the fake's own byte accounting.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.fake.__main__ import config_from
from syft_flwr_gdrive.fake.__main__ import main
from syft_flwr_gdrive.fake.__main__ import parse_args
from syft_flwr_gdrive.fake.faults import FaultEngine
from syft_flwr_gdrive.fake.links import DOWN
from syft_flwr_gdrive.fake.links import UP
from syft_flwr_gdrive.fake.links import Links
from syft_flwr_gdrive.fake.links import slice_bytes
from tests.helpers.fake_service import drive_api_for

ALICE, BOB = "alice@example.com", "bob@example.com"
MiB = 1 << 20
RATE = 8e6  # bytes/s: 2 MiB take >= 0.26 s


def _payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def _admin(server, method: str, body: dict) -> tuple[int, dict]:
    """(status, JSON answer) of the fake's ``/_fake/faults`` admin route."""
    req = urllib.request.Request(
        server.url + "_fake/faults",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


# ---------------------------------------------------------------------------- through the real client


@pytest.mark.parametrize("path", ["multipart", "resumable"])
def test_limited_upload_takes_at_least_size_over_rate(server, path):
    server.faults.upload_bytes_per_s = RATE
    data = _payload(2 * MiB)
    if path == "multipart":
        api = drive_api_for(server.url, ALICE)
        f, took = _timed(api.upload_bytes, "up.bin", data, parent_id=None)
    else:  # 4 chunks of 512 KiB, each PUT paced on its own
        api = drive_api_for(server.url, ALICE, chunk_size=512 * 1024)
        f, took = _timed(api.upload_stream, "up.bin", io.BytesIO(data), len(data), parent_id=None)
    assert took >= len(data) / RATE
    assert server.stats()["links"]["up"][ALICE] >= len(data)
    assert api.download_bytes(f["id"]) == data  # pacing loses nothing


@pytest.mark.parametrize("ranged", [False, True])
def test_limited_download_takes_at_least_size_over_rate(server, ranged):
    api = drive_api_for(server.url, ALICE, chunk_size=512 * 1024)
    data = _payload(2 * MiB)
    fid = api.upload_bytes("down.bin", data, parent_id=None)["id"]
    server.faults.download_bytes_per_s = RATE
    if ranged:  # DriveApi.download_to asks for 512 KiB ranges (206), each paced
        out = io.BytesIO()
        _, took = _timed(api.download_to, fid, out)
        got = out.getvalue()
    else:
        got, took = _timed(api.download_bytes, fid)
    assert got == data
    assert took >= len(data) / RATE
    assert server.stats()["links"]["down"][ALICE] == len(data)


def test_accounts_are_counted_on_their_own_links(server):
    server.faults.upload_bytes_per_s = RATE
    data = _payload(MiB)
    took: dict[str, float] = {}

    def upload(email: str) -> None:
        _, took[email] = _timed(drive_api_for(server.url, email).upload_bytes, "p.bin", data, parent_id=None)

    threads = [threading.Thread(target=upload, args=(who,)) for who in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    up = server.stats()["links"]["up"]
    assert set(up) == {ALICE, BOB} and all(n >= len(data) for n in up.values())
    assert all(took[who] >= len(data) / RATE for who in (ALICE, BOB))


def test_a_live_change_applies_to_the_next_request(server):
    api = drive_api_for(server.url, ALICE)
    data = _payload(2 * MiB)
    fid = api.upload_bytes("live.bin", data, parent_id=None)["id"]
    status, cfg = _admin(server, "PATCH", {"download_bytes_per_s": RATE})
    assert status == 200 and cfg["download_bytes_per_s"] == RATE and server.faults.download_bytes_per_s == RATE
    got, took = _timed(api.download_bytes, fid)
    assert got == data and took >= len(data) / RATE
    status, cfg = _admin(server, "PATCH", {"download_bytes_per_s": 0})
    assert status == 200 and cfg["download_bytes_per_s"] == 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("upload_bytes_per_s", -1),
        ("upload_bytes_per_s", "fast"),
        ("download_bytes_per_s", True),
        ("download_bytes_per_s", 10),  # below the 1000 B/s floor: one slice would wait minutes
        ("download_bytes_per_s", None),
    ],
)
def test_bad_rates_get_a_clear_error(server, field, value):
    status, body = _admin(server, "PATCH", {field: value})
    assert status == 400
    message = body["error"]["message"]
    assert field in message and "bytes per second" in message and repr(value) in message
    assert getattr(server.faults, field) == 0  # the live config is unchanged
    with pytest.raises(ValueError, match=field):
        FaultConfig(**{field: value}).validate()


def test_the_fake_cli_sets_links_and_refuses_bad_rates(capsys):
    cfg = config_from(parse_args(["--upload-bytes-per-s", "2e6", "--download-bytes-per-s", "5e5"]))
    assert (cfg.upload_bytes_per_s, cfg.download_bytes_per_s) == (2e6, 5e5)
    assert main(["--download-bytes-per-s", "-5"]) == 2  # refused before any server starts
    assert "download_bytes_per_s must be a number of bytes per second" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the buckets, on an explicit clock


def test_each_account_and_direction_has_its_own_link():
    links = Links(clock=lambda: 100.0)
    assert links.reserve(ALICE, UP, 1000, 1000.0, now=0.0) == 1.0
    assert links.reserve(BOB, UP, 1000, 1000.0, now=0.0) == 1.0  # not queued behind alice
    assert links.reserve(ALICE, DOWN, 1000, 1000.0, now=0.0) == 1.0  # her downlink is not her uplink
    assert links.reserve(ALICE, UP, 500, 1000.0, now=0.0) == 1.5  # her parallel requests share one uplink
    assert links.reserve(ALICE, UP, 500, 1000.0, now=1.52) == 2.0  # a short gap: the fake's own work, not idle
    assert links.reserve(ALICE, UP, 500, 1000.0, now=5.0) == 5.5  # an idle link grants no credit
    assert links.counts() == {"up": {ALICE: 2500, BOB: 1000}, "down": {ALICE: 1000}}


def test_a_changed_rate_starts_the_link_afresh():
    links = Links()
    assert links.reserve(ALICE, UP, 4000, 1000.0, now=0.0) == 4.0
    assert links.reserve(ALICE, UP, 4000, 4000.0, now=1.0) == 2.0  # no backlog from the old rate
    assert links.reserve(ALICE, UP, 4000, 0.0, now=1.0) == 1.0  # unlimited: due at once


def test_zero_means_unlimited_and_a_limit_paces_in_slices(mocker):
    engine = FaultEngine(FaultConfig())
    wait = mocker.patch.object(engine, "_wait_until")
    assert engine.pace(ALICE, UP, 8 * MiB) == 8 * MiB  # the whole read at once, no wait
    assert engine.pace(ALICE, DOWN, 8 * MiB) == 8 * MiB
    wait.assert_not_called()
    engine.config = FaultConfig(upload_bytes_per_s=100e6, download_bytes_per_s=2e6)
    assert engine.pace(ALICE, UP, 8 * MiB) == slice_bytes(100e6) == MiB
    assert engine.pace(ALICE, DOWN, 8 * MiB) == slice_bytes(2e6) == 100_000
    assert wait.call_count == 2
    assert engine.link_counts() == {"up": {ALICE: 8 * MiB + MiB}, "down": {ALICE: 8 * MiB + 100_000}}


def test_stopping_ends_a_link_wait():
    engine = FaultEngine(FaultConfig(download_bytes_per_s=1000.0))
    engine.links = Links(clock=lambda: 0.0)  # a frozen clock: without the halt this wait never ends
    t = threading.Thread(target=engine.pace, args=(ALICE, DOWN, 16 * 1024), daemon=True)
    t.start()
    engine.halt_waits()
    t.join(30)
    assert not t.is_alive()
