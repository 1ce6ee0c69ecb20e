"""An HTTP/1.1 load generator on raw asyncio streams: keep-alive connections, each sending its next request
as soon as the previous answer arrived. A client built on an HTTP library would measure the client.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def http_request(method: str, path: str, port: int, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The bytes of one HTTP/1.1 request with a body."""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    """Per-request latencies (seconds, in completion order) and HTTP statuses of the measured requests."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    elapsed: float = 0.0

    def sorted_latencies_ms(self) -> list[float]:
        return sorted(latency * 1000 for latency in self.latencies)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


async def _send_each(port: int, requests: list[bytes], result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.monotonic()
            writer.write(request)
            status = await _read_response(reader)
            result.latencies.append(time.monotonic() - started)
            result.statuses[status] += 1
    finally:
        writer.close()


async def send_all(port: int, requests: list[bytes], connections: int) -> LoadResult:
    """Send every request exactly once over `connections` connections; `elapsed` covers all of them."""
    result = LoadResult()
    shards = [requests[index::connections] for index in range(connections)]
    started = time.monotonic()
    await asyncio.gather(*(_send_each(port, shard, result) for shard in shards if shard))
    result.elapsed = time.monotonic() - started
    return result


async def _send_until(
    port: int, requests: list[bytes], deadline: float, measuring_from: float, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    position = 0
    try:
        while (started := time.monotonic()) < deadline:
            writer.write(requests[position % len(requests)])
            position += 1
            status = await _read_response(reader)
            if started >= measuring_from:
                result.latencies.append(time.monotonic() - started)
                result.statuses[status] += 1
    finally:
        writer.close()


async def send_for(port: int, requests: list[bytes], connections: int, seconds: float, warmup: float) -> LoadResult:
    """Cycle through the requests for `warmup + seconds`; only requests started after the warm-up count."""
    result = LoadResult(elapsed=seconds)
    start = time.monotonic()
    measuring_from, deadline = start + warmup, start + warmup + seconds
    shards = [requests[index::connections] for index in range(connections)]
    await asyncio.gather(*(_send_until(port, shard, deadline, measuring_from, result) for shard in shards if shard))
    return result


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed (it is, with uvicorn[standard]), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
