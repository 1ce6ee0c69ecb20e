"""Small HTTP servers the simulator tests talk to: a webhook receiver and a media (image) server."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class Callback:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int  # the status the receiver answered with

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message_id(self) -> str | None:
        document = self.json
        report = document.get("message_delivery_report") or document.get("message") or {}
        return report.get("message_id") or report.get("id")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines on stderr."""


class WebhookReceiver:
    """Records every callback; can answer non-2xx to the next N posts to exercise retries."""

    def __init__(self) -> None:
        self.callbacks: list[Callback] = []
        self._failures_to_give = 0
        self._failure_status = 500
        self._changed = threading.Condition()
        receiver = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._next_status()
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver._record(Callback(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _next_status(self) -> int:
        with self._changed:
            if self._failures_to_give > 0:
                self._failures_to_give -= 1
                return self._failure_status
            return 200

    def _record(self, callback: Callback) -> None:
        with self._changed:
            self.callbacks.append(callback)
            self._changed.notify_all()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._changed:
            self._failures_to_give, self._failure_status = count, status

    def clear(self) -> None:
        with self._changed:
            self.callbacks = []
            self._failures_to_give = 0

    def wait_for(self, predicate: Callable[[Callback], bool], count: int = 1, timeout: float = 5.0) -> list[Callback]:
        """The first `count` callbacks matching, waiting for them; AssertionError when they do not come."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [callback for callback in self.callbacks if predicate(callback)]
                if len(matching) >= count:
                    return matching[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} callbacks, got {len(matching)}: {matching}")
                self._changed.wait(remaining)

    def for_message(self, message_id: str, count: int = 1, timeout: float = 5.0) -> list[Callback]:
        return self.wait_for(lambda callback: callback.message_id == message_id, count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Resource:
    body: bytes
    content_type: str = "image/png"
    status: int = 200
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes


class MediaServer:
    """Serves resources by path and counts the GETs of each."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.hits: Counter[str] = Counter()
        media = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                media.hits[self.path] += 1
                resource = media.resources.get(self.path, Resource(b"not found", "text/plain", 404))
                self.send_response(resource.status)
                self.send_header("content-type", resource.content_type)
                if resource.send_length:
                    self.send_header("content-length", str(len(resource.body)))
                else:
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(resource.body)  # the prober may stop reading once it has what it needs

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def add(self, path: str, resource: Resource) -> str:
        self.resources[path] = resource
        return self.url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def image_bytes(width: int, height: int, image_format: str = "PNG", size: int | None = None) -> bytes:
    """A plain image of these dimensions; with `size`, padded after its end marker to exactly that many bytes
    (readers ignore trailing bytes, so the file stays a valid image of the given dimensions)."""
    buffer = io.BytesIO()
    mode = "P" if image_format == "GIF" else "RGB"
    Image.new(mode, (width, height), 120).save(buffer, format=image_format)
    data = buffer.getvalue()
    if size is not None:
        assert size >= len(data), f"a {width}x{height} {image_format} needs at least {len(data)} bytes"
        data += b"\0" * (size - len(data))
    return data
