"""``DriveApi``: the one place that sends requests to Google Drive.

Every HTTP request goes through :meth:`DriveApi._execute`, which applies the
single retry policy (:mod:`.retry`), maps failures to typed errors
(:mod:`.errors`) and counts the request under its API method name, so a raw
``execute()`` can never bypass backoff or the call accounting the benchmarks
and the demo report. Methods return plain dicts (Drive file resources).
"""

from __future__ import annotations

import contextvars
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import BinaryIO
from typing import TypedDict

import tenacity
from google.auth.credentials import Credentials
from googleapiclient.http import MediaInMemoryUpload
from googleapiclient.http import MediaUpload
from typing_extensions import Unpack

from syft_flwr_gdrive.transport.drive.connections import ConnectionPool
from syft_flwr_gdrive.transport.drive.errors import DriveConflict
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DriveSignInRefused
from syft_flwr_gdrive.transport.drive.errors import DriveTooLarge
from syft_flwr_gdrive.transport.drive.ratelimit import MODIFY_UNITS
from syft_flwr_gdrive.transport.drive.ratelimit import WRITE_METHODS
from syft_flwr_gdrive.transport.drive.ratelimit import QuotaLimiter
from syft_flwr_gdrive.transport.drive.ratelimit import WritePacer
from syft_flwr_gdrive.transport.drive.ratelimit import units_for
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.retry import describe
from syft_flwr_gdrive.transport.drive.retry import is_ambiguous
from syft_flwr_gdrive.transport.drive.retry import is_transient
from syft_flwr_gdrive.transport.drive.retry import to_drive_error
from syft_flwr_gdrive.transport.drive.service import build_drive_service
from syft_flwr_gdrive.transport.drive.service import new_authorized_http
from syft_flwr_gdrive.transport.drive.signin import SignIn

__all__ = [
    "DriveApi",
    "CallCounter",
    "escape_q",
    "FOLDER_MIME",
    "DEFAULT_FILE_FIELDS",
    "UPLOAD_CHUNK_UNIT",
]

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
#: Drive requires resumable chunks to be multiples of 256 KiB.
UPLOAD_CHUNK_UNIT = 256 * 1024
READ_AHEAD_TIMEOUT = 120.0  # seconds for one chunk read ahead of an upload (milliseconds when all is well)
#: What we usually need to route and trust a file without downloading it.
DEFAULT_FILE_FIELDS = (
    "id,name,mimeType,parents,properties,size,md5Checksum,createdTime,modifiedTime,trashed,owners(emailAddress)"
)
_MAX_BATCH = 100  # Drive rejects batches of more than 100 calls
_MAX_GENERATE_IDS = 1000
_BATCH_WORKERS = 4  # batch requests of one read_batch sent side by side
#: Writes a repeat would do twice (a second file, a second permission): each attempt goes on a new connection.
#: Deletes and updates are safe to repeat (a deleted file's second delete is recognised, see delete()).
FRESH_CONNECTION_METHODS = frozenset({"files.create", "permissions.create"})
#: Drive: ``uploadType=multipart`` is "for quick transfer of a small file (5 MB or less)"; a bigger body goes
#: resumable (5 MB read as 10**6 bytes: the metadata shares the request, and the strict fake stops at 5 MiB)
MULTIPART_MAX = 5_000_000


def _with_fields(fields: str, *more: str) -> str:
    """A ``fields`` selector with top-level fields added unless already there."""
    top, depth, start = set(), 0, 0
    for i, ch in enumerate(fields + ","):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            top.add(fields[start:i].split("(")[0].strip())
            start = i + 1
    return ",".join([fields, *[m for m in more if m not in top]])


def _detached(exception: BaseException | None) -> BaseException | None:
    """A batch part's error without its traceback.

    googleapiclient raises and catches each failed part's error inside ``BatchHttpRequest.execute``;
    kept with its traceback, it holds that frame and, through ``f_back``, every caller's frame and
    their locals (a poll's decoded replies: a whole model) until the cyclic GC happens to run."""
    if exception is not None:
        exception.__traceback__ = None
    return exception


def escape_q(value: str) -> str:
    """Escape ``value`` for use inside a single-quoted Drive ``q`` string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class CallCounter:
    """Thread-safe count of HTTP requests per API method, plus retries.

    ``snapshot()`` gives requests by method ("files.list", "files.create",
    "media.upload", "media.download", "batch", ...); ``total`` is their sum
    (every request sent, retries included); ``retries`` is how many of them
    were re-sends decided by the retry policy.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()

    def add(self, method: str, n: int = 1) -> None:
        with self._lock:
            self._calls[method] += n

    def add_retry(self, method: str, n: int = 1) -> None:
        with self._lock:
            self._retries[method] += n

    def snapshot(self) -> dict[str, int]:
        """HTTP requests sent, by API method name."""
        with self._lock:
            return dict(self._calls)

    def retry_snapshot(self) -> dict[str, int]:
        """Retries, by API method name."""
        with self._lock:
            return dict(self._retries)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._calls.values())

    @property
    def retries(self) -> int:
        with self._lock:
            return sum(self._retries.values())

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._retries.clear()

    def __repr__(self) -> str:
        return f"CallCounter(total={self.total}, retries={self.retries}, by_method={self.snapshot()})"


@dataclass
class _Attempts:
    """What happened across the attempts of one logical call."""

    count: int = 0
    ambiguous: bool = False  # an attempt failed in a way the server may have acted on


class _StreamMedia(MediaUpload):
    """Resumable upload source reading a stream one chunk at a time (bounded memory).

    googleapiclient asks for ``getbytes(offset, n)``. Each chunk is read with
    ``readinto`` straight into a fresh ``bytearray`` that is never touched
    again: one copy from the source, and a re-sent request body stays intact.
    (http.client sends a non-``bytes`` body after the headers instead of
    joining the two, which would be one more copy of the chunk.) A seekable
    stream is re-read from the right offset when googleapiclient resends after
    a probe; for a non-seekable one the last chunk is kept for that.

    With ``read_ahead`` (seekable streams), the next chunk is read in a worker
    thread while the current one is sent: a stream that encrypts as it is read
    then does so beside the request instead of between two requests, for one
    more chunk in memory. Call ``close()`` when the upload is over.
    """

    def __init__(self, stream: BinaryIO, size: int, mimetype: str, chunksize: int, *, read_ahead: bool = False) -> None:
        super().__init__()
        self._stream = stream
        self._size = size
        self._mimetype = mimetype
        self._chunksize = chunksize
        self._last: tuple[int, bytearray] | None = None  # (offset, chunk), non-seekable streams only
        self._pos = 0  # the stream's position relative to _origin
        try:
            self._seekable = bool(stream.seekable())
            self._origin = stream.tell() if self._seekable else 0
        except (AttributeError, OSError):
            self._seekable, self._origin = False, 0
        self._ahead: tuple[int, Future[bytearray]] | None = None  # (offset, the next chunk being read)
        self._reader = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-read-ahead")
            if read_ahead and self._seekable
            else None
        )

    def chunksize(self) -> int:
        return self._chunksize

    def mimetype(self) -> str:
        return self._mimetype

    def size(self) -> int:
        return self._size

    def resumable(self) -> bool:
        return True

    def has_stream(self) -> bool:
        return False

    # a bytearray avoids copying each chunk; googleapiclient only measures and sends it (its stubs say bytes)
    def getbytes(self, begin: int, length: int) -> bytearray:  # type: ignore[override]
        length = max(0, min(length, self._size - begin))
        chunk = self._take_ahead(begin, length)
        if chunk is None:
            chunk = self._read(begin, bytearray(length))
        if self._reader is not None and begin + length < self._size:
            # the buffer is made here, the worker only fills it: memory a worker thread allocates goes to a
            # malloc arena of its own, which kept 15-20 MiB of freed chunks resident in the benchmark
            ahead = bytearray(min(self._chunksize, self._size - begin - length))
            self._ahead = (begin + length, self._reader.submit(self._read, begin + length, ahead))
        return chunk

    def _take_ahead(self, begin: int, length: int) -> bytearray | None:
        """The chunk read ahead if it is the one asked for (None otherwise: it is read again)."""
        if self._ahead is None:
            return None
        at, future = self._ahead
        self._ahead = None
        if at == begin:
            chunk = future.result(timeout=READ_AHEAD_TIMEOUT)  # the read's own error (a short stream) surfaces here
            if len(chunk) == length:
                return chunk
            return None
        try:  # a resend from elsewhere: wait for the worker to leave the stream, drop what it read
            future.result(timeout=READ_AHEAD_TIMEOUT)
        except DriveError:
            pass  # read again below, where it matters
        return None

    def _read(self, begin: int, chunk: bytearray) -> bytearray:
        """Fill ``chunk`` from the stream's offset ``begin``; returns it."""
        length = len(chunk)
        view = memoryview(chunk)
        try:
            have = 0
            last = self._last
            if last is not None and last[0] <= begin <= self._pos:  # a resend: reuse what was read already
                have = min(length, self._pos - begin)
                view[:have] = memoryview(last[1])[begin - last[0] : begin - last[0] + have]
            elif begin != self._pos:
                self._move_to(begin)
            got = have + _read_into(self._stream, view[have:])
        finally:
            view.release()
        self._pos = max(self._pos, begin + got)
        if got < length:
            raise DriveError(
                f"upload_stream was told size={self._size} but the stream ended at "
                f"{begin + got} bytes. Fix: pass the stream's real size."
            )
        self._last = None if self._seekable else (begin, chunk)
        return chunk

    def close(self) -> None:
        """Stop reading ahead and drop a chunk read ahead (the upload is over or failed)."""
        self._ahead = None
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)

    def _move_to(self, begin: int) -> None:
        if self._seekable:
            self._stream.seek(self._origin + begin)
            self._pos = begin
            return
        if begin < self._pos:
            raise DriveError(
                f"Upload needs to resend from byte {begin} but the stream cannot seek "
                "back that far. Fix: pass a seekable stream (a file) to upload_stream."
            )
        while self._pos < begin:  # skip forward (not expected with Drive)
            skipped = self._stream.read(min(begin - self._pos, self._chunksize))
            if not skipped:
                break
            self._pos += len(skipped)

    def to_json(self) -> str:  # pragma: no cover - we never serialize uploads
        raise NotImplementedError("stream uploads are not serializable")


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` (``readinto`` when it has one); returns the bytes read."""
    got = 0
    readinto = getattr(stream, "readinto", None)
    while got < len(view):
        n = 0
        if readinto is not None:
            try:
                n = readinto(view[got:]) or 0
            except NotImplementedError:  # a RawIOBase that only implements read()
                readinto = None
                continue
        else:
            piece = stream.read(len(view) - got)
            n = len(piece) if piece else 0
            view[got : got + n] = piece
        if not n:
            break
        got += n
    return got


class _LimitedWriter:
    """Collect bytes in memory, refusing more than ``max_bytes``."""

    def __init__(self, max_bytes: int | None) -> None:
        self.buffer = io.BytesIO()
        self.max_bytes = max_bytes

    def write(self, data: bytes) -> int:
        if self.max_bytes is not None and self.buffer.tell() + len(data) > self.max_bytes:
            raise DriveTooLarge(
                f"Download is larger than max_bytes={self.max_bytes}. Fix: raise the "
                "limit or use download_to() to stream it to a file."
            )
        return self.buffer.write(data)


@dataclass
class BatchReads:
    """What one :meth:`DriveApi.read_batch` found: each file by id and each listing by query, or the typed
    error of that part (a missing file is a :class:`DriveNotFound`, not an exception)."""

    files: dict[str, dict[str, Any] | DriveError] = field(default_factory=dict)
    listings: dict[str, list[dict[str, Any]] | DriveError] = field(default_factory=dict)


class ListOptions(TypedDict, total=False):
    """What a listing may ask besides its query: the fields of each file, page size (1-1000), order."""

    fields: str
    page_size: int
    order_by: str | None


class UploadOptions(TypedDict, total=False):
    """What an upload may say besides its name, content and folder (one list for both upload methods)."""

    file_id: str | None  # a pre-generated id makes the create idempotent
    mime_type: str
    fields: str
    properties: Mapping[str, str] | None


def _upload_options(options: UploadOptions) -> tuple[str | None, str, str, Mapping[str, str] | None]:
    """The options with their defaults: file id, MIME type, response fields, properties."""
    return (
        options.get("file_id"),
        options.get("mime_type", "application/octet-stream"),
        options.get("fields", DEFAULT_FILE_FIELDS),
        options.get("properties"),
    )


class DriveApi:
    """Typed, retried, counted access to Drive v3 for one account.

    Thread-safe: each request gets its own HTTP channel and counters are locked.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        chunk_size: int = 8 * 1024 * 1024,
        timeout: float = 60,
        limiter: QuotaLimiter | None = None,
        writes: WritePacer | None = None,
        sign_in: SignIn | None = None,
    ) -> None:
        if chunk_size <= 0 or chunk_size % UPLOAD_CHUNK_UNIT:
            raise ValueError(
                f"chunk_size={chunk_size} must be a positive multiple of 256 KiB "
                f"({UPLOAD_CHUNK_UNIT} bytes): Drive rejects other resumable chunk sizes."
            )
        self.credentials = credentials
        self.base_url = base_url
        self.retry = retry if retry is not None else RetryPolicy()
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.limiter = limiter  # paces quota units; shared by every thread (and DriveApi) of a process
        self.writes = writes  # paces this account's writes below Drive's per-account limit (shared likewise)
        self.sign_in = sign_in or SignIn.of(credentials)  # named when Google stops refreshing the credentials
        # Google refused to refresh the sign-in for good (invalid_grant): every later call fails the same way
        # without asking Google again, whichever thread makes it.
        self.sign_in_refused: DriveSignInRefused | None = None
        self.calls = CallCounter()
        self._tls = threading.local()
        self._pool: ThreadPoolExecutor | None = None  # read_batch's side-by-side batch requests
        self._pool_lock = threading.Lock()
        # Keep-alive channels, one thread at a time (a lambda: tests replace _new_http on the instance)
        self._channels = ConnectionPool(lambda: self._new_http())
        self._service = build_drive_service(credentials, base_url=base_url, timeout=timeout, hook=self._on_http_request)
        # The files resource, built once: googleapiclient builds every method of a resource each time it is asked
        # for one (a poll of 100 reads asked 100 times: a seventh of a busy client's CPU); it holds no request
        # state, so threads share it.
        self._files = self._service.files()

    escape_q = staticmethod(escape_q)

    # ------------------------------------------------------------------ core

    def _on_http_request(self, uri: str, method: str) -> None:
        self.calls.add(getattr(self._tls, "method", None) or "other")

    @contextmanager
    def _counted_as(self, method: str) -> Iterator[None]:
        previous = getattr(self._tls, "method", None)
        self._tls.method = method
        try:
            yield
        finally:
            self._tls.method = previous

    def _new_http(self) -> Any:
        return new_authorized_http(self.credentials, timeout=self.timeout, hook=self._on_http_request)

    def _execute(
        self,
        method: str,
        request: Any,
        *,
        call: Callable[[Any, Any], Any] | None = None,
        resource: str | None = None,
        attempts: _Attempts | None = None,
        units: int | None = None,
        writes: int | None = None,
        fresh: bool | None = None,
    ) -> Any:
        """Run one API call under the retry policy; the only place requests are sent.

        ``call(request, http)`` performs one attempt (default: ``execute``) on a
        keep-alive channel of this DriveApi's :class:`ConnectionPool`; an attempt that
        fails closes its channel, so a broken connection never leaks into the retry.
        ``fresh`` (default: for the writes not safe to repeat, :data:`FRESH_CONNECTION_METHODS`)
        sends the attempt on a new connection, which a server cannot have closed while it was idle.
        Failures that reach the caller are typed :class:`DriveError`s.
        """
        state = attempts if attempts is not None else _Attempts()
        if self.sign_in_refused is not None:
            raise self.sign_in_refused

        cost = units if units is not None else units_for(method)
        written = writes if writes is not None else int(method in WRITE_METHODS)
        new_connection = fresh if fresh is not None else method in FRESH_CONNECTION_METHODS

        def attempt() -> Any:
            state.count += 1
            if self.limiter is not None:
                self.limiter.acquire(cost)
            if self.writes is not None and written:  # each attempt is a write to Drive, a retried one too
                self.writes.acquire(written)
            try:
                with self._channels.lend(fresh=new_connection) as http, self._counted_as(method):
                    if call is not None:
                        return call(request, http)
                    return request.execute(http=http, num_retries=0)
            except BaseException as exc:
                if is_ambiguous(exc):
                    state.ambiguous = True
                raise

        def on_retry(rs: tenacity.RetryCallState) -> None:
            self.calls.add_retry(method)
            exc = rs.outcome.exception() if rs.outcome else None
            log.info(
                "Drive %s failed (%s); retry %d in %.2fs",
                method,
                describe(exc) if exc else "?",
                rs.attempt_number,
                rs.upcoming_sleep,
            )

        try:
            return self.retry.retrying(on_retry)(attempt)
        except Exception as exc:
            err = to_drive_error(exc, method=method, resource=resource, retries=state.count - 1, sign_in=self.sign_in)
            if isinstance(err, DriveSignInRefused):
                self.sign_in_refused = err
            if err is None or err is exc:
                raise
            raise err from exc

    # -------------------------------------------------------------- metadata

    def about_me(self) -> str:
        """Email address of the account these credentials act as."""
        about = self._execute("about.get", self._service.about().get(fields="user"))
        return str(about["user"]["emailAddress"])

    def generate_ids(self, count: int) -> list[str]:
        """Pre-allocated file ids: a create with one of them is idempotent under retry."""
        ids: list[str] = []
        while len(ids) < count:
            n = min(_MAX_GENERATE_IDS, count - len(ids))
            req = self._files.generateIds(count=n, space="drive", type="files")
            ids.extend(self._execute("files.generateIds", req)["ids"])
        return ids

    def get(self, file_id: str, fields: str = DEFAULT_FILE_FIELDS) -> dict[str, Any]:
        """One file's metadata by id (consistent, unlike list by name)."""
        req = self._files.get(fileId=file_id, fields=fields)
        return self._execute("files.get", req, resource=file_id)

    def get_many(
        self, file_ids: Iterable[str], fields: str = DEFAULT_FILE_FIELDS
    ) -> dict[str, dict[str, Any] | DriveError]:
        """Many files' metadata by id in one batch request per 100 ids: ``{id: resource or typed error}``
        (:meth:`read_batch` without listings)."""
        return self.read_batch(file_ids, (), fields=fields).files

    def read_batch(
        self,
        file_ids: Iterable[str],
        queries: Iterable[str],
        *,
        fields: str = DEFAULT_FILE_FIELDS,
        list_fields: str = DEFAULT_FILE_FIELDS,
    ) -> BatchReads:
        """``files.get`` of each id and ``files.list`` of each query, in batch requests of at most 100 calls
        (sent side by side when there are more): one HTTP request per 100 reads.

        A missing file is a :class:`DriveNotFound` in the answer, not an exception: callers ask for
        files that may not exist yet. A listing is one page of up to 1,000 files; a longer one is
        followed page by page with ``files.list`` requests of its own. The batch request itself is
        retried like any call; a part that failed transiently is reported, not retried (the caller asks
        again later). Each part costs what its method costs in the quota (and in the pacer): a get 5
        units, a listing 100."""
        parts: list[tuple[str, str]] = [("get", i) for i in dict.fromkeys(file_ids)]
        parts += [("list", q) for q in dict.fromkeys(queries)]
        found = BatchReads()
        chunks = [parts[i : i + _MAX_BATCH] for i in range(0, len(parts), _MAX_BATCH)]
        if len(chunks) > 1:  # each worker keeps the caller's retry deadline (a context variable)
            contexts = [contextvars.copy_context() for _ in chunks]
            pool = self._batch_pool()
            futures = [
                pool.submit(ctx.run, self._read_chunk, chunk, fields, list_fields, found)
                for ctx, chunk in zip(contexts, chunks, strict=True)
            ]
            for future in futures:
                future.result()
        elif chunks:
            self._read_chunk(chunks[0], fields, list_fields, found)
        return found

    def _batch_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_BATCH_WORKERS, thread_name_prefix="drive-batch")
            return self._pool

    def close(self) -> None:
        """Close the kept connections and stop read_batch's threads.

        Safe to call more than once; a call made after it still works (on a one-off connection, and a
        new batch pool if it reads a batch), so a DriveApi shared by two owners survives one closing it.
        """
        self._channels.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _read_chunk(self, parts: list[tuple[str, str]], fields: str, list_fields: str, found: BatchReads) -> None:
        """One batch request of at most 100 reads; answers land in ``found`` (listings followed to their end)."""
        answers: dict[str, tuple[Any, BaseException | None]] = {}

        def on_part(request_id: str, response: Any, exception: BaseException | None) -> None:
            answers[request_id] = (response, _detached(exception))

        batch = self._service.new_batch_http_request(callback=on_part)
        for i, (kind, key) in enumerate(parts):
            if kind == "get":
                batch.add(self._files.get(fileId=key, fields=fields), request_id=str(i))
            else:
                batch.add(self._files.list(**self._list_kwargs(key, list_fields, 1000)), request_id=str(i))
        units = sum(units_for("files.get" if kind == "get" else "files.list") for kind, _ in parts)
        self._execute("batch.read", batch, call=lambda b, http: b.execute(http=http), units=units)
        for i, (kind, key) in enumerate(parts):
            response, exc = answers.get(str(i), (None, None))
            method = "files.get" if kind == "get" else "files.list"
            error = None
            if exc is not None or not isinstance(response, dict):
                error = to_drive_error(exc, method=method, resource=key) if exc is not None else None
                error = error or DriveError(f"no answer for {method} {key} in Drive's batch reply", method=method)
            if kind == "get":
                found.files[key] = error or response
                continue
            if error is not None:
                found.listings[key] = error
                continue
            files, token = list(response.get("files", [])), response.get("nextPageToken")
            try:
                while token:
                    more, token = self.list_page(key, page_token=token, fields=list_fields)
                    files.extend(more)
            except DriveError as err:
                found.listings[key] = err.with_traceback(None)
                continue
            found.listings[key] = files

    def list_page(
        self, q: str, *, page_token: str | None = None, **options: Unpack[ListOptions]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``files.list``: (files, next_page_token or None)."""
        fields = options.get("fields", DEFAULT_FILE_FIELDS)
        order_by = options.get("order_by")
        kwargs: dict[str, Any] = dict(
            q=q,
            pageSize=max(1, min(options.get("page_size", 1000), 1000)),
            fields=f"nextPageToken,files({fields})",
            spaces="drive",
        )
        if order_by:
            kwargs["orderBy"] = order_by
        if page_token:
            kwargs["pageToken"] = page_token
        resp = self._execute("files.list", self._files.list(**kwargs))
        return list(resp.get("files", [])), resp.get("nextPageToken")

    @staticmethod
    def _list_kwargs(q: str, fields: str, page_size: int) -> dict[str, Any]:
        return dict(q=q, pageSize=page_size, fields=f"nextPageToken,files({fields})", spaces="drive")

    def list_files(self, q: str, **options: Unpack[ListOptions]) -> list[dict[str, Any]]:
        """Every file matching ``q``, following all pages."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            files, token = self.list_page(q, page_token=token, **options)
            out.extend(files)
            if not token:
                return out

    def update(
        self,
        file_id: str,
        *,
        name: str | None = None,
        add_parents: Iterable[str] | None = None,
        remove_parents: Iterable[str] | None = None,
        trashed: bool | None = None,
        fields: str = DEFAULT_FILE_FIELDS,
        properties: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """Change metadata (rename, properties, move, trash); content is untouched."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if properties is not None:
            body["properties"] = dict(properties)
        if trashed is not None:
            body["trashed"] = trashed
        kwargs: dict[str, Any] = dict(fileId=file_id, body=body, fields=fields)
        if add_parents:
            kwargs["addParents"] = ",".join(add_parents)
        if remove_parents:
            kwargs["removeParents"] = ",".join(remove_parents)
        return self._execute("files.update", self._files.update(**kwargs), resource=file_id)

    def delete(self, file_id: str, *, missing_ok: bool = False) -> None:
        """Delete for good (owner only). A retry that finds the file gone counts as success."""
        state = _Attempts()
        req = self._files.delete(fileId=file_id)
        try:
            self._execute("files.delete", req, resource=file_id, attempts=state)
        except DriveNotFound:
            if missing_ok or state.ambiguous:  # an earlier attempt may have deleted it
                return
            raise

    def delete_many(self, file_ids: Iterable[str], *, missing_ok: bool = False) -> dict[str, DriveError | None]:
        """Delete many files with batch requests of at most 100 calls.

        Returns ``{file_id: None}`` for deleted files and a typed error for the
        others. Transient per-part failures are retried with the same policy.
        """
        ids = list(dict.fromkeys(file_ids))
        results: dict[str, DriveError | None] = {}
        size = self._deletes_per_batch()
        for start in range(0, len(ids), size):
            self._delete_batch(ids[start : start + size], missing_ok, results)
        return results

    def _deletes_per_batch(self) -> int:
        """Parts of one batch of deletes: at most the write pacer's burst when writes are paced.

        Why: a batch's parts reach Drive at once. The pacer lets a batch of N writes go once N tokens came, but then
        all N arrive together, and Drive takes only its own burst of them at once (the strict fake: 10) and refuses
        the rest, retried with backoffs up to 32 s each: a hundred deletes took minutes. Batches no larger than the
        pacer's burst reach Drive at the paced rate."""
        if self.writes is None:
            return _MAX_BATCH
        return max(1, min(_MAX_BATCH, int(self.writes.capacity)))

    def _delete_batch(self, ids: list[str], missing_ok: bool, results: dict[str, DriveError | None]) -> None:
        todo = list(ids)
        maybe_done: set[str] = set()
        round_no = 0
        started = time.monotonic()
        while todo:
            round_no += 1
            outcomes: dict[str, BaseException | None] = {}

            def on_part(
                request_id: str,
                _response: Any,
                exception: BaseException | None,
                outcomes: dict[str, BaseException | None] = outcomes,  # this round's
            ) -> None:
                outcomes[request_id] = _detached(exception)

            batch = self._service.new_batch_http_request(callback=on_part)
            for i, fid in enumerate(todo):
                batch.add(self._files.delete(fileId=fid), request_id=str(i))
            state = _Attempts()
            try:
                self._execute(
                    "batch",
                    batch,
                    call=lambda b, http: b.execute(http=http),
                    attempts=state,
                    units=MODIFY_UNITS * len(todo),
                    writes=len(todo),
                )
            except DriveError as err:
                for fid in todo:
                    results[fid] = err.with_traceback(None)  # kept in the answer: hold no frames (see _detached)
                return
            if state.ambiguous:
                maybe_done.update(todo)
            retry_next: list[str] = []
            last_exc: BaseException | None = None
            for i, fid in enumerate(todo):
                exc = outcomes.get(str(i))
                if exc is None:
                    results[fid] = None
                    continue
                if is_transient(exc):
                    retry_next.append(fid)
                    last_exc = exc
                    if is_ambiguous(exc):
                        maybe_done.add(fid)
                    continue
                error = to_drive_error(exc, method="files.delete", resource=fid, retries=round_no - 1)
                if isinstance(error, DriveNotFound) and (missing_ok or fid in maybe_done):
                    results[fid] = None
                else:
                    results[fid] = error
            if not retry_next:
                return
            wait = self.retry.wait_for(round_no, last_exc)
            out_of_time = time.monotonic() - started + wait > self.retry.max_total
            if round_no >= self.retry.max_attempts or out_of_time:
                for fid in retry_next:
                    assert last_exc is not None
                    results[fid] = to_drive_error(last_exc, method="files.delete", resource=fid, retries=round_no - 1)
                return
            self.calls.add_retry("files.delete", len(retry_next))
            log.info("Drive batch delete: %d parts failed transiently; retry in %.2fs", len(retry_next), wait)
            self.retry.sleep(wait)
            todo = retry_next

    def share(self, file_id: str, email: str, role: str = "reader") -> dict[str, Any]:
        """Give ``email`` reader or writer access, without a notification email."""
        if role not in ("reader", "writer"):
            raise ValueError(f"role must be 'reader' or 'writer', not {role!r}")
        req = self._service.permissions().create(
            fileId=file_id,
            body={"type": "user", "role": role, "emailAddress": email},
            sendNotificationEmail=False,
            fields="id,type,role,emailAddress",
        )
        return self._execute("permissions.create", req, resource=file_id)

    # --------------------------------------------------------------- creates

    def _create(
        self,
        method: str,
        run: Callable[[], dict[str, Any]],
        *,
        file_id: str | None,
        name: str,
        fields: str,
    ) -> dict[str, Any]:
        """Run a create; with a pre-generated id, a 409 means an earlier attempt already made it, if the
        file at that id is mine and has the name I gave (peers can read the ids I promise: one of them may
        have taken the id first)."""
        try:
            return run()
        except DriveConflict:
            if file_id is None:
                raise
            try:
                existing = self.get(file_id, fields=_with_fields(fields, "name", "ownedByMe"))
            except DriveNotFound:
                existing = None
            if existing is None or existing.get("name") != name or existing.get("ownedByMe") is not True:
                raise DriveConflict(
                    f"File id {file_id} is already used by another file. Fix: generate a "
                    "fresh id with generate_ids() for each new file.",
                    status=409,
                    method=method,
                ) from None
            log.info("Drive %s: id %s already exists (earlier attempt succeeded)", method, file_id)
            return existing

    @staticmethod
    def _metadata(
        name: str,
        parent_id: str | None,
        file_id: str | None,
        mime_type: str | None,
        properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if parent_id:
            body["parents"] = [parent_id]
        if properties:
            body["properties"] = dict(properties)
        if file_id:
            body["id"] = file_id
        if mime_type:
            body["mimeType"] = mime_type
        return body

    def create_folder(
        self,
        name: str,
        parent_id: str | None = None,
        *,
        file_id: str | None = None,
        fields: str = DEFAULT_FILE_FIELDS,
        properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a folder (duplicates by name are allowed by Drive; pass file_id for idempotency).

        ``properties`` are visible to every app, which is what peers with their own OAuth clients need
        (``appProperties`` would be private to the OAuth app that wrote them).
        """
        body = self._metadata(name, parent_id, file_id, FOLDER_MIME, properties)

        def run() -> dict[str, Any]:
            req = self._files.create(body=body, fields=fields)
            return self._execute("files.create", req)

        return self._create("files.create", run, file_id=file_id, name=name, fields=fields)

    def upload_bytes(
        self, name: str, data: bytes, *, parent_id: str | None, **options: Unpack[UploadOptions]
    ) -> dict[str, Any]:
        """Create a file with content: one multipart request if small (up to 5 MB and one chunk), else resumable.

        A body ending in ``\\r`` also goes resumable: googleapiclient ends the
        multipart part with a bare LF, so a server may read that ``\\r`` as half
        of a CRLF delimiter and drop it.
        """
        file_id, mime_type, fields, properties = _upload_options(options)
        if len(data) > min(self.chunk_size, MULTIPART_MAX) or data.endswith(b"\r"):
            return self._upload_resumable(
                name,
                io.BytesIO(data),
                len(data),
                parent_id,
                file_id,
                mime_type,
                fields,
                properties,
            )
        body = self._metadata(name, parent_id, file_id, None, properties)

        def run() -> dict[str, Any]:
            media = MediaInMemoryUpload(bytes(data), mimetype=mime_type, resumable=False)
            req = self._files.create(body=body, media_body=media, fields=fields)
            return self._execute("files.create", req)

        return self._create("files.create", run, file_id=file_id, name=name, fields=fields)

    def upload_stream(
        self, name: str, stream: BinaryIO, size: int, *, parent_id: str | None, **options: Unpack[UploadOptions]
    ) -> dict[str, Any]:
        """Create a file from a stream of ``size`` bytes with a chunked resumable upload.

        Memory stays around one chunk. Each chunk is retried by the policy; after
        a failure googleapiclient probes the session (``bytes */size``) and
        resumes from what Drive committed instead of starting over. Streams no
        bigger than one chunk and 5 MB are sent in a single multipart request.
        """
        if size < 0:
            raise ValueError("size must be >= 0")
        if size <= min(self.chunk_size, MULTIPART_MAX):
            data = _read_exactly(stream, size)
            return self.upload_bytes(name, data, parent_id=parent_id, **options)
        # read ahead: a stream that does work as it is read (a sealed payload encrypts and signs) does it beside
        # the previous chunk's request; upload_bytes's in-memory copy has nothing worth overlapping
        return self._upload_resumable(name, stream, size, parent_id, *_upload_options(options), read_ahead=True)

    def _upload_resumable(
        self,
        name: str,
        stream: BinaryIO,
        size: int,
        parent_id: str | None,
        file_id: str | None,
        mime_type: str,
        fields: str,
        properties: Mapping[str, str] | None = None,
        *,
        read_ahead: bool = False,
    ) -> dict[str, Any]:
        body = self._metadata(name, parent_id, file_id, None, properties)
        media = _StreamMedia(stream, size, mime_type, self.chunk_size, read_ahead=read_ahead)

        def run() -> dict[str, Any]:
            restarts = 0
            req = self._files.create(body=body, media_body=media, fields=fields)
            while True:
                try:
                    _status, done = self._execute(
                        "media.upload",
                        req,
                        call=lambda r, http: r.next_chunk(http=http, num_retries=0),
                        writes=int(req.resumable_uri is None),  # the session's start is the write; chunks are not
                        fresh=req.resumable_uri is None,  # the start creates the file: not safe to repeat
                    )
                except DriveNotFound:
                    # An expired/unknown upload session answers 404: start a new one once or twice.
                    if req.resumable_uri is None or restarts >= 2:
                        raise
                    restarts += 1
                    log.info("Drive upload session for %r was lost; restarting", name)
                    req = self._files.create(body=body, media_body=media, fields=fields)
                    continue
                if done is not None:
                    return done

        try:
            return self._create("media.upload", run, file_id=file_id, name=name, fields=fields)
        finally:
            media.close()

    # ------------------------------------------------------------- downloads

    def download_bytes(self, file_id: str, *, max_bytes: int | None = None) -> bytes:
        """A file's whole content in memory; refuses more than ``max_bytes``."""
        sink = _LimitedWriter(max_bytes)
        self._download(file_id, sink, max_bytes)
        return sink.buffer.getvalue()

    def download_to(self, file_id: str, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Stream a file's content to ``out`` in ranged chunks; returns the byte count (refuses more than
        ``max_bytes``)."""
        return self._download(file_id, out, max_bytes)

    def _download(self, file_id: str, out: Any, max_bytes: int | None) -> int:
        offset = 0
        total: int | None = None
        while total is None or offset < total:
            req = self._files.get_media(fileId=file_id)
            # Ranges are over the stored bytes: never let the body be re-encoded.
            for key in list(req.headers):
                if key.lower() in ("accept-encoding",):
                    del req.headers[key]
            req.headers["range"] = f"bytes={offset}-{offset + self.chunk_size - 1}"
            seen: dict[str, Any] = {}
            req.add_response_callback(lambda resp, seen=seen: seen.__setitem__("resp", resp))
            try:
                content = self._execute("media.download", req, resource=file_id)
            except DriveError as err:
                if err.status == 416 and offset == 0:
                    return 0  # empty file: Drive answers 416 bytes */0
                raise
            resp = seen.get("resp")
            status = int(resp.status) if resp is not None else 200
            if status == 200:  # server ignored the range: this is the whole file
                if offset:
                    raise DriveError(
                        "Drive ignored the Range header mid-download. Fix: retry the download.",
                        status=200,
                        method="media.download",
                    )
                total = len(content)
            else:
                crange = resp.get("content-range", "") if resp is not None else ""
                size = crange.rsplit("/", 1)[-1]
                total = int(size) if size.isdigit() else offset + len(content)
            if max_bytes is not None and total > max_bytes:
                raise DriveTooLarge(
                    f"File {file_id} has {total} bytes, more than max_bytes={max_bytes}. Fix: "
                    "raise the limit or stream it with download_to().",
                    method="media.download",
                )
            if not content and offset < total:
                raise DriveError(
                    f"Drive returned an empty chunk at byte {offset} of {total} for {file_id}. "
                    "Fix: retry the download.",
                    method="media.download",
                )
            out.write(content)
            offset += len(content)
        return offset


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        piece = stream.read(size - len(buf))
        if not piece:
            raise DriveError(
                f"upload_stream was told size={size} but the stream ended at {len(buf)} "
                "bytes. Fix: pass the stream's real size."
            )
        buf += piece
    return bytes(buf)
