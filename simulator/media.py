"""Fetching media URLs the way a channel does: bounded GET (time and bytes), Pillow for type and size, cached."""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

MEBIBYTE = 1024 * 1024
DEFAULT_MAX_BYTES = 5 * MEBIBYTE  # the largest size any KakaoTalk rule allows
HEADER_BYTES = 64 * 1024  # enough for Pillow to read format and dimensions of an oversized file
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class MediaProbe:
    """What the fetch of one URL found. `size` is the full size when known (Content-Length or bytes read)."""

    url: str
    http_status: int | None
    error: str | None  # why the URL could not be read; None when it answered 2xx
    size: int | None
    over_limit: bool  # bigger than the largest size any rule accepts
    image_format: str | None  # Pillow's name: PNG, JPEG, GIF, WEBP...; None when not an image
    width: int | None
    height: int | None

    @property
    def reachable(self) -> bool:
        return self.error is None


def read_image_header(data: bytes) -> tuple[str | None, int | None, int | None]:
    """(format, width, height) from the first bytes of a file; Nones when Pillow does not recognise it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.format, image.width, image.height
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None, None, None


class MediaProber:
    """Probes media URLs once and remembers the answer for `cache_ttl_s` (concurrent probes of a URL share one GET)."""

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        cache_ttl_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._cache_ttl_s = cache_ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, MediaProbe]] = {}
        self._in_flight: dict[str, asyncio.Task[MediaProbe]] = {}
        self._client: httpx.AsyncClient | None = None

    async def probe(self, url: str) -> MediaProbe:
        cached = self._cache.get(url)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        task = self._in_flight.get(url)
        if task is None:
            task = asyncio.create_task(self._fetch(url))
            self._in_flight[url] = task
            task.add_done_callback(lambda _: self._in_flight.pop(url, None))
        probe = await asyncio.shield(task)
        self._remember(url, probe)
        return probe

    def clear(self) -> None:
        self._cache.clear()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _remember(self, url: str, probe: MediaProbe) -> None:
        if len(self._cache) >= CACHE_ENTRIES and url not in self._cache:
            del self._cache[next(iter(self._cache))]  # oldest first: dicts keep insertion order
        self._cache[url] = (self._monotonic() + self._cache_ttl_s, probe)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s),
                follow_redirects=True,
                max_redirects=5,
                trust_env=False,
                headers={"user-agent": "kakao-dispatch-simulator media probe"},
            )
        return self._client

    async def _fetch(self, url: str) -> MediaProbe:
        try:
            return await asyncio.wait_for(self._get(url), timeout=self._timeout_s)
        except TimeoutError:
            return self._unreachable(url, None, f"no complete answer within {self._timeout_s:g} s")
        except httpx.InvalidURL as error:
            return self._unreachable(url, None, f"invalid URL: {error}")
        except httpx.HTTPError as error:
            return self._unreachable(url, None, f"{type(error).__name__}: {error}".rstrip(": "))

    async def _get(self, url: str) -> MediaProbe:
        async with self._http().stream("GET", url) as response:
            if response.status_code >= 300:
                return self._unreachable(url, response.status_code, f"answered HTTP {response.status_code}")
            declared = _content_length(response)
            over_limit = declared is not None and declared > self._max_bytes
            wanted = HEADER_BYTES if over_limit else self._max_bytes + 1
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= wanted:
                    break
        if len(data) > self._max_bytes:
            over_limit = True
        image_format, width, height = read_image_header(bytes(data[:wanted]))
        return MediaProbe(
            url=url,
            http_status=response.status_code,
            error=None,
            size=declared if declared is not None else len(data),
            over_limit=over_limit,
            image_format=image_format,
            width=width,
            height=height,
        )

    @staticmethod
    def _unreachable(url: str, status: int | None, error: str) -> MediaProbe:
        return MediaProbe(url, status, error, None, False, None, None, None)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None
