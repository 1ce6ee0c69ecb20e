"""Callbacks to webhooks: the MESSAGE_DELIVERY and MESSAGE_INBOUND bodies, and their delivery in the background
(delay, signature, retries with exponential backoff, receipt faults). Nothing here ever blocks a send."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from simulator.faults import Faults, chance
from simulator.rules import Reason
from simulator.send_request import ChannelIdentity
from simulator.signing import signature_headers


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def delivery_report_body(
    *,
    app_id: str,
    project_id: str,
    accepted_time: str,
    event_time: str,
    message_id: str,
    conversation_id: str,
    status: str,
    channel_identity: ChannelIdentity,
    contact_id: str,
    reason: Reason | None,
    metadata: str,
    message_metadata: str,
    correlation_id: str,
) -> bytes:
    """A MESSAGE_DELIVERY callback shaped like the channel document's examples (keys in the same order)."""
    report: dict[str, Any] = {
        "message_id": message_id,
        "conversation_id": conversation_id,
        "status": status,
        "channel_identity": channel_identity.to_json(),
        "contact_id": contact_id,
    }
    if reason is not None:
        report["reason"] = reason.to_json()
    report["metadata"] = metadata
    report["processing_mode"] = "CONVERSATION"
    return _json_bytes(
        {
            "app_id": app_id,
            "accepted_time": accepted_time,
            "event_time": event_time,
            "project_id": project_id,
            "message_delivery_report": report,
            "message_metadata": message_metadata,
            "correlation_id": correlation_id,
        }
    )


def inbound_message_body(
    *,
    app_id: str,
    project_id: str,
    accepted_time: str,
    message_id: str,
    contact_message: dict[str, Any],
    channel_identity: ChannelIdentity,
    conversation_id: str,
    contact_id: str,
) -> bytes:
    """A MESSAGE_INBOUND callback from a KAKAOTALKCHAT user, shaped like the channel document's examples."""
    return _json_bytes(
        {
            "app_id": app_id,
            "accepted_time": accepted_time,
            "event_time": accepted_time,
            "project_id": project_id,
            "message": {
                "id": message_id,
                "direction": "TO_APP",
                "contact_message": contact_message,
                "channel_identity": channel_identity.to_json(),
                "conversation_id": conversation_id,
                "contact_id": contact_id,
                "metadata": "",
                "accept_time": accepted_time,
                "sender_id": "",
                "processing_mode": "CONVERSATION",
            },
            "message_metadata": "",
        }
    )


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    secret: str  # empty: the callback is not signed


@dataclass(frozen=True)
class _Delivery:
    target: CallbackTarget
    body: bytes
    counters: Counter[str]
    prefix: str  # counter names: "" for receipts, "callbacks_" for inbound
    attempt: int
    generation: int


class CallbackSender:
    """Posts callbacks from the event loop with aiohttp (measured ~20x the throughput of httpx's pool for
    many small posts). Each callback waits with `call_later`, then is posted in its own task; a non-2xx
    answer or a transport error is retried after retry_base_s × 2^(attempt-1), up to max_attempts posts."""

    def __init__(self, *, max_attempts: int, retry_base_s: float, timeout_s: float, concurrency: int = 128) -> None:
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            trust_env=False,
        )

    async def close(self) -> None:
        self.forget_pending()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def forget_pending(self) -> None:
        """Callbacks scheduled before this call are not sent (used by reset)."""
        self._generation += 1

    def schedule(
        self, targets: Iterable[CallbackTarget], body: bytes, delay_s: float, counters: Counter[str], prefix: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        for target in targets:
            counters[prefix + "pending"] += 1
            delivery = _Delivery(target, body, counters, prefix, 1, self._generation)
            loop.call_later(delay_s, self._launch, delivery)

    def schedule_receipt(
        self,
        targets: list[CallbackTarget],
        body: bytes,
        delay_s: float,
        counters: Counter[str],
        faults: Faults,
        rng: random.Random,
    ) -> None:
        """A delivery receipt, subject to the receipt faults: dropped, held back (reordered), duplicated."""
        if not targets:
            return
        counters["scheduled"] += 1
        if chance(rng, faults.receipt_drop):
            counters["dropped"] += 1
            return
        if chance(rng, faults.receipt_reorder):
            counters["reordered"] += 1
            delay_s += faults.receipt_reorder_hold_ms / 1000.0
        self.schedule(targets, body, delay_s, counters)
        if chance(rng, faults.receipt_duplicate):
            counters["duplicated"] += 1
            self.schedule(targets, body, delay_s + faults.draw_receipt_delay_s(rng), counters)

    def _launch(self, delivery: _Delivery) -> None:
        if delivery.generation != self._generation:
            return
        task = asyncio.get_running_loop().create_task(self._post(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, delivery: _Delivery) -> None:
        headers = {"content-type": "application/json"}
        if delivery.target.secret:
            headers.update(signature_headers(delivery.target.secret, delivery.body))
        answered_2xx = False
        assert self._session is not None, "CallbackSender.start() runs at server start-up"
        try:
            async with self._session.post(delivery.target.url, data=delivery.body, headers=headers) as response:
                await response.read()
                answered_2xx = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, ValueError):
            answered_2xx = False
        if delivery.generation != self._generation:
            return
        counters, prefix = delivery.counters, delivery.prefix
        if answered_2xx:
            counters[prefix + "sent"] += 1
            counters[prefix + "pending"] -= 1
        elif delivery.attempt < self._max_attempts:
            counters[prefix + "retried"] += 1
            backoff_s = self._retry_base_s * 2 ** (delivery.attempt - 1)
            retry = replace(delivery, attempt=delivery.attempt + 1)
            asyncio.get_running_loop().call_later(backoff_s, self._launch, retry)
        else:
            counters[prefix + "failed"] += 1
            counters[prefix + "pending"] -= 1
