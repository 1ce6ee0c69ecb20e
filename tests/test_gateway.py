"""The gateway over real HTTP: Sinch's signed callbacks queued for the workers, everything else refused or ignored."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import typer
from system import gateways
from typer.testing import CliRunner

from producers.gateway import register
from simulator import BackgroundSimulator, SimulatorConfig
from worker import keys
from worker.redis_server import RedisServer, free_port
from worker.signing import signed_headers

SECRET = "whsec-gateway-test"
WEBHOOK = "/webhooks/sinch"
DELIVERY_REPORT = {
    "app_id": "01EB37HMH1M6SV18BSNS3G135H",
    "accepted_time": "2026-03-02T01:02:03.456Z",
    "event_time": "2026-03-02T01:02:03.123Z",
    "project_id": "c36f3d3d-1513-2edd-ae42-11995557ff61",
    "message_delivery_report": {
        "message_id": "01EQBC1A3BEK731GY4YXEN0C2R",
        "conversation_id": "",
        "status": "DELIVERED",
        "channel_identity": {"channel": "KAKAOTALK", "identity": "821012345678", "app_id": ""},
        "contact_id": "",
        "metadata": "job-1",
    },
}

Serve = Callable[..., str]


@pytest.fixture
def serve(redis_server: RedisServer) -> Iterator[Serve]:
    """Start a gateway on a free port with settings overrides (signed with SECRET unless told otherwise)."""
    with gateways(redis_url=redis_server.url, broker_url_override=None, sinch_webhook_secret=SECRET) as start:
        yield start


@pytest.fixture
def gateway(serve: Serve, redis_client: redis.Redis) -> str:
    return serve()


def body_of(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + WEBHOOK, content=body, headers={"Content-Type": "application/json", **(headers or {})})


def post_signed(url: str, document: Any, *, secret: str = SECRET, **signing: Any) -> httpx.Response:
    body = body_of(document)
    return post(url, body, signed_headers(secret, body, **signing))


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    """The kombu messages waiting in the `callbacks` queue (a Redis list), oldest first."""
    return [json.loads(raw) for raw in reversed(client.lrange("callbacks", 0, -1))]


def counters(client: redis.Redis) -> dict[str, str]:
    return {str(name): str(value) for name, value in client.hgetall(keys.COUNTERS).items()}


def test_a_signed_delivery_report_is_queued_for_the_callback_task(gateway: str, redis_client: redis.Redis) -> None:
    before_ms = int(time.time() * 1000)
    response = post_signed(gateway, DELIVERY_REPORT)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    [message] = queued(redis_client)
    assert message["headers"]["task"] == "kakao_dispatch.process_callback"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args[0] == DELIVERY_REPORT and kwargs == {}
    assert before_ms <= args[1] <= int(time.time() * 1000)
    assert counters(redis_client) == {"callbacks:message_delivery_report": "1"}


def test_a_forged_signature_is_refused_and_nothing_queued(gateway: str, redis_client: redis.Redis) -> None:
    response = post_signed(gateway, DELIVERY_REPORT, secret="guessed")
    assert response.status_code == 401
    assert response.json()["reason"] == "bad_signature"
    assert queued(redis_client) == []
    assert counters(redis_client) == {"webhook_rejected:bad_signature": "1"}


def test_a_forged_request_does_not_burn_the_nonce_of_the_real_one(gateway: str, redis_client: redis.Redis) -> None:
    assert post_signed(gateway, DELIVERY_REPORT, secret="guessed", nonce="n-1").status_code == 401
    assert post_signed(gateway, DELIVERY_REPORT, nonce="n-1").status_code == 200
    assert len(queued(redis_client)) == 1


@pytest.mark.parametrize(("offset", "reason"), [(-400, "stale_timestamp"), (400, "future_timestamp")])
def test_timestamps_outside_the_window_are_refused(
    gateway: str, redis_client: redis.Redis, offset: int, reason: str
) -> None:
    response = post_signed(gateway, DELIVERY_REPORT, now=time.time() + offset)
    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert queued(redis_client) == []


def test_the_same_nonce_twice_is_a_replay(gateway: str, redis_client: redis.Redis) -> None:
    body = body_of(DELIVERY_REPORT)
    headers = signed_headers(SECRET, body)
    assert post(gateway, body, headers).status_code == 200
    replay = post(gateway, body, headers)
    assert replay.status_code == 401
    assert replay.json()["reason"] == "replayed_nonce"
    assert len(queued(redis_client)) == 1
    nonce_key = keys.webhook_nonce(headers["x-sinch-webhook-signature-nonce"])
    assert 0 < redis_client.ttl(nonce_key) <= 600  # twice the 300 s window
    assert counters(redis_client)["webhook_rejected:replayed_nonce"] == "1"


def test_another_algorithm_is_refused(gateway: str, redis_client: redis.Redis) -> None:
    body = body_of(DELIVERY_REPORT)
    headers = signed_headers(SECRET, body) | {"x-sinch-webhook-signature-algorithm": "HmacSHA1"}
    response = post(gateway, body, headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "unsupported_algorithm"


@pytest.mark.parametrize("dropped", ["", "-nonce", "-timestamp", "-algorithm"])
def test_missing_signature_headers_are_refused(gateway: str, redis_client: redis.Redis, dropped: str) -> None:
    body = body_of(DELIVERY_REPORT)
    headers = signed_headers(SECRET, body)
    del headers["x-sinch-webhook-signature" + dropped]
    response = post(gateway, body, headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_headers"
    assert queued(redis_client) == []


def test_without_a_secret_unsigned_callbacks_are_accepted_and_a_warning_logged(
    serve: Serve, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="producers.gateway"):
        url = serve(sinch_webhook_secret=None)
        assert post(url, body_of(DELIVERY_REPORT)).json() == {"status": "accepted"}
        assert post(url, body_of(DELIVERY_REPORT)).json() == {"status": "accepted"}
    assert len(queued(redis_client)) == 2
    warnings = [record for record in caplog.records if "SINCH_WEBHOOK_SECRET" in record.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(("body", "reason"), [(b'{"message": ', "malformed_json"), (b"[1, 2]", "not_an_object")])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    gateway: str, redis_client: redis.Redis, body: bytes, reason: str
) -> None:
    response = post(gateway, body, signed_headers(SECRET, body))
    assert response.status_code == 400
    assert response.json()["reason"] == reason
    assert queued(redis_client) == []


def test_a_body_over_the_limit_is_refused_declared_or_streamed(serve: Serve, redis_client: redis.Redis) -> None:
    url = serve(webhook_max_body_bytes=1024)
    large = body_of(DELIVERY_REPORT | {"padding": "x" * 2000})
    assert post(url, large, signed_headers(SECRET, large)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield from (large[start : start + 256] for start in range(0, len(large), 256))

    streamed = httpx.post(url + WEBHOOK, content=chunks(), headers=signed_headers(SECRET, large))
    assert streamed.status_code == 413
    assert streamed.json()["reason"] == "body_too_large"
    assert queued(redis_client) == []
    assert counters(redis_client) == {"webhook_rejected:body_too_large": "2"}
    assert post_signed(url, DELIVERY_REPORT).status_code == 200


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({"app_id": "a", "message_submit_notification": {"message_id": "m"}}, "message_submit_notification"),
        ({"app_id": "a", "contact_create_notification": {"contact": {}}}, "contact_create_notification"),
        ({"app_id": "a", "something_new": {}}, "unknown"),
    ],
)
def test_other_callbacks_are_counted_and_ignored(
    gateway: str, redis_client: redis.Redis, document: dict[str, Any], kind: str
) -> None:
    response = post_signed(gateway, document)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "kind": kind}
    assert queued(redis_client) == []
    assert counters(redis_client) == {f"callbacks:{kind}": "1"}


def test_without_redis_callbacks_are_503_so_sinch_retries_and_not_ready(serve: Serve) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    signed, unsigned = serve(redis_url=closed), serve(redis_url=closed, sinch_webhook_secret=None)
    refused = post_signed(signed, DELIVERY_REPORT)
    assert (refused.status_code, refused.json()["reason"]) == (503, "redis_unavailable")
    unpublished = post(unsigned, body_of(DELIVERY_REPORT))
    assert (unpublished.status_code, unpublished.json()["reason"]) == (503, "broker_unavailable")
    ready = httpx.get(signed + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("redis: ")
    assert httpx.get(signed + "/healthz").json() == {"status": "ok"}


def test_a_callback_the_broker_cannot_take_keeps_its_nonce_free_for_the_retry(
    serve: Serve, redis_client: redis.Redis
) -> None:
    url = serve(broker_url_override=f"redis://127.0.0.1:{free_port()}/0")
    body = body_of(DELIVERY_REPORT)
    headers = signed_headers(SECRET, body)
    assert post(url, body, headers).status_code == 503
    assert not redis_client.exists(keys.webhook_nonce(headers["x-sinch-webhook-signature-nonce"]))


def test_health_and_readiness_answer_when_redis_does(gateway: str) -> None:
    assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway + "/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


def test_a_message_inbound_signed_by_the_simulator_is_queued(serve: Serve, redis_client: redis.Redis) -> None:
    url = serve()
    config = SimulatorConfig(webhook_url=url + WEBHOOK, webhook_secret=SECRET, receipt_delay_ms=(0, 0))
    with BackgroundSimulator(config) as sim:
        contact_id = httpx.post(sim.url + "/_sim/inbound", json={"text": "hi"}).raise_for_status().json()["contact_id"]
        deadline = time.monotonic() + 5
        while not queued(redis_client) and time.monotonic() < deadline:
            time.sleep(0.02)
    [message] = queued(redis_client)
    payload, _received_at_ms = json.loads(base64.b64decode(message["body"]))[0]
    assert payload["message"]["contact_id"] == contact_id
    assert payload["message"]["contact_message"] == {"text_message": {"text": "hi"}}
    assert counters(redis_client) == {"callbacks:message": "1"}


def test_the_gateway_command_refuses_a_taken_port_in_one_line() -> None:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # two commands, so typer keeps `gateway` as a subcommand name
        """Unused."""

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["gateway", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"kakao-dispatch: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line


@pytest.mark.parametrize(("content", "expected"), [("{not json", "is not valid JSON"), ('{"t": 1}', 'needs a "text"')])
def test_the_gateway_command_refuses_a_broken_template_registry_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    registry = tmp_path / "templates.json"
    registry.write_text(content)
    monkeypatch.setenv("KAKAO_DISPATCH_TEMPLATES", str(registry))
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # two commands, so typer keeps `gateway` as a subcommand name
        """Unused."""

    result = CliRunner().invoke(app, ["gateway", "--port", "0"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("kakao-dispatch: ") and expected in line and str(registry) in line
