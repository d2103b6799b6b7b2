"""Files, folders, sharing and queries through the real googleapiclient, for two users."""

from __future__ import annotations

import http.client
import io
import json

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.fake.query import escape
from tests.helpers.fake_service import FOLDER
from tests.helpers.fake_service import drive_service
from tests.helpers.fake_service import http_error

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def folder(svc, name, parent=None):
    body = {"name": name, "mimeType": FOLDER}
    if parent:
        body["parents"] = [parent]
    return svc.files().create(body=body, fields="id").execute()["id"]


def upload(svc, name, data: bytes, parent=None, **meta):
    body = {"name": name, **meta}
    if parent:
        body["parents"] = [parent]
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream")
    return svc.files().create(body=body, media_body=media, fields="id,name,size,md5Checksum,owners,parents").execute()


def names(svc, q, **kw):
    res = svc.files().list(q=q, fields="files(name)", **kw).execute()
    return sorted(f["name"] for f in res["files"])


def expect_error(call, status, reason):
    with pytest.raises(HttpError) as e:
        call.execute()
    assert http_error(e.value) == (status, reason)
    return e.value


def test_about_tells_users_apart(drive):
    for email in (ALICE, BOB):
        user = drive(email).about().get(fields="user").execute()["user"]
        assert user["emailAddress"] == email and user["me"] is True
        assert user["displayName"] and user["permissionId"]
    assert (
        drive(ALICE).about().get(fields="user(permissionId)").execute()
        != drive(BOB).about().get(fields="user(permissionId)").execute()
    )


def test_about_requires_fields(drive):
    expect_error(drive(ALICE).about().get(), 400, "required")


def test_visibility_follows_sharing_including_inherited(drive):
    a, b = drive(ALICE), drive(BOB)
    outer = folder(a, "outer")
    inner = folder(a, "inner", outer)
    doc = upload(a, "doc.txt", b"secret", inner)
    expect_error(b.files().get(fileId=doc["id"]), 404, "notFound")
    assert names(b, "name = 'doc.txt'") == []

    a.permissions().create(
        fileId=outer, body={"type": "user", "role": "reader", "emailAddress": BOB}, sendNotificationEmail=False
    ).execute()
    got = b.files().get(fileId=doc["id"], fields="id,owners(emailAddress),capabilities(canEdit,canDelete)").execute()
    assert got["owners"][0]["emailAddress"] == ALICE
    assert got["capabilities"] == {"canEdit": False, "canDelete": False}
    assert b.files().get_media(fileId=doc["id"]).execute() == b"secret"
    assert names(b, f"'{inner}' in parents") == ["doc.txt"]
    assert names(b, "sharedWithMe") == ["outer"]  # only the item shared directly
    assert drive(CAROL).files().list(fields="files(id)").execute()["files"] == []
    # a reader cannot write into the folder or rename the file
    expect_error(b.files().create(body={"name": "x", "parents": [inner]}), 403, "insufficientFilePermissions")
    expect_error(b.files().update(fileId=doc["id"], body={"name": "y"}), 403, "insufficientFilePermissions")


def test_creator_owns_file_in_someone_elses_folder_and_only_owner_deletes(drive):
    a, b = drive(ALICE), drive(BOB)
    inbox = folder(a, "inbox")
    a.permissions().create(fileId=inbox, body={"type": "user", "role": "writer", "emailAddress": BOB}).execute()
    msg = upload(b, "msg", b"hi", inbox)
    assert msg["owners"][0]["emailAddress"] == BOB and msg["parents"] == [inbox]
    # alice (folder owner) sees and can edit bob's file, but cannot delete it
    meta = a.files().get(fileId=msg["id"], fields="ownedByMe,capabilities(canDelete,canEdit)").execute()
    assert meta == {"ownedByMe": False, "capabilities": {"canDelete": False, "canEdit": True}}
    expect_error(a.files().delete(fileId=msg["id"]), 403, "insufficientFilePermissions")
    b.files().delete(fileId=msg["id"]).execute()
    expect_error(b.files().get(fileId=msg["id"]), 404, "notFound")
    expect_error(b.files().delete(fileId=msg["id"]), 404, "notFound")
    expect_error(b.files().delete(fileId="1nonexistentnonexistentnonexist"), 404, "notFound")


def test_creating_needs_writer_access_to_parent(drive):
    a, b = drive(ALICE), drive(BOB)
    private = folder(a, "private")
    expect_error(b.files().create(body={"name": "x", "parents": [private]}), 404, "notFound")
    f = upload(a, "plain", b"")
    expect_error(a.files().create(body={"name": "x", "parents": [f["id"]]}), 400, "invalid")
    expect_error(a.files().create(body={"name": "x", "parents": [private, private]}), 403, "cannotAddParent")


def test_duplicate_names_in_one_folder_are_allowed(drive):
    a = drive(ALICE)
    box = folder(a, "box")
    ids = {upload(a, "same.bin", bytes([i]), box)["id"] for i in range(3)}
    assert len(ids) == 3
    assert names(a, f"'{box}' in parents and name = 'same.bin'") == ["same.bin"] * 3


def test_name_contains_is_prefix_matching_on_tokens(drive):
    a = drive(ALICE)
    for n in ("HelloWorld", "Hello there", "say Hello", "WorldHello", "hello.txt"):
        a.files().create(body={"name": n}).execute()
    assert names(a, "name contains 'hello'") == ["Hello there", "HelloWorld", "hello.txt", "say Hello"]
    assert names(a, "name contains 'World'") == ["WorldHello"]  # not "HelloWorld"
    assert names(a, "name = 'hello.txt'") == ["hello.txt"]
    assert names(a, "name = 'Hello.txt'") == []


def test_quotes_and_backslashes_in_names_and_emails(drive):
    odd_email = "o'brien\\x@example.com"
    a, o = drive(ALICE), drive(odd_email)
    tricky = "it's a \\ back\\slash'"
    box = folder(a, tricky)
    a.permissions().create(fileId=box, body={"type": "user", "role": "writer", "emailAddress": odd_email}).execute()
    upload(o, "from o'brien", b"1", box)
    assert names(a, f"name = {escape(tricky)}") == [tricky]
    assert names(a, f"name contains {escape('it')} and mimeType = '{FOLDER}'") == [tricky]
    assert names(a, f"{escape(odd_email)} in owners") == ["from o'brien"]
    assert names(o, f"{escape(odd_email)} in writers and name = {escape(tricky)}") == [tricky]
    expect_error(a.files().list(q="name = 'it's'"), 400, "invalid")


def test_generate_ids_make_creates_idempotent(drive):
    a = drive(ALICE)
    res = a.files().generateIds(count=3, space="drive", type="files").execute()
    assert len(res["ids"]) == 3 and len(set(res["ids"])) == 3
    fid = res["ids"][0]
    made = a.files().create(body={"id": fid, "name": "once"}, fields="id").execute()
    assert made["id"] == fid
    expect_error(a.files().create(body={"id": fid, "name": "once"}), 409, "duplicate")
    expect_error(a.files().create(body={"id": "1" + "x" * 32, "name": "invented"}), 400, "invalid")
    # an upload with a generated id is idempotent too
    up = upload(a, "with-id", b"data", id=res["ids"][1])
    assert up["id"] == res["ids"][1]
    with pytest.raises(HttpError) as e:
        upload(a, "with-id", b"data", id=res["ids"][1])
    assert e.value.resp.status == 409


def test_update_metadata_properties_and_parents(drive):
    a = drive(ALICE)
    src, dst = folder(a, "src"), folder(a, "dst")
    f = (
        a.files()
        .create(
            body={"name": "n", "parents": [src], "appProperties": {"a": "1", "b": "2"}, "properties": {"pub": "x"}},
            fields="id,version",
        )
        .execute()
    )
    upd = (
        a.files()
        .update(
            fileId=f["id"],
            addParents=dst,
            removeParents=src,
            body={"name": "renamed", "description": "d", "appProperties": {"a": None, "c": "3"}},
            fields="name,description,appProperties,properties,parents,version",
        )
        .execute()
    )
    assert upd["name"] == "renamed" and upd["description"] == "d"
    assert upd["appProperties"] == {"b": "2", "c": "3"} and upd["properties"] == {"pub": "x"}
    assert upd["parents"] == [dst] and int(upd["version"]) > int(f["version"])
    assert names(a, f"'{src}' in parents") == [] and names(a, f"'{dst}' in parents") == ["renamed"]
    assert names(a, "appProperties has { key='c' and value='3' } and properties has { key='pub' and value='x' }") == [
        "renamed"
    ]
    expect_error(a.files().update(fileId=f["id"], body={"parents": [src]}), 403, "fieldNotWritable")
    expect_error(a.files().update(fileId=f["id"], addParents=src), 403, "cannotAddParent")
    expect_error(a.files().update(fileId=f["id"], body={"appProperties": {"k": "v" * 200}}), 400, "invalid")
    expect_error(a.files().update(fileId=f["id"], body={"nmae": "typo"}), 400, "badRequest")


def test_app_properties_are_private_to_the_oauth_app(drive):
    a_app1, b_app1, b_app2 = (
        drive(ALICE, fake_token_for(ALICE, "app1")),
        drive(BOB, fake_token_for(BOB, "app1")),
        drive(BOB, fake_token_for(BOB, "app2")),
    )
    box = folder(a_app1, "box")
    a_app1.permissions().create(fileId=box, body={"type": "user", "role": "writer", "emailAddress": BOB}).execute()
    fid = (
        a_app1.files()
        .create(
            body={"name": "m", "parents": [box], "appProperties": {"k": "v"}, "properties": {"p": "1"}}, fields="id"
        )
        .execute()["id"]
    )
    q = "appProperties has { key='k' and value='v' }"
    assert b_app1.files().get(fileId=fid, fields="appProperties,properties").execute() == {
        "appProperties": {"k": "v"},
        "properties": {"p": "1"},
    }
    assert names(b_app1, q) == ["m"]
    assert b_app2.files().get(fileId=fid, fields="appProperties,properties").execute() == {"properties": {"p": "1"}}
    assert names(b_app2, q) == [] and names(b_app2, "properties has { key='p' and value='1' }") == ["m"]
    b_app2.files().update(fileId=fid, body={"appProperties": {"k": "other"}}).execute()
    assert a_app1.files().get(fileId=fid, fields="appProperties").execute() == {"appProperties": {"k": "v"}}


def test_trash_is_listed_unless_excluded_and_only_owner_trashes(drive):
    a, b = drive(ALICE), drive(BOB)
    box = folder(a, "box")
    a.permissions().create(fileId=box, body={"type": "user", "role": "writer", "emailAddress": BOB}).execute()
    f = a.files().create(body={"name": "old", "parents": [box]}, fields="id").execute()
    expect_error(b.files().update(fileId=f["id"], body={"trashed": True}), 403, "insufficientFilePermissions")
    a.files().update(fileId=box, body={"trashed": True}).execute()
    assert a.files().get(fileId=f["id"], fields="trashed,explicitlyTrashed").execute() == {
        "trashed": True,
        "explicitlyTrashed": False,
    }
    assert names(a, "name = 'old'") == ["old"]  # Drive lists trashed files unless told not to
    assert names(a, "name = 'old' and trashed = false") == []


def test_permissions_routes(drive):
    a, b = drive(ALICE), drive(BOB)
    box = folder(a, "box")
    p = (
        a.permissions()
        .create(
            fileId=box,
            body={"type": "user", "role": "commenter", "emailAddress": BOB},
            fields="id,type,role,emailAddress",
        )
        .execute()
    )
    assert p["emailAddress"] == BOB and p["role"] == "commenter"
    perms = a.permissions().list(fileId=box, fields="permissions(id,role,emailAddress)").execute()["permissions"]
    assert {(x["emailAddress"], x["role"]) for x in perms} == {(ALICE, "owner"), (BOB, "commenter")}
    expect_error(b.permissions().list(fileId=box), 403, "insufficientFilePermissions")  # commenters do not see sharing
    assert a.permissions().get(fileId=box, permissionId=p["id"], fields="role").execute() == {"role": "commenter"}
    expect_error(
        b.permissions().create(fileId=box, body={"type": "user", "role": "reader", "emailAddress": CAROL}),
        403,
        "insufficientFilePermissions",
    )
    up = a.permissions().update(fileId=box, permissionId=p["id"], body={"role": "writer"}, fields="role").execute()
    assert up == {"role": "writer"}
    b.permissions().create(
        fileId=box, body={"type": "user", "role": "reader", "emailAddress": CAROL}
    ).execute()  # now allowed
    owner_pid = next(x["id"] for x in perms if x["role"] == "owner")
    expect_error(a.permissions().delete(fileId=box, permissionId=owner_pid), 403, "cannotRemoveOwner")
    a.permissions().delete(fileId=box, permissionId=p["id"]).execute()
    expect_error(b.files().get(fileId=box), 404, "notFound")
    expect_error(a.permissions().delete(fileId=box, permissionId=p["id"]), 404, "notFound")
    # "anyone" makes a file visible to every user
    a.permissions().create(fileId=box, body={"type": "anyone", "role": "reader"}).execute()
    assert drive(CAROL).files().get(fileId=box, fields="name").execute() == {"name": "box"}


def test_default_and_partial_fields(drive):
    a = drive(ALICE)
    f = upload(a, "x.bin", b"12345", appProperties={"k": "v"})
    assert a.files().get(fileId=f["id"]).execute() == {
        "kind": "drive#file",
        "id": f["id"],
        "name": "x.bin",
        "mimeType": "application/octet-stream",
    }
    full = a.files().get(fileId=f["id"], fields="*").execute()
    assert full["size"] == "5" and full["md5Checksum"] == "827ccb0eea8a706c4c34a16891f84e7b"
    assert full["sha256Checksum"] and full["ownedByMe"] is True and full["appProperties"] == {"k": "v"}
    assert full["createdTime"].endswith("Z") and len(full["createdTime"]) == 24
    listed = a.files().list().execute()
    assert set(listed) == {"kind", "incompleteSearch", "files"} and set(listed["files"][0]) == {
        "kind",
        "id",
        "name",
        "mimeType",
    }
    expect_error(a.files().get(fileId=f["id"], fields="nosuchfield"), 400, "invalidParameter")
    expect_error(a.files().list(fields="files(id,nosuch)"), 400, "invalidParameter")


def test_page_size_bounds_and_order(drive):
    a = drive(ALICE)
    for n in ("b", "a", "c"):
        a.files().create(body={"name": n}).execute()
    expect_error(a.files().list(pageSize=0), 400, "invalid")
    expect_error(a.files().list(pageSize=1001), 400, "invalid")
    by_name = a.files().list(orderBy="name desc", fields="files(name)").execute()["files"]
    assert [f["name"] for f in by_name] == ["c", "b", "a"]
    by_time = a.files().list(orderBy="createdTime", fields="files(name)").execute()["files"]
    assert [f["name"] for f in by_time] == ["b", "a", "c"]
    expect_error(a.files().list(orderBy="color"), 400, "invalid")


def test_long_query_uses_method_override(drive, server):
    a = drive(ALICE)
    a.files().create(body={"name": "needle"}).execute()
    long_q = " or ".join([f"name = 'n{i:04d}'" for i in range(150)] + ["name = 'needle'"])
    assert len(long_q) > 2048
    assert names(a, long_q) == ["needle"]
    assert server.stats()["requests"].get("GET files.list", 0) >= 1


def test_pagination_over_2500_files(drive, server):
    a = drive(ALICE)
    box = folder(a, "many")
    created: list[str] = []
    files = a.files()  # building the resource is the slow part of the client; do it once
    for _ in range(25):  # 25 batches of 100 creates
        batch = a.new_batch_http_request(
            callback=lambda rid, res, exc: created.append(res["id"]) if exc is None else None
        )
        for _ in range(100):
            batch.add(files.create(body={"name": "m", "parents": [box]}, fields="id"))
        batch.execute()
    assert len(created) == 2500
    seen, token, pages = [], None, 0
    while True:
        res = (
            a.files()
            .list(q=f"'{box}' in parents", pageSize=1000, pageToken=token, fields="nextPageToken,files(id)")
            .execute()
        )
        seen += [f["id"] for f in res["files"]]
        pages += 1
        token = res.get("nextPageToken")
        if not token:
            break
        a.files().create(body={"name": "late", "parents": [box]}).execute()  # growth between pages
    assert pages == 3
    assert len(seen) == len(set(seen)) == 2502
    assert set(created) <= set(seen)
    expect_error(a.files().list(pageToken="garbage"), 400, "invalid")


def test_batch_answers_each_part_and_rejects_more_than_100(drive):
    a, b = drive(ALICE), drive(BOB)
    mine = a.files().create(body={"name": "mine"}, fields="id").execute()["id"]
    results = {}
    batch = a.new_batch_http_request(callback=lambda rid, res, exc: results.__setitem__(rid, (res, exc)))
    batch.add(a.files().get(fileId=mine, fields="name"), request_id="get")
    batch.add(a.files().delete(fileId="1doesnotexistdoesnotexistdoesnot"), request_id="missing")
    batch.add(a.files().update(fileId=mine, body={"name": "renamed"}, fields="name"), request_id="rename")
    batch.add(b.files().get(fileId=mine), request_id="as-bob")  # inner Authorization wins
    batch.execute()
    assert results["get"] == ({"name": "mine"}, None)
    assert http_error(results["missing"][1]) == (404, "notFound")
    assert results["rename"][0] == {"name": "renamed"}
    assert http_error(results["as-bob"][1]) == (404, "notFound")

    too_many = a.new_batch_http_request()
    for _ in range(101):
        too_many.add(a.files().get(fileId=mine))
    with pytest.raises(HttpError) as e:
        too_many.execute()
    assert e.value.resp.status == 400


def test_changes_feed(drive):
    a, b = drive(ALICE), drive(BOB)
    token_b = b.changes().getStartPageToken().execute()["startPageToken"]
    box = folder(a, "shared")
    hidden = a.files().create(body={"name": "not shared"}, fields="id").execute()["id"]
    a.permissions().create(fileId=box, body={"type": "user", "role": "writer", "emailAddress": BOB}).execute()
    f = upload(a, "inside", b"1", box)
    res = (
        b.changes()
        .list(pageToken=token_b, fields="newStartPageToken,nextPageToken,changes(fileId,removed,file(name))")
        .execute()
    )
    assert {c["fileId"] for c in res["changes"]} == {box, f["id"]}
    assert hidden not in {c["fileId"] for c in res["changes"]}
    assert "nextPageToken" not in res
    token_b = res["newStartPageToken"]
    a.files().delete(fileId=f["id"]).execute()
    res = b.changes().list(pageToken=token_b, fields="*").execute()
    assert [(c["fileId"], c["removed"]) for c in res["changes"]] == [(f["id"], True)] and "file" not in res["changes"][
        0
    ]
    # paging: one change per page
    t = a.changes().getStartPageToken().execute()["startPageToken"]
    for n in ("x", "y", "z"):
        a.files().create(body={"name": n}).execute()
    got, pages = [], 0
    while True:
        res = a.changes().list(pageToken=t, pageSize=1, fields="*").execute()
        got += [c["file"]["name"] for c in res["changes"]]
        pages += 1
        if "newStartPageToken" in res:
            break
        t = res["nextPageToken"]
    assert got == ["x", "y", "z"]
    # moving a file out of the shared folder: bob is told it is gone
    moved = upload(a, "moving", b"2", box)
    token_b = b.changes().getStartPageToken().execute()["startPageToken"]
    a.files().update(fileId=moved["id"], addParents="root", removeParents=box).execute()
    res = b.changes().list(pageToken=token_b, fields="changes(fileId,removed)").execute()
    assert res["changes"] == [{"fileId": moved["id"], "removed": True}]
    expect_error(a.changes().list(pageToken="bogus"), 400, "invalid")


def _raw(server, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_auth_errors_and_unknown_routes(server):
    status, headers, body = _raw(server, "GET", "/drive/v3/files")
    assert status == 401 and json.loads(body)["error"]["errors"][0]["reason"] == "authError"
    assert headers["Content-Length"] == str(len(body))
    status, _, body = _raw(server, "GET", "/drive/v3/files", {"Authorization": "Bearer nonsense"})
    assert status == 401
    status, _, body = _raw(server, "GET", "/drive/v3/nowhere", {"Authorization": f"Bearer {fake_token_for(ALICE)}"})
    err = json.loads(body)["error"]
    assert status == 404 and err["code"] == 404 and err["errors"][0]["reason"] == "notFound" and err["message"]


def test_strict_tokens_only_accept_registered_users(tmp_path):
    with FakeDriveServer(strict_tokens=True) as srv:
        token = srv.add_user(ALICE, token="secret-token")
        ok = drive_service(srv.url, ALICE, token)
        assert ok.about().get(fields="user(emailAddress)").execute() == {"user": {"emailAddress": ALICE}}
        status, _, _ = _raw(
            srv, "GET", "/drive/v3/about?fields=user", {"Authorization": f"Bearer {fake_token_for(BOB)}"}
        )
        assert status == 401


def test_admin_routes(server):
    status, _, body = _raw(server, "GET", "/_fake/faults")
    assert status == 200 and json.loads(body)["error_rate"] == 0
    status, _, body = _raw(
        server,
        "POST",
        "/_fake/faults",
        {"Content-Type": "application/json"},
        json.dumps({"latency": 0.0, "list_lag": 3.5, "seed": 7}),
    )
    assert status == 200 and json.loads(body)["list_lag"] == 3.5
    assert server.faults.list_lag == 3.5 and server.faults.error_rate == 0
    status, _, body = _raw(
        server, "POST", "/_fake/faults", {"Content-Type": "application/json"}, json.dumps({"error_rate": 2})
    )
    assert status == 400
    status, _, body = _raw(
        server, "POST", "/_fake/faults", {"Content-Type": "application/json"}, json.dumps({"bogus": 1})
    )
    assert status == 400
    _raw(server, "GET", "/drive/v3/about?fields=user", {"Authorization": f"Bearer {fake_token_for(ALICE)}"})
    status, _, body = _raw(server, "GET", "/_fake/stats")
    stats = json.loads(body)
    assert status == 200 and stats["requests"]["GET about.get"] == 1 and stats["by_user"][ALICE] == 1


def test_concurrent_clients_in_threads(drive):
    import threading

    box = folder(drive(ALICE), "box")
    drive(ALICE).permissions().create(
        fileId=box, body={"type": "user", "role": "writer", "emailAddress": BOB}
    ).execute()
    errors: list[BaseException] = []

    def work(email, n):
        svc = drive(email)  # one service (one Http) per thread, as the design requires
        try:
            for i in range(n):
                svc.files().create(body={"name": f"{email}-{i}", "parents": [box]}).execute()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(e, 25)) for e in (ALICE, BOB, ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (
        len(drive(BOB).files().list(q=f"'{box}' in parents", pageSize=1000, fields="files(id)").execute()["files"])
        == 100
    )


def test_root_and_me_aliases(drive):
    a, b = drive(ALICE), drive(BOB)
    top = a.files().create(body={"name": "top"}, fields="id").execute()["id"]
    box = folder(a, "box")
    a.files().create(body={"name": "nested", "parents": [box]}).execute()
    a.permissions().create(fileId=box, body={"type": "user", "role": "writer", "emailAddress": BOB}).execute()
    b.files().create(body={"name": "bobs", "parents": [box]}).execute()
    assert names(a, "'root' in parents") == ["box", "top"]
    root = a.files().get(fileId="root", fields="id,name,mimeType").execute()
    assert root["mimeType"] == FOLDER and a.files().get(fileId=top, fields="parents").execute()["parents"] == [
        root["id"]
    ]
    assert names(a, "'me' in owners") == ["box", "nested", "top"]
    assert names(b, "'me' in owners") == ["bobs"]
    assert names(b, "not 'me' in owners") == ["box", "nested"]
