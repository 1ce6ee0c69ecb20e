"""Receipts, inbound messages and sessions end to end: simulator → signed webhooks → gateway → worker → job records."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from system import Pipeline

from worker.contacts import ContactBook
from worker.inbound import inbound_messages
from worker.job_events import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from worker.signing import verify

pytestmark = pytest.mark.slow

ALIMTALK = {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"},
            "template": {"id": "package_template", "parameters": {"package_id": "P-1"}}}  # fmt: skip
FRIENDTALK = {"type": "friendtalk", "to": {"msisdn": "010-2345-6789"}, "message": {"text_message": {"text": "안녕"}}}


def running(pipeline: Pipeline, *, beat: bool = True) -> Pipeline:
    pipeline.start_gateway()
    pipeline.start_worker()
    if beat:
        pipeline.start_beat()
    return pipeline


def test_each_kind_goes_from_enqueue_to_delivered(pipeline: Pipeline) -> None:
    running(pipeline)
    contact = pipeline.sim("POST", "/_sim/inbound", json={"text": "문의드립니다"})["contact_id"]
    reply = {"type": "consultation", "to": {"contact_id": contact}, "message": {"text_message": {"text": "네!"}}}
    jobs = [pipeline.producer.send(request) for request in (ALIMTALK, FRIENDTALK, reply)]
    pipeline.wait_for_status([job.id for job in jobs], {"delivered"}, timeout=30)
    for job in jobs:
        done = pipeline.job(job.id)
        assert done.delivery["status"] == "DELIVERED" and done.message_id
        assert [event.to_status for event in done.events][-2:] == ["sent", "delivered"]


def test_authentication_template_without_keyword_fails_by_receipt(pipeline: Pipeline) -> None:
    # Our registry does not know the template (accepted with a warning); KakaoTalk (the simulator) does,
    # and its text has no authentication keyword.
    running(pipeline)
    job = pipeline.producer.send({"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "authentication": True,
                                  "template": {"id": "order_shipped", "parameters": {"order_id": "A-1"}}})  # fmt: skip
    pipeline.wait_for_status([job.id], {"failed"}, timeout=30)
    failed = pipeline.job(job.id)
    assert failed.delivery["code"] == "TEMPLATE_INSUFFICIENT_PARAMETERS"
    assert failed.delivery["sub_code"] == "UNSPECIFIED_SUB_CODE"
    assert "auth" in failed.delivery["description"].lower()


def test_duplicated_reordered_and_early_receipts_end_in_one_right_state(pipeline: Pipeline) -> None:
    pipeline.sim("PUT", "/_sim/faults", json={"receipt_duplicate": 1.0, "receipt_reorder": 0.5,
                                              "receipt_reorder_hold_ms": 300, "receipt_delay_ms": [0, 5]})  # fmt: skip
    running(pipeline)
    results = pipeline.producer.send_many(
        [{**ALIMTALK, "to": {"msisdn": f"010-4444-{i:04d}"}} for i in range(30)]
        + [{**ALIMTALK, "to": {"msisdn": f"010-9999-{i:04d}"}} for i in range(10)]  # unreachable test numbers
    )
    ids = [result.id for result in results]  # type: ignore[union-attr]
    pipeline.wait_for_status(ids, {"delivered", "failed"}, timeout=40)
    statuses = [pipeline.job(job_id).status for job_id in ids]
    assert statuses == ["delivered"] * 30 + ["failed"] * 10
    assert all(pipeline.job(job_id).delivery["code"] == "RECIPIENT_NOT_REACHABLE" for job_id in ids[30:])
    counters = pipeline.store.counters()
    pipeline.wait_for(lambda: pipeline.store.counters().get("receipts:duplicate", 0) >= 40, 10, "40 duplicates")
    assert counters.get("receipts:orphaned", 0) == 0


def test_a_user_writes_and_auto_replies_in_the_session(pipeline: Pipeline) -> None:
    running(pipeline, beat=False)
    contact = pipeline.sim("POST", "/_sim/inbound", json={"text": "배송 언제 와요?"})["contact_id"]
    book = ContactBook(pipeline.redis)
    pipeline.wait_for(lambda: book.has_open_session(contact), 15, "the session to open")
    assert inbound_messages(pipeline.store, contact)[0]["text"] == "배송 언제 와요?"
    book.link("+821012345678", contact)  # what `kakao-dispatch contacts link` records
    job = pipeline.producer.send({"type": "auto", "to": {"msisdn": "010-1234-5678"},
                                  "message": {"text_message": {"text": "내일 도착합니다."}}})  # fmt: skip
    assert (job.type, job.channel) == ("consultation", "KAKAOTALKCHAT")
    pipeline.wait_for_status([job.id], {"delivered"}, timeout=30)
    [sent] = [item for item in pipeline.sim("GET", "/_sim/messages") if item["request"]["correlation_id"] == job.id]
    assert sent["request"]["recipient"] == {"contact_id": contact}
    assert sent["request"]["channel_priority_order"] == ["KAKAOTALKCHAT"]


class EventReceiver:
    """A producer's callback endpoint: records each POST (body and headers); fails the first one."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refused == 0:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/kakao-events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[EventReceiver]:
    events = EventReceiver()
    yield events
    events.server.shutdown()
    events.server.server_close()


def test_callback_url_receives_every_status_change_signed(pipeline: Pipeline, receiver: EventReceiver) -> None:
    pipeline.configure(KAKAO_DISPATCH_CALLBACK_SECRET="producer-secret")
    running(pipeline)
    job = pipeline.producer.send({**ALIMTALK, "callback_url": receiver.url})
    pipeline.wait_for(lambda: {json.loads(body)["status"] for body, _ in receiver.received} >= {"queued", "sending",
                      "sent", "delivered"}, 30, "four signed events")  # fmt: skip
    assert receiver.refused == 1  # the first POST was refused and retried
    for body, headers in receiver.received:
        assert verify("producer-secret", body, headers[NONCE_HEADER], headers[TIMESTAMP_HEADER],
                      headers[SIGNATURE_HEADER])  # fmt: skip
        event = json.loads(body)
        assert event["job_id"] == job.id and event["job"]["recipient"] == "+82******5678"
    assert not verify("other-secret", *(receiver.received[0][0], receiver.received[0][1][NONCE_HEADER],
                                        receiver.received[0][1][TIMESTAMP_HEADER],
                                        receiver.received[0][1][SIGNATURE_HEADER]))  # fmt: skip
