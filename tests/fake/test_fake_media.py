"""Uploads (media, multipart, resumable) and downloads (whole, ranged) with the real client.

The big-payload tests measure memory with tracemalloc: the server runs in this process,
so the traced peak covers both sides; it must stay far below the payload size.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import tracemalloc
import urllib.parse

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseDownload
from googleapiclient.http import MediaIoBaseUpload

from syft_flwr_gdrive.fake import fake_token_for
from tests.helpers.fake_service import FOLDER
from tests.helpers.fake_service import http_error

ALICE, BOB = "alice@example.com", "bob@example.com"
MiB = 1 << 20


class PatternFile(io.RawIOBase):
    """``size`` deterministic bytes (different in every MiB) without holding them in memory."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    @staticmethod
    def _block(k: int) -> bytes:
        return hashlib.sha256(k.to_bytes(8, "big")).digest() * (MiB // 32)

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        out = bytearray()
        while self.pos < end:
            k, off = divmod(self.pos, MiB)
            take = min(MiB - off, end - self.pos)
            out += self._block(k)[off : off + take]
            self.pos += take
        return bytes(out)

    def md5(self) -> str:
        h = hashlib.md5()
        for k in range(0, self.size, MiB):
            h.update(self._block(k // MiB)[: min(MiB, self.size - k)])
        return h.hexdigest()


class HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.h, self.n = hashlib.md5(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.h.update(b)
        self.n += len(b)
        return len(b)


def run_upload(request):
    response = None
    while response is None:
        _, response = request.next_chunk()
    return response


def download(svc, file_id: str, chunksize: int) -> HashSink:
    sink = HashSink()
    dl = MediaIoBaseDownload(sink, svc.files().get_media(fileId=file_id), chunksize=chunksize)
    done = False
    while not done:
        _, done = dl.next_chunk()
    return sink


def raw(server, method, target, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        h = {"Authorization": f"Bearer {fake_token_for(ALICE)}", **(headers or {})}
        conn.request(method, target, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.mark.slow  # moves 64 MiB
def test_64mib_resumable_upload_and_ranged_download_in_bounded_memory(drive):
    a, b = drive(ALICE), drive(BOB)
    box = a.files().create(body={"name": "box", "mimeType": FOLDER}, fields="id").execute()["id"]
    a.permissions().create(fileId=box, body={"type": "user", "role": "reader", "emailAddress": BOB}).execute()
    src = PatternFile(64 * MiB + 12345)
    expected = src.md5()
    tracemalloc.start()
    try:
        media = MediaIoBaseUpload(src, "application/octet-stream", chunksize=8 * MiB, resumable=True)
        made = run_upload(
            a.files().create(
                body={"name": "model.bin", "parents": [box]}, media_body=media, fields="id,size,md5Checksum"
            )
        )
        sink = download(b, made["id"], chunksize=4 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert made["size"] == str(src.size) and made["md5Checksum"] == expected
    assert sink.n == src.size and sink.h.hexdigest() == expected
    assert peak < 16 * MiB, f"traced peak {peak / MiB:.1f} MiB for a 64 MiB payload"


def test_resume_after_interrupted_chunk_probes_and_continues(drive, server):
    a = drive(ALICE)
    src = PatternFile(3 * 256 * 1024 + 1000)
    media = MediaIoBaseUpload(src, "application/octet-stream", chunksize=256 * 1024, resumable=True)
    req = a.files().create(body={"name": "resumed"}, media_body=media, fields="id,md5Checksum,size")
    status, resp = req.next_chunk()
    assert resp is None and status.resumable_progress == 256 * 1024
    server.faults.routes = ["upload.chunk"]
    server.faults.drop_after_fraction = 0.0
    server.faults.drop_rate = 1.0
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        req.next_chunk()  # the connection is dropped: the client enters its error state
    server.faults.drop_rate = 0.0
    # the probe the client is about to send, done by hand: 308 with the stored range
    target = req.resumable_uri.split("/", 3)[3]
    st, headers, _ = raw(server, "PUT", "/" + target, headers={"Content-Range": f"bytes */{src.size}"})
    assert st == 308 and headers["range"] == f"bytes=0-{256 * 1024 - 1}"
    done = run_upload(req)  # the client probes (Content-Range: bytes */total) and resumes
    assert done["md5Checksum"] == src.md5() and done["size"] == str(src.size)
    st, _, body = raw(server, "PUT", "/" + target, headers={"Content-Range": f"bytes */{src.size}"})
    assert st == 200 and json.loads(body)["id"] == done["id"]  # a probe after the end returns the file


def test_resumable_protocol_details_on_the_wire(server):
    start = "/upload/drive/v3/files?uploadType=resumable&fields=id%2Csize%2Cname"
    st, h, body = raw(
        server,
        "POST",
        start,
        json.dumps({"name": "wire"}).encode(),
        {"Content-Type": "application/json; charset=UTF-8", "X-Upload-Content-Length": "300000"},
    )
    assert st == 200 and body == b"" and "upload_id=" in h["location"]
    target = "/" + h["location"].split("/", 3)[3]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)["fields"] == ["id,size,name"]
    st, h, _ = raw(server, "PUT", target, headers={"Content-Range": "bytes */300000"})
    assert st == 308 and "range" not in h  # nothing stored yet: no Range header
    st, _, body = raw(server, "PUT", target, b"x" * 1000, {"Content-Range": "bytes 0-999/300000"})
    assert st == 400 and json.loads(body)["error"]["errors"][0]["reason"] == "invalid"  # not a 256 KiB multiple
    st, h, _ = raw(server, "PUT", target, b"x" * 262144, {"Content-Range": "bytes 0-262143/300000"})
    assert st == 308 and h["range"] == "bytes=0-262143"
    st, _, _ = raw(server, "PUT", target, b"y" * 10, {"Content-Range": "bytes 0-9/999"})
    assert st == 400  # total disagrees with the declared size
    st, _, body = raw(server, "PUT", target, b"z" * (300000 - 262144), {"Content-Range": "bytes 262144-299999/300000"})
    assert st == 200 and json.loads(body)["size"] == "300000" and set(json.loads(body)) == {"id", "size", "name"}
    st, _, _ = raw(
        server,
        "PUT",
        "/upload/drive/v3/files?uploadType=resumable&upload_id=nope",
        headers={"Content-Range": "bytes */1"},
    )
    assert st == 404


def test_multipart_and_media_uploads_keep_bytes_exact(drive):
    a = drive(ALICE)
    tricky = b"line1\r\n--notaboundary\r\n\r\n\n--" + bytes(range(256)) * 50 + b"\r"
    for payload in (tricky, b"", PatternFile(3 * MiB + 7).read()):
        media = MediaIoBaseUpload(io.BytesIO(payload), "application/x-test")
        made = a.files().create(body={"name": "mp"}, media_body=media, fields="id,size,md5Checksum,mimeType").execute()
        assert made["size"] == str(len(payload)) and made["md5Checksum"] == hashlib.md5(payload).hexdigest()
        assert a.files().get_media(fileId=made["id"]).execute() == payload
    empty = MediaIoBaseUpload(io.BytesIO(b""), "text/plain", chunksize=256 * 1024, resumable=True)
    made = run_upload(a.files().create(body={"name": "empty-resumable"}, media_body=empty, fields="size,md5Checksum"))
    assert made == {"size": "0", "md5Checksum": hashlib.md5(b"").hexdigest()}
    media_only = (
        a.files()
        .create(media_body=MediaIoBaseUpload(io.BytesIO(b"abc"), "text/plain"), fields="id,name,mimeType")
        .execute()
    )
    assert media_only["name"] == "Untitled" and media_only["mimeType"] == "text/plain"


def test_content_updates_by_multipart_and_resumable(drive):
    a, b = drive(ALICE), drive(BOB)
    made = (
        a.files()
        .create(body={"name": "v"}, media_body=MediaIoBaseUpload(io.BytesIO(b"one"), "text/plain"), fields="id,version")
        .execute()
    )
    up = (
        a.files()
        .update(
            fileId=made["id"],
            body={"name": "v2"},
            media_body=MediaIoBaseUpload(io.BytesIO(b"two!"), "text/plain"),
            fields="name,size,version",
        )
        .execute()
    )
    assert up["name"] == "v2" and up["size"] == "4" and int(up["version"]) > int(made["version"])
    src = PatternFile(600 * 1024)
    req = a.files().update(
        fileId=made["id"],
        media_body=MediaIoBaseUpload(src, "text/plain", chunksize=256 * 1024, resumable=True),
        fields="size,md5Checksum",
    )
    assert run_upload(req) == {"size": str(src.size), "md5Checksum": src.md5()}
    with pytest.raises(HttpError) as e:
        b.files().update(fileId=made["id"], media_body=MediaIoBaseUpload(io.BytesIO(b"x"), "text/plain")).execute()
    assert http_error(e.value) == (404, "notFound")


def test_range_downloads_and_empty_file(drive, server):
    a = drive(ALICE)
    data = bytes(range(256)) * 4
    fid = (
        a.files()
        .create(
            body={"name": "r"}, media_body=MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream"), fields="id"
        )
        .execute()["id"]
    )
    st, h, body = raw(server, "GET", f"/drive/v3/files/{fid}?alt=media", headers={"Range": "bytes=5-9"})
    assert (
        st == 206
        and body == data[5:10]
        and h["content-range"] == f"bytes 5-9/{len(data)}"
        and h["content-length"] == "5"
    )
    st, h, body = raw(server, "GET", f"/drive/v3/files/{fid}?alt=media", headers={"Range": "bytes=-3"})
    assert st == 206 and body == data[-3:]
    st, h, body = raw(server, "GET", f"/drive/v3/files/{fid}?alt=media", headers={"Range": f"bytes={len(data)}-"})
    assert st == 416 and h["content-range"] == f"bytes */{len(data)}"
    sink = download(a, fid, chunksize=100)
    assert sink.n == len(data) and sink.h.hexdigest() == hashlib.md5(data).hexdigest()
    empty = (
        a.files()
        .create(body={"name": "empty"}, media_body=MediaIoBaseUpload(io.BytesIO(b""), "text/plain"), fields="id")
        .execute()["id"]
    )
    st, h, body = raw(server, "GET", f"/drive/v3/files/{empty}?alt=media", headers={"Range": "bytes=0-99"})
    assert st == 416 and h["content-range"] == "bytes */0"
    assert download(a, empty, chunksize=100).n == 0  # MediaIoBaseDownload treats the 416 as done
    st, _, body = raw(server, "GET", f"/drive/v3/files/{empty}?alt=media")
    assert st == 200 and body == b""
    folder = a.files().create(body={"name": "f", "mimeType": FOLDER}, fields="id").execute()["id"]
    with pytest.raises(HttpError) as e:
        a.files().get_media(fileId=folder).execute()
    assert e.value.resp.status == 403
