"""`kakao-dispatch setup app|webhook` and `contacts link|merge` as an operator runs them, against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producers.setup_commands import kakaotalk_channel_credentials, mask_secret
from simulator.config import SimulatorConfig
from simulator.runner import BackgroundSimulator
from simulator.signing import verify
from worker.contacts import ContactBook
from worker.redis_server import RedisServer, free_port

SENDER_KEY = "5f3a0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b1234"
WEBHOOK_SECRET = "callback-signing-secret"
COMMAND = [str(Path(sys.executable).parent / "kakao-dispatch")]


# --- fixtures ----------------------------------------------------------------------------------


class WebhookReceiver:
    """A tiny HTTP server that keeps every callback body and its headers."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, Any], bytes, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((json.loads(body), body, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.received = received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/sinch"

    def wait_for(self, key: str, timeout_s: float = 5.0) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in self.received:
                if key in item[0]:
                    return item
            time.sleep(0.02)
        raise AssertionError(f"no callback with {key!r} arrived; got {[item[0] for item in self.received]}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def simulator() -> Iterator[BackgroundSimulator]:
    with BackgroundSimulator(SimulatorConfig(rate_limit=0, receipt_delay_ms=(0, 0))) as running:
        yield running


@pytest.fixture
def sim(simulator: BackgroundSimulator) -> Iterator[httpx.Client]:
    """A client of the reset simulator's Conversation API (Basic auth with its key), and its control endpoints."""
    config = simulator.config
    with httpx.Client(
        base_url=f"{simulator.url}/v1/projects/{config.project_id}", auth=(config.key_id, config.key_secret)
    ) as client:
        assert client.post(f"{simulator.url}/_sim/reset").status_code == 200
        yield client


@pytest.fixture
def env(simulator: BackgroundSimulator, redis_server: RedisServer, redis_client: redis.Redis) -> dict[str, str]:
    """The environment of the CLI: the simulator's project and key, the private Redis; nothing inherited."""
    config = simulator.config
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    environment.update(
        SINCH_API_URL=simulator.url,
        SINCH_AUTH_URL=f"{simulator.url}/oauth2/token",
        SINCH_PROJECT_ID=config.project_id,
        SINCH_APP_ID=config.app_id,
        SINCH_KEY_ID=config.key_id,
        SINCH_KEY_SECRET=config.key_secret,
        KAKAO_DISPATCH_REDIS_URL=redis_server.url,
    )
    return environment


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def run(env: dict[str, str], *args: str, **changes: str | None) -> subprocess.CompletedProcess[str]:
    environment = dict(env)
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30, env=environment)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def kakaotalk_contact(sim: httpx.Client, simulator: BackgroundSimulator, msisdn: str) -> str:
    """Send a FriendTalk to a new MSISDN: Sinch creates a contact with that KAKAOTALK identity."""
    body = {
        "app_id": simulator.config.app_id,
        "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": msisdn}]}},
        "message": {"text_message": {"text": "주문하신 상품이 발송되었습니다."}},
    }
    assert sim.post("/messages:send", json=body).status_code == 200
    record = sim.get(f"{simulator.url}/_sim/messages").json()[-1]
    return str(record["contact_id"])


def chat_contact(sim: httpx.Client, simulator: BackgroundSimulator) -> str:
    """A user writes to the business channel: Sinch creates a new KAKAOTALKCHAT contact."""
    answer = sim.post(f"{simulator.url}/_sim/inbound", json={"text": "제 번호는 010-7777-8888 입니다"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["contact_id"])


# --- setup app ---------------------------------------------------------------------------------


def test_setup_app_adds_kakaotalk_keeps_other_channels_and_masks_the_sender_key(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str]
) -> None:
    sms = {"channel": "SMS", "static_bearer": {"claimed_identity": "sms-plan", "token": "sms-token"}}
    old_chat = {"channel": "KAKAOTALKCHAT", "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": "@old"}}
    app_url = f"/apps/{simulator.config.app_id}"
    patched = sim.patch(
        app_url, params={"update_mask": "channel_credentials"}, json={"channel_credentials": [sms, old_chat]}
    )
    assert patched.status_code == 200, patched.text

    result = run(env, "setup", "app", "--business-channel-id", "@new-channel", "--sender-key", SENDER_KEY)

    assert result.returncode == 0, result.stderr
    assert SENDER_KEY not in result.stdout + result.stderr
    assert mask_secret(SENDER_KEY) == "********1234" and "********1234" in result.stdout
    assert "KAKAOTALK      added" in result.stdout
    assert "KAKAOTALKCHAT  changed: business channel @old -> business channel @new-channel" in result.stdout
    assert "SMS            kept" in result.stdout
    credentials = sim.get(app_url).json()["channel_credentials"]
    assert [item["channel"] for item in credentials] == ["SMS", "KAKAOTALK", "KAKAOTALKCHAT"]
    assert credentials[0]["static_bearer"] == sms["static_bearer"]
    assert credentials[1]["kakaotalk_credentials"] == {
        "kakaotalk_plus_friend_id": "@new-channel",
        "kakaotalk_sender_key": SENDER_KEY,
    }
    assert credentials[2]["kakaotalkchat_credentials"] == {"kakaotalk_plus_friend_id": "@new-channel"}

    again = run(env, "setup", "app", "--business-channel-id", "@new-channel", "--sender-key", SENDER_KEY)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout and SENDER_KEY not in again.stdout


def test_channel_credentials_drop_read_only_fields_and_keep_the_channel_order() -> None:
    old_kakaotalk = {"kakaotalk_plus_friend_id": "@a", "kakaotalk_sender_key": "k"}
    existing = [
        {"channel": "KAKAOTALK", "kakaotalk_credentials": old_kakaotalk, "callback_secret": "cb",
         "state": {"status": "ACTIVE"}, "channel_known_id": "x"},
        {"channel": "SMS", "static_bearer": {"claimed_identity": "p", "token": "t"}, "callback_secret": "",
         "state": {"status": "ACTIVE", "description": ""}, "channel_known_id": ""},
        {"channel": "KAKAOTALKCHAT", "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": "@a"},
         "state": {"status": "FAILING"}},
    ]  # fmt: skip
    wanted = kakaotalk_channel_credentials(existing, "@b", "new-key")
    assert [item["channel"] for item in wanted] == ["KAKAOTALK", "KAKAOTALKCHAT", "SMS"]
    assert all("state" not in item and "channel_known_id" not in item for item in wanted)
    assert wanted[0] == {
        "channel": "KAKAOTALK",
        "kakaotalk_credentials": {"kakaotalk_plus_friend_id": "@b", "kakaotalk_sender_key": "new-key"},
        "callback_secret": "cb",
    }
    assert wanted[2] == {
        "channel": "SMS",
        "static_bearer": {"claimed_identity": "p", "token": "t"},
        "callback_secret": "",
    }


def test_setup_app_for_an_unknown_app_is_one_line_with_sinchs_404(sim: httpx.Client, env: dict[str, str]) -> None:
    result = run(env, "setup", "app", "--business-channel-id", "@c", "--sender-key", SENDER_KEY, "--app-id", "nope")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "HTTP 404" in line and "NOT_FOUND" in line and "nope" in line


def test_missing_sinch_settings_are_named(env: dict[str, str]) -> None:
    result = run(env, "setup", "webhook", "--target", "https://example.com/hook", SINCH_KEY_ID=None)
    assert result.returncode == 1
    assert "SINCH_KEY_ID" in one_error_line(result)


# --- setup webhook -----------------------------------------------------------------------------


def test_setup_webhook_creates_one_webhook_once_and_it_receives_inbound_messages(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str], receiver: WebhookReceiver
) -> None:
    first = run(env, "setup", "webhook", "--target", receiver.url, SINCH_WEBHOOK_SECRET=WEBHOOK_SECRET)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Created webhook") and "will be signed" in first.stdout
    assert WEBHOOK_SECRET not in first.stdout

    second = run(env, "setup", "webhook", "--target", receiver.url, SINCH_WEBHOOK_SECRET=WEBHOOK_SECRET)
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout
    without_secret = run(env, "setup", "webhook", "--target", receiver.url)  # keeps the secret it has
    assert "nothing changed" in without_secret.stdout and "signed with its existing secret" in without_secret.stdout

    webhooks = sim.get(f"/apps/{simulator.config.app_id}/webhooks").json()["webhooks"]
    assert len(webhooks) == 1
    assert webhooks[0]["target"] == receiver.url and webhooks[0]["secret"] == WEBHOOK_SECRET
    assert sorted(webhooks[0]["triggers"]) == ["MESSAGE_DELIVERY", "MESSAGE_INBOUND"]

    contact_id = chat_contact(sim, simulator)
    document, body, headers = receiver.wait_for("message")
    assert document["message"]["contact_id"] == contact_id
    assert verify(WEBHOOK_SECRET, body, headers)


def test_setup_webhook_recreates_a_webhook_that_lacks_a_trigger(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str], receiver: WebhookReceiver
) -> None:
    app_id = simulator.config.app_id
    old = sim.post("/webhooks", json={"app_id": app_id, "target": receiver.url, "triggers": ["MESSAGE_DELIVERY"]})
    assert old.status_code == 200, old.text

    result = run(env, "setup", "webhook", "--target", receiver.url)

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.startswith(f"Recreated webhook {old.json()['id']}") and "lacked MESSAGE_INBOUND" in result.stdout
    )
    assert "will NOT be signed" in result.stdout
    webhooks = sim.get(f"/apps/{app_id}/webhooks").json()["webhooks"]
    assert [hook["triggers"] for hook in webhooks] == [["MESSAGE_DELIVERY", "MESSAGE_INBOUND"]]


def test_setup_webhook_replaces_a_webhook_whose_secret_differs(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str], receiver: WebhookReceiver
) -> None:
    assert run(env, "setup", "webhook", "--target", receiver.url, "--secret", "old-secret").returncode == 0

    result = run(env, "setup", "webhook", "--target", receiver.url, SINCH_WEBHOOK_SECRET=WEBHOOK_SECRET)

    assert result.returncode == 0, result.stderr
    assert "because its secret differed" in result.stdout and "signed with $SINCH_WEBHOOK_SECRET" in result.stdout
    webhooks = sim.get(f"/apps/{simulator.config.app_id}/webhooks").json()["webhooks"]
    assert [hook["secret"] for hook in webhooks] == [WEBHOOK_SECRET]


def test_setup_webhook_refuses_a_target_that_is_not_a_url(env: dict[str, str]) -> None:
    result = run(env, "setup", "webhook", "--target", "gateway.example.com/webhooks/sinch")
    assert result.returncode == 2
    assert "not an http:// or https:// URL" in one_error_line(result)


# --- contacts ----------------------------------------------------------------------------------


def test_contacts_link_records_the_normalised_msisdn(env: dict[str, str], redis_client: redis.Redis) -> None:
    result = run(env, "contacts", "link", "010-1234-5678", "chat-contact-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Linked +821012345678 to contact chat-contact-1.")
    book = ContactBook(redis_client)
    assert book.contact_for("+821012345678") == "chat-contact-1"
    assert book.msisdn_for("chat-contact-1") == "+821012345678"


def test_contacts_link_refuses_a_bad_msisdn_with_exit_2(env: dict[str, str], redis_client: redis.Redis) -> None:
    result = run(env, "contacts", "link", "12345", "chat-contact-1")
    assert result.returncode == 2
    assert "'12345'" in one_error_line(result)
    assert redis_client.dbsize() == 0


def test_contacts_link_says_when_redis_is_unreachable(env: dict[str, str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run(env, "contacts", "link", "010-1234-5678", "c", KAKAO_DISPATCH_REDIS_URL=url)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "unreachable" in line and "hunter2" not in line


def test_contacts_merge_keeps_the_kakaotalk_contact_and_moves_link_and_session(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str], redis_client: redis.Redis
) -> None:
    destination = kakaotalk_contact(sim, simulator, "+821077778888")
    source = chat_contact(sim, simulator)
    book = ContactBook(redis_client)
    book.touch_session(source, datetime.now(UTC))

    result = run(env, "contacts", "merge", destination, source, "--msisdn", "010-7777-8888")

    assert result.returncode == 0, result.stderr
    merged = sim.get(f"/contacts/{destination}").json()
    assert [identity["channel"] for identity in merged["channel_identities"]] == ["KAKAOTALK", "KAKAOTALKCHAT"]
    assert sim.get(f"/contacts/{source}").status_code == 404
    assert book.contact_for("+821077778888") == destination
    assert book.has_open_session(destination) and not book.has_open_session(source)
    assert f"Merged contact {source} into {destination}" in result.stdout
    assert "KAKAOTALK      +821077778888" in result.stdout and "KAKAOTALKCHAT" in result.stdout
    assert f"Linked +821077778888 to contact {destination}." in result.stdout


def test_contacts_merge_refuses_contacts_given_the_wrong_way_round(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str]
) -> None:
    destination = kakaotalk_contact(sim, simulator, "+821033334444")
    source = chat_contact(sim, simulator)

    result = run(env, "contacts", "merge", source, destination)

    assert result.returncode == 2
    assert "no KAKAOTALK identity" in one_error_line(result)
    assert sim.get(f"/contacts/{source}").status_code == 200
    assert sim.get(f"/contacts/{destination}").status_code == 200


def test_contacts_merge_of_an_unknown_contact_is_sinchs_404(
    sim: httpx.Client, simulator: BackgroundSimulator, env: dict[str, str]
) -> None:
    destination = kakaotalk_contact(sim, simulator, "+821055556666")
    result = run(env, "contacts", "merge", destination, "nobody")
    assert result.returncode == 1
    assert "HTTP 404" in one_error_line(result)
