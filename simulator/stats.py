"""Counters behind `GET /_sim/stats`: requests, outcomes, HTTP statuses, faults, receipts and inbound."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Plain counters, reset by `POST /_sim/reset`. Callback counters count HTTP posts, one per webhook."""

    def __init__(self) -> None:
        self.requests = 0
        self.accepted = 0
        self.outcomes: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.http_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.receipts: Counter[str] = Counter()
        self.inbound: Counter[str] = Counter()

    def to_json(self) -> dict[str, Any]:
        receipt_keys = ("scheduled", "sent", "failed", "retried", "dropped", "duplicated", "reordered", "pending")
        inbound_keys = ("received", "callbacks_sent", "callbacks_failed", "callbacks_retried", "callbacks_pending")
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "outcomes": dict(self.outcomes),
            "reasons": dict(self.reasons),
            "http_status": {str(status): count for status, count in sorted(self.http_status.items())},
            "faults": dict(self.faults),
            "receipts": {key: self.receipts[key] for key in receipt_keys},
            "inbound": {key: self.inbound[key] for key in inbound_keys},
        }
