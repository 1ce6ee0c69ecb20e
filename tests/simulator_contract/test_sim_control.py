"""The control endpoints: clock, stats, reset, messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sim_client import SimClient, alimtalk, friendtalk

TEXT = {"text_message": {"text": "안녕하세요"}}


def test_clock_set_to_an_instant_moves_accepted_time_and_keeps_running(sim: SimClient) -> None:
    clock = sim.http.put("/_sim/clock", json={"now": "2030-01-02T03:04:05+09:00"}).json()
    assert clock["now"].startswith("2030-01-01T18:04")
    accepted = sim.send(friendtalk(TEXT)).json()["accepted_time"]
    assert accepted.startswith("2030-01-01T18:04") and accepted >= clock["now"]


def test_clock_offset_and_delete(sim: SimClient) -> None:
    shifted = sim.http.put("/_sim/clock", json={"offset_seconds": 86400}).json()
    assert shifted["offset_seconds"] == 86400
    tomorrow = datetime.fromisoformat(shifted["now"])
    assert abs(tomorrow - datetime.now(UTC) - timedelta(days=1)) < timedelta(seconds=5)
    real = sim.http.delete("/_sim/clock").json()
    assert real["offset_seconds"] == 0
    assert abs(datetime.fromisoformat(real["now"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert sim.http.get("/_sim/clock").json()["offset_seconds"] == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"now": "2030-01-02T03:04:05"}, {"now": "yesterday"}, {"now": "2030-01-02T03:04:05Z", "offset_seconds": 1}],
)
def test_invalid_clock_bodies_are_400(sim: SimClient, body: dict[str, object]) -> None:
    assert sim.http.put("/_sim/clock", json=body).status_code == 400


def test_stats_count_requests_outcomes_statuses(sim: SimClient) -> None:
    sim.accepted(friendtalk(TEXT))
    sim.accepted(alimtalk("no_such_template", {}))
    sim.send({"app_id": "sim-app"})
    sim.inbound(text="hi")
    stats = sim.stats_when(lambda stats: stats["receipts"]["sent"] == 2)
    assert (stats["requests"], stats["accepted"]) == (3, 2)
    assert stats["outcomes"] == {"DELIVERED": 1, "FAILED": 1}
    assert stats["reasons"] == {"TEMPLATE_NOT_FOUND": 1}
    assert stats["http_status"] == {"200": 2, "400": 1}
    assert stats["receipts"]["scheduled"] == 2
    assert stats["inbound"]["received"] == 1


def test_reset_clears_messages_stats_faults_contacts_and_clock(sim: SimClient) -> None:
    contact_id = sim.record(sim.accepted(friendtalk(TEXT)))["contact_id"]
    sim.faults(http_5xx=0.5)
    assert sim.http.post("/_sim/reset").json() == {"reset": True}
    assert sim.messages() == []
    assert sim.stats()["requests"] == 0
    assert sim.http.get("/_sim/faults").json()["http_5xx"] == 0.0
    assert sim.api("GET", f"/contacts/{contact_id}").status_code == 404
    assert sim.http.get("/_sim/clock").json()["offset_seconds"] == 0


def test_the_message_log_keeps_the_most_recent_requests(start_simulator: Any) -> None:
    small: SimClient = start_simulator(rate_limit=0, message_log_limit=2)
    small.clock("2026-11-24T12:00:00+09:00")
    sent = [small.accepted(friendtalk(TEXT)) for _ in range(3)]
    assert [record["message_id"] for record in small.messages()] == sent[1:]
    assert small.stats()["requests"] == 3
