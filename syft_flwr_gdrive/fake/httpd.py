"""Sockets: a threaded HTTP/1.1 server that feeds :class:`dispatch.Api` and applies transport faults.

Kept apart from the routes because the parts that touch sockets are the parts that must
be careful: keep-alive (every answer has ``Content-Length``), bodies read in bounded
memory with a stall timeout, downloads sent with ``sendfile`` from disk, connections that
are *dropped* on purpose, and a shutdown that does not hang on idle keep-alive clients.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from .blobs import CHUNK
from .dispatch import Api
from .faults import FaultEngine
from .links import DOWN
from .oauth import TOKEN_ROUTE
from .wire import STATUS_PHRASES
from .wire import Body
from .wire import Request
from .wire import Response

log = logging.getLogger(__name__)

#: routes the transport faults (latency, drops) never touch: the fake's admin and Google's OAuth endpoint
NOT_FAULTED = frozenset({"admin", TOKEN_ROUTE})
#: most request body the server drains after answering early before giving up on the connection
MAX_DRAIN = 256 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGoogleDrive/1.0"
    sys_version = ""
    server: FakeHTTPServer

    def setup(self) -> None:
        # StreamRequestHandler reads the class attribute; an instance one sets it per connection.
        self.timeout = self.server.idle_timeout  # type: ignore[misc]
        super().setup()
        # headers and body leave in separate writes; without NODELAY, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        log.debug("fake drive %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ request

    def _body(self) -> Body:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return self._dechunk()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return Body(self.rfile.read, max(0, length))

    def _dechunk(self) -> Body:
        """Spool a chunked body (rare; httplib2 always sends Content-Length) to disk."""
        spool = tempfile.SpooledTemporaryFile(max_size=CHUNK)
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionAbortedError("client closed the connection mid-body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            left = size
            while left:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ConnectionAbortedError("client closed the connection mid-body")
                spool.write(data)
                left -= len(data)
            self.rfile.readline(1024)
        n = spool.tell()
        spool.seek(0)
        return Body(spool.read, n)

    def _serve(self) -> None:
        srv = self.server
        api = srv.api
        self.connection.settimeout(srv.body_timeout)
        started = time.monotonic()
        try:
            body = self._body()
        except (ConnectionError, TimeoutError, ValueError, OSError):
            self._drop()
            return
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        req = Request.build(self.command, self.path, dict(self.headers.items()), body, f"http://{host}/")
        try:
            route = api.route_name(req)
        except (ConnectionError, TimeoutError, OSError):
            self._drop()
            return
        latency, drop = (0.0, None) if route in NOT_FAULTED else srv.faults.transport(route)
        if latency:
            srv.stopping.wait(latency)
        if drop == "before":
            api.count(f"{req.method} {route} (dropped)", None, 0)
            self._drop()
            return
        try:
            resp = api.respond(req)
        except (ConnectionError, TimeoutError, OSError) as e:
            log.debug("fake drive: body of %s %s did not arrive: %r", req.method, req.path, e)
            self._drop()
            return
        if body.remaining:
            if body.remaining > MAX_DRAIN:
                self.close_connection = True
            else:
                try:
                    if not body.drain():
                        self.close_connection = True
                except (ConnectionError, TimeoutError, OSError):
                    self.close_connection = True
        user = req.headers.get("x-fake-user")
        if drop == "after":
            resp.close()
            api.count(f"{req.method} {route} (dropped after)", user, 0)
            self._drop()
            return
        if route != TOKEN_ROUTE:  # the OAuth endpoint keeps its own counts (stats()["oauth"])
            api.count(f"{req.method} {route}", user, resp.status)
        self._write(resp, user)
        self.connection.settimeout(srv.idle_timeout)
        log.debug("fake drive: %s %s -> %s in %.3fs", req.method, req.path, resp.status, time.monotonic() - started)

    # ------------------------------------------------------------------ response

    def _write(self, resp: Response, user: str | None = None) -> None:
        try:
            reason = _reason(resp.status)
            self.send_response(resp.status, reason)
            for k, v in resp.headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(resp.length))
            if self.close_connection:
                self.send_header("Connection", "close")
            if resp.stream is None and self.command != "HEAD" and len(resp.body) <= 64 * 1024:
                # one write for small answers: BaseHTTPRequestHandler's header buffer is undocumented, so untyped
                self._headers_buffer.append(b"\r\n" + resp.body)  # type: ignore[attr-defined]
                self.flush_headers()
                return
            self.end_headers()
            if self.command == "HEAD":
                return
            if resp.stream is not None:
                self._send_file(*resp.stream, user)
            elif resp.body:
                self.wfile.write(resp.body)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            resp.close()

    def _send_file(self, fh: Any, offset: int, count: int, user: str | None) -> None:
        """A download body from disk, at ``user``'s downlink rate (``FaultConfig.download_bytes_per_s``)."""
        faults = self.server.faults
        while count > 0:
            n = faults.pace(user, DOWN, count) if user else count
            sent = self.connection.sendfile(fh, offset, n)
            if sent <= 0:
                raise ConnectionAbortedError("the file ended before its recorded size")
            offset += sent
            count -= sent

    def _drop(self) -> None:
        """Close the connection without answering (a dropped connection, as seen by the client)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _reason(status: int) -> str:
    return STATUS_PHRASES.get(status, "Unknown")


class FakeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so ``stop`` can close idle keep-alives."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], api: Api, faults: FaultEngine, body_timeout: float, idle_timeout: float
    ) -> None:
        self.api = api
        self.faults = faults
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set():
            self.shutdown_request(request)
            return
        t = threading.Thread(target=self._work, args=(request, client_address), daemon=True, name="fake-drive-conn")
        with self._conns_lock:
            self._conns[request] = t
        t.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conns_lock:
                self._conns.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake drive: connection error from %s", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> int:
        """Shut every open connection and join their threads; returns threads still alive."""
        with self._conns_lock:
            items = list(self._conns.items())
        for sock, _ in items:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        alive = 0
        for _, t in items:
            t.join(max(0.0, deadline - time.monotonic()))
            alive += t.is_alive()
        return alive

    def connection_count(self) -> int:
        with self._conns_lock:
            return len(self._conns)


__all__ = ["FakeHTTPServer"]
