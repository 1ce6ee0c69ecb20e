"""Sinch callbacks taken off the `callbacks` queue: each kind to its handler (receipts, inbound messages)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker import keys
from worker.contacts import ContactBook
from worker.inbound import InboundMessage, store_inbound
from worker.jobs import JobStore
from worker.receipts import apply_delivery_report


def callback_kind(payload: Mapping[str, Any]) -> str:
    if "message_delivery_report" in payload:
        return "message_delivery_report"
    if "message" in payload:
        return "message"
    return "unknown"


def handle_callback(
    store: JobStore, contacts: ContactBook, payload: Mapping[str, Any], now: datetime
) -> tuple[str, InboundMessage | None]:
    """Apply one callback; returns (what happened, the new inbound message if it was one)."""
    kind = callback_kind(payload)
    if kind == "message_delivery_report":
        return apply_delivery_report(store, payload, now), None
    if kind == "message":
        message = store_inbound(store, contacts, payload, now)
        return ("stored" if message else "duplicate"), message
    store.redis.hincrby(keys.COUNTERS, "callbacks:unhandled", 1)
    return "unhandled", None
