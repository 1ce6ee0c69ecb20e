"""Injected faults: 5xx, 429 (with and without Retry-After), late answers, latency and receipt mishaps."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sim_client import PROJECT, SimClient, friendtalk
from sim_servers import WebhookReceiver

TEXT = {"text_message": {"text": "안녕하세요"}}


def test_http_5xx_refuses_the_send_with_a_sinch_error_and_no_receipt(sim: SimClient) -> None:
    sim.faults(http_5xx=1.0)
    response = sim.send(friendtalk(TEXT))
    assert response.status_code in (500, 502, 503, 504)
    assert response.json()["error"]["code"] == response.status_code
    (record,) = sim.messages()
    assert record["message_id"] is None and record["http_status"] == response.status_code
    stats = sim.stats()
    assert stats["faults"]["http_5xx"] == 1 and stats["accepted"] == 0 and stats["receipts"]["scheduled"] == 0


def test_http_429_without_retry_after_by_default(sim: SimClient) -> None:
    sim.faults(http_429=1.0)
    response = sim.send(friendtalk(TEXT))
    assert response.status_code == 429 and response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "retry-after" not in response.headers


def test_http_429_with_retry_after_when_configured(sim: SimClient) -> None:
    sim.faults(http_429=1.0, retry_after_s=3)
    response = sim.send(friendtalk(TEXT))
    assert response.status_code == 429 and response.headers["retry-after"] == "3"


def test_timeout_accepts_the_message_then_answers_too_late(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(timeout=1.0, timeout_delay_s=0.6)
    with pytest.raises(httpx.ReadTimeout):
        sim.send(friendtalk(TEXT, correlation_id="job-late"), timeout=0.2)
    (record,) = sim.messages()
    assert record["message_id"] is not None and record["http_status"] == 200 and record["outcome"] == "DELIVERED"
    (callback,) = receiver.for_message(record["message_id"])
    assert callback.json["correlation_id"] == "job-late"
    started = time.monotonic()
    late = sim.send(friendtalk(TEXT), timeout=5)
    assert late.status_code == 200 and time.monotonic() - started >= 0.6
    assert sim.stats()["faults"]["timeout"] == 2


def test_latency_delays_every_answer(sim: SimClient) -> None:
    sim.faults(latency_ms=[250, 250])
    started = time.monotonic()
    assert sim.send(friendtalk(TEXT)).status_code == 200
    assert time.monotonic() - started >= 0.25


def test_receipt_delay_is_applied(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(receipt_delay_ms=[300, 300])
    sent_at = time.monotonic()
    message_id = sim.accepted(friendtalk(TEXT))
    receiver.for_message(message_id)
    assert time.monotonic() - sent_at >= 0.3


def test_receipt_duplicate_sends_the_same_receipt_twice(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(receipt_duplicate=1.0)
    message_id = sim.accepted(friendtalk(TEXT))
    first, second = receiver.for_message(message_id, count=2)
    assert first.json == second.json
    assert sim.stats()["receipts"]["duplicated"] == 1


def test_receipt_reorder_lets_later_receipts_overtake(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(receipt_reorder=1.0, receipt_reorder_hold_ms=300)
    held = sim.accepted(friendtalk(TEXT))
    sim.faults()
    overtaking = sim.accepted(friendtalk(TEXT))
    receiver.for_message(held)
    order = [callback.message_id for callback in receiver.callbacks if callback.message_id in (held, overtaking)]
    assert order == [overtaking, held]
    assert sim.stats()["receipts"]["reordered"] == 1


def test_receipt_drop_never_sends_it(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(receipt_drop=1.0)
    dropped = sim.accepted(friendtalk(TEXT))
    sim.faults()
    kept = sim.accepted(friendtalk(TEXT))
    receiver.for_message(kept)  # sent after the dropped one, with the same delay
    assert all(callback.message_id != dropped for callback in receiver.callbacks)
    assert sim.stats()["receipts"]["dropped"] == 1


def test_put_replaces_the_whole_fault_set_and_get_shows_it(sim: SimClient) -> None:
    sim.faults(http_5xx=0.1, latency_ms=[5, 10])
    sim.faults(http_429=0.2)
    faults = sim.http.get("/_sim/faults").json()
    assert faults["http_429"] == 0.2 and faults["http_5xx"] == 0.0 and faults["latency_ms"] == [0, 0]
    assert faults["receipt_delay_ms"] == [0, 0]  # the start-up value (conftest)


@pytest.mark.parametrize(
    "faults",
    [
        {"http_5xxx": 0.1},
        {"http_5xx": 1.5},
        {"timeout": -0.1},
        {"latency_ms": [10, 5]},
        {"receipt_delay_ms": [0]},
        {"http_5xx": 0.6, "http_429": 0.6},
        {"retry_after_s": -1},
        [0.1],
    ],
)
def test_invalid_fault_sets_are_refused_with_400(sim: SimClient, faults: Any) -> None:
    response = sim.http.put("/_sim/faults", json=faults)
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_faults_apply_only_to_sends(sim: SimClient) -> None:
    sim.faults(http_5xx=1.0)
    assert sim.http.get(f"/v1/projects/{PROJECT}/apps/sim-app").status_code == 200


def test_rate_limit_answers_429_beyond_the_app_rate(start_simulator: Any) -> None:
    limited: SimClient = start_simulator(rate_limit=5)
    statuses = [limited.send(friendtalk(TEXT)).status_code for _ in range(8)]
    assert statuses.count(200) in (5, 6) and statuses[-1] == 429  # 5 in the bucket, maybe 1 refilled
    refused = limited.send(friendtalk(TEXT))
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and "retry-after" not in refused.headers
    time.sleep(0.25)  # one token refills every 0.2 s
    assert limited.send(friendtalk(TEXT)).status_code == 200
    limited.faults(retry_after_s=1)
    for _ in range(5):
        limited.send(friendtalk(TEXT))
    assert limited.send(friendtalk(TEXT)).headers["retry-after"] == "1"


def test_unlimited_rate_with_zero(sim: SimClient) -> None:
    assert all(sim.send(friendtalk(TEXT)).status_code == 200 for _ in range(40))
