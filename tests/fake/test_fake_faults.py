"""Injected faults: error and drop rates, list lag, quota, effects applied before an error.

Rates are checked with loose statistical bounds under a fixed seed; nothing here measures
time.
"""

from __future__ import annotations

import http.client
import json

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.fake.faults import FaultEngine
from tests.helpers.fake_service import http_error

ALICE, BOB = "alice@example.com", "bob@example.com"
EXPECTED_REASON = {429: "rateLimitExceeded", 403: "userRateLimitExceeded", 500: "backendError", 503: "backendError"}


def outcomes(svc, n):
    about = svc.about()
    out = []
    for _ in range(n):
        try:
            about.get(fields="user(emailAddress)").execute()
            out.append(200)
        except HttpError as e:
            status, reason = http_error(e)
            assert reason == EXPECTED_REASON[status]
            out.append(status)
    return out


def test_error_rate_draws_every_kind_at_roughly_the_configured_rate(drive, server):
    server.faults = FaultConfig(error_rate=0.3, seed=1234)
    got = outcomes(drive(ALICE), 300)
    errors = [s for s in got if s != 200]
    assert 50 <= len(errors) <= 130
    assert set(errors) == {429, 403, 500, 503}
    assert sum(server.stats()["faults"][f"error_{k}"] for k in ("429", "403", "500", "503")) == len(errors)


def test_same_seed_same_fault_sequence(drive, server):
    svc = drive(ALICE)
    server.faults = FaultConfig(error_rate=0.5, seed=42)
    first = outcomes(svc, 40)
    server.faults = FaultConfig(error_rate=0.5, seed=42)
    assert outcomes(svc, 40) == first
    server.faults = FaultConfig(error_rate=0.5, seed=43)
    assert outcomes(svc, 40) != first


def test_error_kinds_and_routes_filter(drive, server):
    svc = drive(ALICE)
    server.faults = FaultConfig(error_rate=1.0, error_kinds=["503"], routes=["files.list"], seed=1)
    assert svc.about().get(fields="user").execute()["user"]["emailAddress"] == ALICE  # not a listed route
    with pytest.raises(HttpError) as e:
        svc.files().list().execute()
    assert http_error(e.value) == (503, "backendError")


def _raw_get(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/drive/v3/about?fields=user", headers={"Authorization": f"Bearer {fake_token_for(ALICE)}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (http.client.RemoteDisconnected, ConnectionError):
        return "dropped"
    finally:
        conn.close()


def test_drop_rate_closes_connections_without_an_answer(server):
    server.faults = FaultConfig(drop_rate=0.25, seed=99)
    got = [_raw_get(server) for _ in range(200)]
    dropped = got.count("dropped")
    assert 25 <= dropped <= 75
    assert set(got) == {200, "dropped"}
    faults = server.stats()["faults"]
    assert faults.get("drop_before", 0) + faults.get("drop_after", 0) == dropped
    assert faults.get("drop_before", 0) > 0 and faults.get("drop_after", 0) > 0


def test_drop_after_means_the_call_took_effect(drive, server):
    svc = drive(ALICE)
    fid = svc.files().generateIds(count=1).execute()["ids"][0]
    server.faults = FaultConfig(drop_rate=1.0, drop_after_fraction=1.0, routes=["files.create"])
    with pytest.raises(Exception) as e:  # httplib2 retries once by itself; both attempts are dropped
        svc.files().create(body={"id": fid, "name": "sent-once"}).execute()
    assert not isinstance(e.value, HttpError)
    server.faults.drop_rate = 0.0
    assert svc.files().get(fileId=fid, fields="name").execute() == {"name": "sent-once"}
    with pytest.raises(HttpError) as e:
        svc.files().create(body={"id": fid, "name": "sent-once"}).execute()
    assert e.value.resp.status == 409  # the retry of an idempotent create is recognisable


def test_error_after_means_the_call_took_effect(drive, server):
    svc = drive(ALICE)
    fid = svc.files().generateIds(count=1).execute()["ids"][0]
    server.faults = FaultConfig(error_rate=1.0, error_kinds=["500"], error_after_fraction=1.0, routes=["files.create"])
    with pytest.raises(HttpError) as e:
        svc.files().create(body={"id": fid, "name": "half-failed"}).execute()
    assert http_error(e.value) == (500, "backendError")
    server.faults.error_rate = 0.0
    assert svc.files().get(fileId=fid, fields="name").execute() == {"name": "half-failed"}


def test_list_lag_hides_new_files_from_list_and_changes_but_not_from_get(drive, server):
    a = drive(ALICE)
    token = a.changes().getStartPageToken().execute()["startPageToken"]
    server.faults.list_lag = 3600.0
    fid = a.files().create(body={"name": "fresh"}, fields="id").execute()["id"]
    assert a.files().list(q="name = 'fresh'").execute()["files"] == []
    assert a.files().get(fileId=fid, fields="name").execute() == {"name": "fresh"}
    res = a.changes().list(pageToken=token).execute()
    assert res["changes"] == [] and res["newStartPageToken"] == token  # the token does not skip the hidden change
    server.faults.list_lag = 0.0
    assert [f["id"] for f in a.files().list(q="name = 'fresh'").execute()["files"]] == [fid]
    assert [c["fileId"] for c in a.changes().list(pageToken=token).execute()["changes"]] == [fid]


def test_quota_units_per_user(drive, server):
    a, b = drive(ALICE), drive(BOB)
    server.faults.quota_units_per_min = 250
    files = a.files()
    files.list().execute()
    files.list().execute()  # 200 units
    with pytest.raises(HttpError) as e:
        files.list().execute()  # would be 300
    assert http_error(e.value) == (403, "userRateLimitExceeded")
    for _ in range(10):
        a.about().get(fields="user").execute()  # 10 x 5 = 250 units
    with pytest.raises(HttpError):
        a.about().get(fields="user").execute()
    b.files().list().execute()  # the budget is per user
    server.faults.quota_status = 429
    with pytest.raises(HttpError) as e:
        files.list().execute()
    assert http_error(e.value) == (429, "rateLimitExceeded")
    server.reset_quota()
    files.list().execute()
    assert server.stats()["faults"]["quota"] == 3


def test_quota_window_slides(tmp_path):
    eng = FaultEngine(FaultConfig(quota_units_per_min=200))
    assert eng.charge("u", "download", now=0.0) is None
    assert eng.charge("u", "get", now=10.0).status == 403
    assert eng.charge("u", "download", now=60.5) is None  # the first charge left the window


def test_latency_is_applied_and_counted(drive, server):
    server.faults.latency = 0.05
    drive(ALICE).about().get(fields="user").execute()
    assert server.stats()["faults"]["latency"] >= 1


@pytest.mark.parametrize(
    "bad", [{"error_rate": 1.5}, {"drop_rate": -0.1}, {"error_kinds": ["418"]}, {"quota_status": 500}, {"nonsense": 1}]
)
def test_fault_config_validation(bad):
    with pytest.raises(ValueError):
        FaultConfig.from_dict(bad)


def test_fault_config_round_trips_as_json():
    cfg = FaultConfig(latency=0.1, error_rate=0.2, error_kinds=["429"], list_lag=2.0, seed=5, routes=["files.list"])
    assert FaultConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_the_daily_upload_cap_refuses_the_upload_that_would_pass_it_with_drives_answer(drive, server):
    """``upload_bytes_per_day``: Drive's 750 GB per account and day, answered as field reports show it (403
    userRateLimitExceeded "User rate limit exceeded."), per account, for every kind of upload."""
    a, b = drive(ALICE), drive(BOB)
    server.faults.upload_bytes_per_day = 3000

    def upload(svc, size: int, resumable: bool = False) -> None:
        media = MediaInMemoryUpload(b"x" * size, mimetype="application/octet-stream", resumable=resumable)
        svc.files().create(body={"name": "f"}, media_body=media, fields="id").execute()

    upload(a, 1000)  # multipart: its body (metadata and media) counts
    with pytest.raises(HttpError) as e:
        upload(a, 2500)
    body = json.loads(e.value.content)["error"]
    assert (e.value.resp.status, body["errors"][0]["reason"]) == (403, "userRateLimitExceeded")
    assert body["message"] == body["errors"][0]["message"] == "User rate limit exceeded."
    with pytest.raises(HttpError):
        upload(a, 2500, resumable=True)  # the session starts; its chunk is refused
    a.files().create(body={"name": "folder", "mimeType": "application/vnd.google-apps.folder"}).execute()
    upload(b, 2500)  # the cap is per account
    assert server.stats()["faults"]["daily_upload_cap"] == 2
    server.reset_quota()  # a new day
    upload(a, 2500)


def test_the_daily_cap_starts_a_new_day_after_24_hours():
    eng = FaultEngine(FaultConfig(upload_bytes_per_day=100))
    assert eng.charge_upload("u", 80, now=0.0) is None
    assert eng.charge_upload("u", 30, now=3600.0).status == 403
    assert eng.charge_upload("u", 30, now=86400.0) is None
    assert FaultEngine(FaultConfig()).charge_upload("u", 10**12) is None  # 0: no cap


def test_the_write_limit_does_not_answer_like_the_daily_cap():
    """The write limit passes in a second; its 403 must not read as the cap a client stops for."""
    eng = FaultEngine(FaultConfig(write_rate=1.0, write_burst=1, write_limit_status=403))
    assert eng.charge_write("u", now=0.0) is None
    refused = eng.charge_write("u", now=0.1)
    assert refused.status == 403 and refused.reason == "userRateLimitExceeded"
    assert refused.message != "User rate limit exceeded."
