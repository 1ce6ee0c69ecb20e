"""Injected faults (`PUT /_sim/faults`): HTTP errors, late answers, latency and receipt mishaps."""

from __future__ import annotations

import random
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
MAX_DELAY_MS = 600_000


class SendFault(Enum):
    """What happens to one `messages:send` request before KakaoTalk sees it."""

    NONE = "none"
    HTTP_5XX = "http_5xx"
    HTTP_429 = "http_429"
    TIMEOUT = "timeout"


class Faults(BaseModel):
    """The fault set in force. A PUT replaces it whole: keys left out return to their start-up values.

    - `http_5xx`, `http_429`: probability that a send is refused with that status (not accepted, no receipt).
    - `timeout`: probability that a send is accepted (recorded, receipt sent) but answered only
      after `timeout_delay_s` seconds, so the client sees a read timeout.
    - `latency_ms`: extra time before every send answer, uniform in [low, high].
    - `receipt_delay_ms`: time between acceptance and the delivery receipt, uniform in [low, high].
    - `receipt_duplicate` / `receipt_drop`: probability that a receipt is sent twice / never.
    - `receipt_reorder`: probability that a receipt is held back `receipt_reorder_hold_ms` more,
      so receipts of later messages overtake it.
    - `retry_after_s`: the `Retry-After` header of every 429 (rate limit or injected); null sends none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    http_5xx: Probability = 0.0
    http_429: Probability = 0.0
    timeout: Probability = 0.0
    timeout_delay_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    latency_ms: tuple[int, int] = (0, 0)
    receipt_delay_ms: tuple[int, int] = (100, 1000)
    receipt_duplicate: Probability = 0.0
    receipt_reorder: Probability = 0.0
    receipt_reorder_hold_ms: int = Field(default=2000, ge=0, le=MAX_DELAY_MS)
    receipt_drop: Probability = 0.0
    retry_after_s: int | None = Field(default=None, ge=0, le=3600)

    @field_validator("latency_ms", "receipt_delay_ms")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 0 <= low <= high <= MAX_DELAY_MS:
            raise ValueError(f"expected [low, high] with 0 <= low <= high <= {MAX_DELAY_MS}")
        return value

    @model_validator(mode="after")
    def _send_faults_fit_in_one_draw(self) -> Faults:
        if self.http_5xx + self.http_429 + self.timeout > 1.0:
            raise ValueError("http_5xx + http_429 + timeout must not exceed 1")
        return self

    def with_changes(self, changes: dict[str, Any]) -> Faults:
        """The start-up fault set with these keys replaced, validated (raises pydantic.ValidationError)."""
        return Faults.model_validate({**self.model_dump(), **changes})

    def draw_send_fault(self, rng: random.Random) -> SendFault:
        if self.http_5xx == self.http_429 == self.timeout == 0.0:
            return SendFault.NONE
        draw = rng.random()
        if draw < self.http_5xx:
            return SendFault.HTTP_5XX
        if draw < self.http_5xx + self.http_429:
            return SendFault.HTTP_429
        if draw < self.http_5xx + self.http_429 + self.timeout:
            return SendFault.TIMEOUT
        return SendFault.NONE

    def draw_latency_s(self, rng: random.Random) -> float:
        return uniform_ms(rng, self.latency_ms) / 1000.0

    def draw_receipt_delay_s(self, rng: random.Random) -> float:
        return uniform_ms(rng, self.receipt_delay_ms) / 1000.0


def uniform_ms(rng: random.Random, bounds: tuple[int, int]) -> float:
    low, high = bounds
    return float(low) if low == high else rng.uniform(low, high)


def chance(rng: random.Random, probability: float) -> bool:
    return probability > 0.0 and rng.random() < probability
