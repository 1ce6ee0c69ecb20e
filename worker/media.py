"""Media probing: type, dimensions and size of an image URL, from a bounded, cached GET.

One GET asks for the first `header_bytes` with a `Range` header. A server that honours it (206) gives
the full size in `Content-Range`; one that ignores it (200) is read only as far as Pillow needs to
identify the image, then, without a `Content-Length`, counted (bytes not kept) up to `max_bytes`.
At most `max_bytes` of a body are held in memory, and the whole probe, redirects included, has one
deadline: a server that trickles a byte at a time is cut off at `timeout` seconds, not per read.
Pillow only identifies (`Image.open` reads headers lazily); nothing is decoded.

Results are cached per URL (LRU, with a TTL); failures too, for a shorter time, so a transient
error does not stick. Concurrent probes of one URL share one request. Thread-safe.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self

import httpx
from PIL import Image

__all__ = ["FAILURE_TTL", "MAX_REDIRECTS", "MediaInfo", "MediaProber", "MediaUnreachable", "probe_media"]

#: Redirects followed before a probe gives up.
MAX_REDIRECTS = 5
#: Seconds a failed probe is remembered by default: short, so a transient error does not stick.
FAILURE_TTL = 30.0
_SCHEMES = ("http", "https")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
# The first identification attempt: PNG, GIF, BMP and most JPEG headers fit in 1 KB.
_FIRST_ATTEMPT = 1024
# Pillow calls a JPEG with a multi-picture EXIF block (as phone cameras write) "MPO": still a jpg file.
_FORMAT_ALIASES = {"mpo": "jpeg"}
_REQUEST_HEADERS = {
    "Accept": "image/*, */*;q=0.5",
    # The size that matters is the file's, so ask for the bytes as stored, not compressed in transit.
    "Accept-Encoding": "identity",
    "User-Agent": "kakao-dispatch-media-probe",
}


@dataclass(frozen=True)
class MediaInfo:
    """What a probe learnt about one URL; None where it could not be learnt."""

    url: str
    #: Lowercase Pillow format name ("png", "jpeg", "gif", "webp", "bmp", ...); None when not an image Pillow knows.
    format: str | None
    width: int | None
    height: int | None
    #: Size of the whole resource in bytes, or at least this many when `size_is_lower_bound`.
    size_bytes: int | None
    size_is_lower_bound: bool
    #: The Content-Type header without parameters.
    content_type: str | None


class MediaUnreachable(Exception):
    """The media could not be fetched; `reason` says why in a few words ("HTTP 404", "timed out after 5.0 s")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Failure:
    reason: str


_Outcome = MediaInfo | _Failure


@dataclass(frozen=True)
class _Identity:
    format: str
    width: int
    height: int


@dataclass(frozen=True)
class _Body:
    identity: _Identity | None
    #: Bytes received; the body's exact length when `complete`.
    seen: int
    complete: bool


class _DeadlinePassed(Exception):
    pass


class MediaProber:
    """Probes image URLs over HTTP(S); see the module docstring for what it reads and caches.

    `client` is used as given (and not closed) when passed; otherwise the prober owns one, without
    keep-alive so that every probe's connection can be cut at its deadline. `failure_ttl` is how long
    a failure is remembered (at most `cache_ttl`); `clock` serves the cache only, never the deadline.
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        timeout: float = 5.0,
        header_bytes: int = 64 * 1024,
        max_bytes: int = 5 * 1024 * 1024 + 1,
        cache_size: int = 4096,
        cache_ttl: float = 600.0,
        failure_ttl: float = FAILURE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if not 0 < header_bytes <= max_bytes:
            raise ValueError(f"need 0 < header_bytes <= max_bytes, not {header_bytes} and {max_bytes}")
        if cache_size < 0 or cache_ttl < 0 or failure_ttl < 0:
            raise ValueError("cache_size, cache_ttl and failure_ttl must not be negative")
        self._owns_client = client is None
        self._client = client or httpx.Client(
            headers={"User-Agent": _REQUEST_HEADERS["User-Agent"]},
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._timeout = float(timeout)
        self._header_bytes = header_bytes
        self._max_bytes = max_bytes
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._failure_ttl = min(failure_ttl, cache_ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, _Outcome]] = OrderedDict()
        self._in_flight: dict[str, Future[_Outcome]] = {}
        self._closed = False

    def probe(self, url: str) -> MediaInfo:
        """Type, dimensions and size of the image at `url`; raises MediaUnreachable when it cannot be fetched."""
        _check_url(url)
        with self._lock:
            if self._closed:
                raise RuntimeError("this MediaProber is closed")
            outcome = self._cached(url)
            pending = self._in_flight.get(url) if outcome is None else None
            mine: Future[_Outcome] | None = None
            if outcome is None and pending is None:
                mine = self._in_flight[url] = Future()
        if mine is not None:
            outcome = self._probe_and_remember(url, mine)
        elif pending is not None:
            outcome = pending.result()  # another thread is probing this URL: share its answer
        assert outcome is not None
        if isinstance(outcome, _Failure):
            raise MediaUnreachable(outcome.reason)
        return outcome

    def close(self) -> None:
        """Close the HTTP client if the prober created it."""
        with self._lock:
            self._closed = True
            self._cache.clear()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # The cache (callers hold self._lock).

    def _cached(self, url: str) -> _Outcome | None:
        entry = self._cache.get(url)
        if entry is None:
            return None
        expires_at, outcome = entry
        if self._clock() >= expires_at:
            del self._cache[url]
            return None
        self._cache.move_to_end(url)
        return outcome

    def _remember(self, url: str, outcome: _Outcome) -> None:
        ttl = self._failure_ttl if isinstance(outcome, _Failure) else self._cache_ttl
        if self._cache_size == 0 or ttl == 0:
            return
        self._cache[url] = (self._clock() + ttl, outcome)
        self._cache.move_to_end(url)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _probe_and_remember(self, url: str, future: Future[_Outcome]) -> _Outcome:
        try:
            outcome = self._fetch(url)
        except BaseException as error:  # a bug, or an interrupt: tell the waiting threads, cache nothing
            with self._lock:
                del self._in_flight[url]
            future.set_exception(error)
            raise
        with self._lock:
            self._remember(url, outcome)
            del self._in_flight[url]
        future.set_result(outcome)
        return outcome

    # The fetch.

    def _fetch(self, url: str) -> _Outcome:
        timed_out = f"timed out after {self._timeout} s"
        with _Deadline(self._timeout) as deadline:
            try:
                return self._read(url, deadline)
            except MediaUnreachable as error:
                return _Failure(error.reason)
            except _DeadlinePassed:
                return _Failure(timed_out)
            except httpx.HTTPError as error:
                if deadline.expired or isinstance(error, httpx.TimeoutException):
                    return _Failure(timed_out)
                return _Failure(_describe(error))

    def _read(self, url: str, deadline: _Deadline) -> MediaInfo:
        with self._get(url, deadline, ranged=True) as response:
            if response.status_code != 206:
                return self._read_whole(url, response, deadline)
            total = _content_range_total(response)
            body = _read_body(response, deadline, self._header_bytes, self._header_bytes, count_to=None)
            if total is not None and (body.identity is not None or body.seen >= total):
                return _media_info(url, response, body.identity, total, size_is_lower_bound=False)
        # The range did not give the size (`bytes 0-N/*`) or was too short to identify the image
        # (WebP, a JPEG behind a large EXIF block): read the resource itself.
        with self._get(url, deadline, ranged=False) as response:
            info = self._read_whole(url, response, deadline)
        if total is not None:
            info = replace(info, size_bytes=total, size_is_lower_bound=False)
        return info

    def _read_whole(self, url: str, response: httpx.Response, deadline: _Deadline) -> MediaInfo:
        declared = _declared_size(response)
        count_to = None if declared is not None else self._max_bytes
        body = _read_body(response, deadline, self._header_bytes, self._max_bytes, count_to=count_to)
        if declared is not None:
            return _media_info(url, response, body.identity, declared, size_is_lower_bound=False)
        return _media_info(url, response, body.identity, body.seen, size_is_lower_bound=not body.complete)

    @contextlib.contextmanager
    def _get(self, url: str, deadline: _Deadline, *, ranged: bool) -> Iterator[httpx.Response]:
        """A streamed GET, redirects followed, that fails with MediaUnreachable on an HTTP error status."""
        headers = dict(_REQUEST_HEADERS)
        if ranged:
            headers["Range"] = f"bytes=0-{self._header_bytes - 1}"
        target: str | httpx.URL = url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(target, headers, deadline)
            if response.next_request is None:
                break
            target = response.next_request.url
            deadline.unwatch()
            response.close()
            if target.scheme not in _SCHEMES:
                raise MediaUnreachable("redirected to a URL that is not http(s)")
            if not _has_host_and_port(target):
                raise MediaUnreachable("redirected to an invalid URL")
        else:
            raise MediaUnreachable(f"more than {MAX_REDIRECTS} redirects")
        try:
            if not response.is_success:
                raise MediaUnreachable(f"HTTP {response.status_code}")
            yield response
        finally:
            # Unwatch first: once closed, a complete connection may serve another request.
            deadline.unwatch()
            response.close()

    def _send(self, url: str | httpx.URL, headers: dict[str, str], deadline: _Deadline) -> httpx.Response:
        deadline.check()
        request = self._client.build_request(
            "GET",
            url,
            headers=headers,
            timeout=min(self._timeout, deadline.remaining()),
            extensions={"trace": deadline.trace},
        )
        try:
            response = self._client.send(request, stream=True, follow_redirects=False)
        except BaseException:
            deadline.unwatch()
            raise
        # A reused keep-alive connection is not seen connecting: watch it now.
        deadline.watch(response.extensions.get("network_stream"))
        return response


class _Deadline:
    """The overall time limit of one probe.

    Per-read timeouts cannot stop a server that sends a byte now and then, so the body loop checks
    the clock after every chunk; and a timer shuts the connection's socket down at expiry, so a read
    blocked on a silent server (headers or body) returns at once rather than at its own timeout.
    """

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._stream: object = None
        self._expired = False
        self._finished = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._finished = True
            self._stream = None
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        return self._expired or time.monotonic() >= self._ends

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def check(self) -> None:
        if self.expired:
            raise _DeadlinePassed

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` extension: learn the connection as soon as it is made."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: object) -> None:
        with self._lock:
            if self._finished or stream is None:
                return
            self._stream = stream
            if self._expired:
                _shut_down(stream)

    def unwatch(self) -> None:
        with self._lock:
            self._stream = None

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._expired = True
            if self._stream is not None:
                _shut_down(self._stream)


def _shut_down(stream: object) -> None:
    """Shut an httpcore network stream's socket down so a read blocked on it returns."""
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if callable(get_extra_info) else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            # The plain socket call, also for TLS: SSLSocket.shutdown would tear down its SSL state under the reader.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _read_body(
    response: httpx.Response,
    deadline: _Deadline,
    header_bytes: int,
    keep: int,
    *,
    count_to: int | None,
) -> _Body:
    """Read until the image is identified (keeping at most `keep` bytes), then count up to `count_to` bytes.

    Without `count_to` the read stops as soon as the image is identified or `keep` bytes came.
    """
    buffer: io.BytesIO | None = io.BytesIO()
    attempts = _attempt_sizes(header_bytes, keep)
    next_attempt = next(attempts)
    identity: _Identity | None = None
    seen = 0
    for chunk in response.iter_raw():
        deadline.check()
        seen += len(chunk)
        if buffer is not None:
            buffer.write(chunk[: keep - buffer.tell()])
            if buffer.tell() >= next_attempt:
                identity = _identify(buffer)
                if identity is not None or buffer.tell() >= keep:
                    buffer = None  # done identifying: keep no more bytes
                else:
                    next_attempt = next(size for size in attempts if size > buffer.tell())
        if buffer is None and (count_to is None or seen >= count_to):
            return _Body(identity, seen, complete=False)
    if buffer is not None:
        identity = _identify(buffer)
    return _Body(identity, seen, complete=True)


def _attempt_sizes(header_bytes: int, keep: int) -> Iterator[int]:
    """Buffer sizes at which to try to identify: quadrupling up to `header_bytes`, then doubling up to `keep`."""
    size = min(_FIRST_ATTEMPT, header_bytes)
    while size < header_bytes:
        yield size
        size *= 4
    size = min(header_bytes, keep)
    while size < keep:
        yield size
        size *= 2
    yield keep


def _identify(buffer: io.BytesIO) -> _Identity | None:
    """Format and dimensions of the bytes so far, or None when Pillow cannot tell (yet)."""
    buffer.seek(0)
    try:
        with Image.open(buffer) as image:
            return _identity(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Only decoding would be dangerous, and nothing is decoded: read the header dimensions anyway.
        return _identify_without_bomb_check(buffer)
    except Exception:  # Pillow's plugins raise many kinds of error on truncated or foreign bytes
        return None
    finally:
        buffer.seek(0, io.SEEK_END)


def _identify_without_bomb_check(buffer: io.BytesIO) -> _Identity | None:
    """What Image.open does, minus its decompression-bomb check on the pixel count."""
    buffer.seek(0)
    prefix = buffer.read(16)
    Image.init()
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        if accept is not None:
            accepted = accept(prefix)
            if isinstance(accepted, str) or not accepted:
                continue
        buffer.seek(0)
        try:
            with factory(buffer, "") as image:
                return _identity(image)
        except Exception:  # as in Image.open: this plugin cannot read it, try the next
            continue
    return None


def _identity(image: Image.Image) -> _Identity | None:
    if not image.format:
        return None
    name = image.format.lower()
    return _Identity(_FORMAT_ALIASES.get(name, name), image.width, image.height)


def _media_info(
    url: str,
    response: httpx.Response,
    identity: _Identity | None,
    size: int | None,
    *,
    size_is_lower_bound: bool,
) -> MediaInfo:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return MediaInfo(
        url=url,
        format=identity.format if identity else None,
        width=identity.width if identity else None,
        height=identity.height if identity else None,
        size_bytes=size,
        size_is_lower_bound=size_is_lower_bound,
        content_type=content_type or None,
    )


def _content_range_total(response: httpx.Response) -> int | None:
    """TOTAL of `Content-Range: bytes 0-N/TOTAL`; None when it is `*`, malformed, or not from byte 0."""
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or int(match.group(1)) != 0 or match.group(3) == "*":
        return None
    return int(match.group(3))


def _declared_size(response: httpx.Response) -> int | None:
    """The size the headers give for a whole-resource response."""
    if response.status_code == 206:  # a range sent unasked
        return _content_range_total(response)
    try:
        length = int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None
    return length if length >= 0 else None


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise MediaUnreachable("invalid URL") from None
    if parsed.scheme not in _SCHEMES:
        raise MediaUnreachable("not an http(s) URL")
    if not _has_host_and_port(parsed):
        raise MediaUnreachable("invalid URL")


def _has_host_and_port(url: httpx.URL) -> bool:
    return bool(url.host) and 0 < (url.port or 80) < 65536


def _describe(error: httpx.HTTPError) -> str:
    """A short sentence for a transport error."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect: {error}" if str(error) else "cannot connect"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"bad HTTP response: {error}" if str(error) else "bad HTTP response"
    return f"connection error: {error}" if str(error) else f"connection error ({type(error).__name__})"


_default: MediaProber | None = None
_default_lock = threading.Lock()


def probe_media(url: str) -> MediaInfo:
    """Probe with a process-wide MediaProber of default settings (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MediaProber()
        prober = _default
    return prober.probe(url)
