"""Benchmark of the simulator: `messages:send` per second on one core, with no latency configured.

The simulator runs as its own process (`python -m simulator`) pinned to core 0; this process, pinned to
the other cores, is the load generator: C keep-alive connections over raw asyncio streams (uvloop when
installed), each sending the next request as soon as the previous answer arrived. A load generator
built on an HTTP client library would measure the client, not the server. Two scenarios:

- `no_webhook`: sends only (the simulator decides the outcome and records it, no receipt to post);
- `with_webhook`: every accepted message also gets a MESSAGE_DELIVERY receipt, signed, posted to a
  minimal receiver process (on the load generator's cores), as in a dispatch benchmark.

Run: `.venv/bin/python -m bench.bench_simulator [--seconds S] [--rounds R]` (quick 3 s once, full 10 s three times).
Writes bench/results/simulator.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import argument_parser, mode, percentile, run_main, save, spread
from bench.load import http_request, run_loop, send_for
from bench.stack import APP, KEY_ID, KEY_SECRET, PROJECT, Simulator
from worker.redis_server import free_port

EXTRA_VERSIONS = ("uvicorn", "starlette", "uvloop", "httptools", "aiohttp")
TEMPLATES = {"order_shipped": {"text": "#{customer}님, 주문이 출발했습니다: #{order_id}", "language": "ko"}}
SERVER_CORE = 0


def other_cores() -> set[int]:
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return (cores - {SERVER_CORE}) or cores


def pin(pid: int, cores: set[int]) -> bool:
    if not cores or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(pid, cores)
    except OSError:
        return False
    return True


def request_bodies(count: int, seed: int = 7) -> list[bytes]:
    """A mix of AlimTalk (template), FriendTalk text and FriendTalk choice messages to 10,000 recipients."""
    rng = random.Random(seed)
    bodies = []
    for index in range(count):
        msisdn = f"+8210{20000000 + rng.randrange(10_000):08d}"
        recipient = {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": msisdn}]}}
        shape = index % 3
        if shape == 0:
            parameters = {"customer": "홍길동", "order_id": f"A-{index}"}
            message: dict[str, Any] = {
                "template_message": {
                    "channel_template": {"KAKAOTALK": {"template_id": "order_shipped", "parameters": parameters}}
                }
            }
        elif shape == 1:
            message = {"text_message": {"text": f"겨울 세일이 시작되었습니다. 쿠폰 번호 {index}"}}
        else:
            message = {
                "choice_message": {
                    "text_message": {"text": "주문을 확인하시겠습니까?"},
                    "choices": [
                        {"text_message": {"text": "확인"}, "postback_data": "yes"},
                        {"url_message": {"title": "주문 보기", "url": "https://example.com/orders"}},
                    ],
                }
            }
        body = {
            "app_id": APP,
            "recipient": recipient,
            "message": message,
            "channel_priority_order": ["KAKAOTALK"],
            "message_metadata": f"job-{index}",
            "correlation_id": f"job-{index}",
        }
        bodies.append(json.dumps(body, ensure_ascii=False).encode())
    return bodies


def generate_load(port: int, token: str, connections: int, seconds: float, warmup: float) -> dict[str, Any]:
    head = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/v1/projects/{PROJECT}/messages:send"
    requests = [http_request("POST", path, port, body, head) for body in request_bodies(3000)]
    result = run_loop(send_for(port, requests, connections, seconds, warmup))
    latencies = result.sorted_latencies_ms()
    return {
        "sends": len(latencies),
        "seconds": seconds,
        "sends_per_s": round(len(latencies) / seconds, 1),
        "latency_ms": {"p50": round(percentile(latencies, 0.5), 2), "p99": round(percentile(latencies, 0.99), 2)},
        "http_status": {str(status): count for status, count in sorted(result.statuses.items())},
    }


def run_receiver(port: int, ready: Any) -> None:
    """A minimal webhook receiver: answers 200 to every request (httptools parses, asyncio serves)."""
    import httptools

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        run_loop(main())


def scenario(
    name: str, templates: Path, connections: int, seconds: float, with_webhook: bool, warmup: float
) -> dict[str, Any]:
    receiver = None
    webhook_url = None
    if with_webhook:
        receiver_port = free_port()
        ready = multiprocessing.get_context("spawn").Event()
        receiver = multiprocessing.get_context("spawn").Process(target=run_receiver, args=(receiver_port, ready))
        receiver.start()
        assert receiver.pid is not None
        pin(receiver.pid, other_cores())
        ready.wait(10)
        webhook_url = f"http://127.0.0.1:{receiver_port}/sinch"
    simulator = Simulator(templates.parent, templates=templates, webhook_url=webhook_url,
                          webhook_secret="bench-secret" if webhook_url else None)  # fmt: skip
    try:
        simulator.start()
        pin(simulator.pid, {SERVER_CORE})
        simulator.wait_ready(time.monotonic() + 15)
        token = simulator.call("POST", "/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=(KEY_ID, KEY_SECRET))["access_token"]  # fmt: skip
        simulator.call("PUT", "/_sim/clock", json={"now": "2026-11-24T12:00:00+09:00"})  # FriendTalk window open
        figures = generate_load(simulator.port, token, connections, seconds, warmup)
        time.sleep(min(0.5, seconds))  # let the last receipts go out
        stats = simulator.call("GET", "/_sim/stats")
        figures["simulator_stats"] = {key: stats[key] for key in ("requests", "accepted", "outcomes", "receipts")}
        if with_webhook:
            figures["receipts_sent"] = stats["receipts"]["sent"]
        print(f"{name}: {figures['sends_per_s']} sends/s, p50 {figures['latency_ms']['p50']} ms, "
              f"p99 {figures['latency_ms']['p99']} ms, statuses {figures['http_status']}")  # fmt: skip
        return figures
    finally:
        simulator.stop()
        if receiver is not None:
            receiver.terminate()
            receiver.join(10)


def run(*, seconds: float, connections: int, rounds: int, warmup: float = 1.0) -> dict[str, Any]:
    """Each scenario `rounds` times on a fresh simulator; spreads of the throughput and latency."""
    runs: dict[str, list[dict[str, Any]]] = {"no_webhook": [], "with_webhook": []}
    with tempfile.TemporaryDirectory() as directory:
        templates = Path(directory) / "templates.json"
        templates.write_text(json.dumps(TEMPLATES, ensure_ascii=False), encoding="utf-8")
        for _ in range(rounds):
            for name, with_webhook in (("no_webhook", False), ("with_webhook", True)):
                runs[name].append(scenario(name, templates, connections, seconds, with_webhook, warmup))
    return {
        name: {
            "sends_per_s": spread([figures["sends_per_s"] for figures in found]),
            "p50_ms": spread([figures["latency_ms"]["p50"] for figures in found], 2),
            "p99_ms": spread([figures["latency_ms"]["p99"] for figures in found], 2),
            "runs": found,
        }
        for name, found in runs.items()
    }


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0 if full else 3.0, help="measured seconds per scenario")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3 if full else 1)
    arguments = parser.parse_args()
    pin(os.getpid(), other_cores())
    results = run(seconds=arguments.seconds, connections=arguments.connections, rounds=arguments.rounds)
    settings = {
        "connections": arguments.connections,
        "seconds": arguments.seconds,
        "rounds": arguments.rounds,
        "warmup_s": 1.0,
        "rate_limit": 0,
        "receipt_delay_ms": [0, 0],
        "request_mix": "1/3 AlimTalk, 1/3 FriendTalk text, 1/3 FriendTalk choice",
        "cores": f"simulator pinned to core {SERVER_CORE}, load generator on {sorted(other_cores())}",
    }
    title = "simulator: messages:send throughput, no latency configured, server on one core"
    save("simulator", title, settings, results, arguments.output, *EXTRA_VERSIONS)


if __name__ == "__main__":
    sys.exit(run_main(main))
