"""A real HTTP server on a free port, in a thread, serving test files the ways image hosts do.

Routes (NAME is a key of the `files` given to ImageServer):
    /range/NAME                honours Range: 206 with Content-Range (200 when no Range is asked)
    /plain/NAME                ignores Range: 200 with Content-Length
    /chunked/NAME              200, chunked, no Content-Length
    /unknown-total/NAME        a Range gets 206 with `Content-Range: bytes 0-N/*`; no Range gets 200
    /flaky/NAME                503 the first time, then as /range/NAME
    /delay/SECONDS/ROUTE       waits, then answers as ROUTE
    /redirect/N/ROUTE          N redirects (302) to ROUTE
    /redirect-to?location=URL  302 to URL
    /status/CODE               that status, a short text body
    /trickle                   200 with Content-Length 10 MB, then one zero byte every 50 ms
    /stall                     headers after STALL_HEADERS_AFTER seconds, then silence
    /slow-headers              a status line, then header bytes one every 50 ms
    /huge/NAME                 NAME's bytes, then zeros to HUGE_BYTES, chunked, no Content-Length
A query string is ignored by the routes (redirects keep it), so a test can make its URLs its own.
Every request is recorded as a Hit (its path with the query), with the body bytes the handler wrote.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

HUGE_BYTES = 50 * 1024 * 1024
STALL_HEADERS_AFTER = 0.9
TRICKLE_INTERVAL = 0.05
_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Hit:
    path: str
    range: str | None
    body_bytes: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class ImageServer:
    def __init__(self, files: dict[str, tuple[bytes, str]], tls: ssl.SSLContext | None = None) -> None:
        self.files = files
        self.hits: list[Hit] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._flaky_seen: set[str] = set()
        handler = type("BoundHandler", (_Handler,), {"image_server": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_to(self, target: str) -> list[Hit]:
        """The requests for `target` (a path with its query, or a full URL of this server)."""
        path = target.removeprefix(self.base_url)
        with self._lock:
            return [hit for hit in self.hits if hit.path == path]

    def count(self, target: str) -> int:
        return len(self.requests_to(target))

    def record(self, path: str, range_header: str | None) -> Hit:
        hit = Hit(path, range_header)
        with self._lock:
            self.hits.append(hit)
        return hit

    def first_time(self, path: str) -> bool:
        with self._lock:
            first = path not in self._flaky_seen
            self._flaky_seen.add(path)
            return first

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # threads in a test connect at once; the default 5 would drop SYNs for a second


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    image_server: ImageServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):  # the prober hung up
            super().handle()

    def do_GET(self) -> None:
        self.hit = self.image_server.record(self.path, self.headers.get("Range"))
        try:
            self.route(self.path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.hit.done.set()

    def route(self, target: str) -> None:
        parts = urlsplit(target)
        kind, _, rest = parts.path.lstrip("/").partition("/")
        if kind == "delay":
            seconds, _, inner = rest.partition("/")
            time.sleep(float(seconds))
            self.route(f"/{inner}?{parts.query}" if parts.query else f"/{inner}")
        elif kind == "redirect":
            hops, _, inner = rest.partition("/")
            query = f"?{parts.query}" if parts.query else ""
            location = f"/redirect/{int(hops) - 1}/{inner}{query}" if int(hops) > 1 else f"/{inner}{query}"
            self.answer(302, b"", "text/plain", [("Location", location)])
        elif kind == "redirect-to":
            self.answer(302, b"", "text/plain", [("Location", parse_qs(parts.query)["location"][0])])
        elif kind == "status":
            self.answer(int(rest), f"status {rest}".encode(), "text/plain")
        elif kind == "trickle":
            self.trickle()
        elif kind == "stall":
            time.sleep(STALL_HEADERS_AFTER)
            self.headers_only(200, "image/png", [("Content-Length", "1000")])
            self.image_server.stopping.wait(5)
            self.close_connection = True
        elif kind == "slow-headers":
            self.write(b"HTTP/1.1 200 OK\r\nX-Slow: ", body=False)
            self.drip(b"a", limit=200)
        elif rest not in self.image_server.files:
            self.answer(404, b"no such file", "text/plain")
        else:
            self.serve_file(kind, rest, *self.image_server.files[rest])

    def serve_file(self, kind: str, name: str, data: bytes, content_type: str) -> None:
        if kind == "flaky":
            if self.image_server.first_time(self.path):
                self.answer(503, b"try later", "text/plain")
                return
            kind = "range"
        wanted = _RANGE.match(self.headers.get("Range", ""))
        if kind in ("range", "unknown-total") and wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)) if wanted.group(2) else len(data) - 1, len(data) - 1)
            total = "*" if kind == "unknown-total" else str(len(data))
            self.answer(206, data[start : end + 1], content_type, [("Content-Range", f"bytes {start}-{end}/{total}")])
        elif kind in ("range", "unknown-total", "plain"):
            self.answer(200, data, content_type)
        elif kind == "chunked":
            self.chunked(200, content_type, _pieces(data))
        elif kind == "huge":
            self.chunked(200, content_type, _huge(data))
        else:
            self.answer(404, b"no such route", "text/plain")

    def answer(self, status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] | None = None) -> None:
        self.headers_only(status, content_type, [("Content-Length", str(len(body))), *(extra or [])])
        self.write(body)

    def headers_only(self, status: int, content_type: str, extra: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()

    def chunked(self, status: int, content_type: str, pieces: Iterator[bytes]) -> None:
        self.headers_only(status, content_type, [("Transfer-Encoding", "chunked")])
        for piece in pieces:
            if self.image_server.stopping.is_set():
                return
            self.wfile.write(f"{len(piece):x}\r\n".encode())
            self.write(piece)
            self.wfile.write(b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def trickle(self) -> None:
        self.headers_only(200, "application/octet-stream", [("Content-Length", str(10 * 1024 * 1024))])
        self.drip(b"\0", limit=400)

    def drip(self, byte: bytes, limit: int) -> None:
        for _ in range(limit):
            if self.image_server.stopping.wait(TRICKLE_INTERVAL):
                break
            self.write(byte)
            self.wfile.flush()
        self.close_connection = True

    def write(self, data: bytes, *, body: bool = True) -> None:
        self.wfile.write(data)
        if body:
            self.hit.body_bytes += len(data)


def _pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


def _huge(head: bytes) -> Iterator[bytes]:
    yield from _pieces(head)
    zeros = bytes(_CHUNK)
    for _ in range((HUGE_BYTES - len(head)) // _CHUNK):
        yield zeros
