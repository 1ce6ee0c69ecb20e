"""The Sinch client: OAuth2 token life, the exact requests it sends, and the class of every failure."""

from __future__ import annotations

import base64
import json
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from worker.settings import Settings
from worker.sinch import (
    AmbiguousError,
    PermanentError,
    RateLimitedError,
    RetryableError,
    SendResult,
    SinchClient,
    SinchError,
    parse_retry_after,
)

API_URL = "https://eu.conversation.api.sinch.com"
AUTH_URL = "https://auth.sinch.com/oauth2/token"
PROJECT = "project-1"
KEY_ID = "key-id-1"
SECRET = "key-secret-do-not-leak"
SEND_URL = f"{API_URL}/v1/projects/{PROJECT}/messages:send"
BODY = {
    "app_id": "app-1",
    "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": "+821012345678"}]}},
    "message": {"text_message": {"text": "안녕하세요"}},
    "message_metadata": "job-1",
    "correlation_id": "job-1",
}
ACCEPTED = {"message_id": "01HMSG", "accepted_time": "2026-11-24T03:00:00.123Z"}
EXPIRED = {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="Jwt expired"'}

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """The client's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSinch:
    """The token endpoint and the Conversation API behind `httpx.MockTransport`, recording every request.

    Tokens are `token-1`, `token-2`, ... in issue order; `api` answers Conversation API requests
    (default: accept every message).
    """

    def __init__(self) -> None:
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.expires_in: Any = 3600
        self.token_delay = 0.0
        self.token_endpoint: Handler | None = None
        self.api: Handler = lambda request: httpx.Response(200, json=ACCEPTED)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if str(request.url) == AUTH_URL:
            with self._lock:
                self.token_requests.append(request)
                number = len(self.token_requests)
            time.sleep(self.token_delay)
            if self.token_endpoint is not None:
                return self.token_endpoint(request)
            token = {"access_token": f"token-{number}", "token_type": "Bearer", "expires_in": self.expires_in}
            return httpx.Response(200, json={**token, "scope": ""})
        with self._lock:
            self.api_requests.append(request)
        return self.api(request)

    @property
    def bearers(self) -> list[str]:
        return [request.headers["Authorization"] for request in self.api_requests]


def answer(status: int, **kwargs: Any) -> Handler:
    return lambda request: httpx.Response(status, **kwargs)


def fail_with(error: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


def sinch_error(status: int, grpc_status: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": grpc_status, "details": details or []}}


@pytest.fixture
def sinch() -> FakeSinch:
    return FakeSinch()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(sinch: FakeSinch, clock: Clock) -> Iterator[SinchClient]:
    with make_client(sinch, clock=clock) as client:
        yield client


def make_client(sinch: FakeSinch, **overrides: Any) -> SinchClient:
    arguments: dict[str, Any] = {
        "api_url": API_URL,
        "auth_url": AUTH_URL,
        "project_id": PROJECT,
        "key_id": KEY_ID,
        "key_secret": SECRET,
        "transport": httpx.MockTransport(sinch),
    }
    return SinchClient(**(arguments | overrides))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- the requests sent ---------------------------------------------------------------------------


def test_send_posts_the_exact_body_to_messages_send_with_a_bearer_token(client: SinchClient, sinch: FakeSinch) -> None:
    result = client.send_message(BODY)

    assert result == SendResult(message_id="01HMSG", accepted_time="2026-11-24T03:00:00.123Z")
    [request] = sinch.api_requests
    assert request.method == "POST"
    assert str(request.url) == SEND_URL
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "kakao-dispatch/0.1"
    assert json.loads(request.content) == BODY


def test_any_mapping_is_a_body(client: SinchClient, sinch: FakeSinch) -> None:
    client.send_message(MappingProxyType(BODY))

    assert json.loads(sinch.api_requests[0].content) == BODY


def test_accepted_time_is_optional(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(202, json={"message_id": "01HMSG"})

    assert client.send_message(BODY) == SendResult(message_id="01HMSG", accepted_time=None)


def test_token_request_is_client_credentials_with_the_key_as_basic_auth(client: SinchClient, sinch: FakeSinch) -> None:
    client.send_message(BODY)

    [request] = sinch.token_requests
    assert request.method == "POST"
    assert str(request.url) == AUTH_URL
    assert request.headers["Authorization"] == basic(KEY_ID, SECRET)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"]}


def test_one_token_serves_many_sends(client: SinchClient, sinch: FakeSinch) -> None:
    for _ in range(25):
        client.send_message(BODY)

    assert len(sinch.token_requests) == 1
    assert set(sinch.bearers) == {"Bearer token-1"}


def test_token_is_refreshed_a_minute_before_it_expires(client: SinchClient, sinch: FakeSinch, clock: Clock) -> None:
    client.send_message(BODY)
    clock.now += 3600 - 60 - 1
    client.send_message(BODY)
    clock.now += 1
    client.send_message(BODY)
    client.send_message(BODY)

    assert len(sinch.token_requests) == 2
    assert sinch.bearers == ["Bearer token-1", "Bearer token-1", "Bearer token-2", "Bearer token-2"]


def test_short_lived_token_is_refreshed_when_a_tenth_of_its_life_is_left(
    client: SinchClient, sinch: FakeSinch, clock: Clock
) -> None:
    sinch.expires_in = 100
    client.send_message(BODY)
    clock.now += 89.9
    client.send_message(BODY)
    clock.now += 0.1
    client.send_message(BODY)

    assert sinch.bearers == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


@pytest.mark.parametrize("expires_in", [None, "soon", 0, -5, True])
def test_token_without_a_usable_lifetime_is_kept_five_minutes(
    client: SinchClient, sinch: FakeSinch, clock: Clock, expires_in: Any
) -> None:
    sinch.expires_in = expires_in
    client.send_message(BODY)
    clock.now += 269
    client.send_message(BODY)
    clock.now += 1
    client.send_message(BODY)

    assert sinch.bearers == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_expired_token_is_refreshed_once_and_the_send_retried(client: SinchClient, sinch: FakeSinch) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer token-1":
            return httpx.Response(401, headers=EXPIRED)
        return httpx.Response(200, json=ACCEPTED)

    sinch.api = api

    assert client.send_message(BODY).message_id == "01HMSG"
    assert len(sinch.token_requests) == 2
    assert sinch.bearers == ["Bearer token-1", "Bearer token-2"]
    assert json.loads(sinch.api_requests[1].content) == BODY


def test_401_after_a_refresh_is_permanent(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(401, headers=EXPIRED)

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    assert caught.value.status_code == 401
    assert len(sinch.token_requests) == 2
    assert sinch.bearers == ["Bearer token-1", "Bearer token-2"]


def test_401_that_does_not_say_expired_is_permanent_without_a_refresh(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(401, json=sinch_error(401, "UNAUTHENTICATED", "Invalid credentials"))

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    assert (caught.value.status_code, caught.value.status) == (401, "UNAUTHENTICATED")
    assert len(sinch.token_requests) == 1
    assert len(sinch.api_requests) == 1


def test_a_rejected_token_is_not_reused_by_the_next_send(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(401)
    with pytest.raises(PermanentError):
        client.send_message(BODY)
    sinch.api = answer(200, json=ACCEPTED)

    client.send_message(BODY)

    assert sinch.bearers == ["Bearer token-1", "Bearer token-2"]


def test_threads_that_meet_an_expired_token_cause_exactly_one_refresh(client: SinchClient, sinch: FakeSinch) -> None:
    threads = 8
    client.send_message(BODY)  # token-1 cached
    all_rejected = threading.Barrier(threads, timeout=5)

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer token-1":
            all_rejected.wait()  # every thread has sent with token-1 before any refresh starts
            return httpx.Response(401, headers=EXPIRED)
        return httpx.Response(200, json=ACCEPTED)

    sinch.api = api
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: client.send_message(BODY), range(threads)))

    assert [result.message_id for result in results] == ["01HMSG"] * threads
    assert len(sinch.token_requests) == 2
    assert sinch.bearers.count("Bearer token-2") == threads
    assert set(sinch.bearers) == {"Bearer token-1", "Bearer token-2"}


def test_threads_past_the_refresh_time_fetch_one_new_token(client: SinchClient, sinch: FakeSinch, clock: Clock) -> None:
    threads = 8
    client.send_message(BODY)
    clock.now += 3600
    sinch.token_delay = 0.05  # a slow token endpoint widens the race
    start = threading.Barrier(threads, timeout=5)

    def send(_: int) -> SendResult:
        start.wait()
        return client.send_message(BODY)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(threads)))

    assert len(sinch.token_requests) == 2
    assert sinch.bearers[1:] == ["Bearer token-2"] * threads


def test_basic_auth_sends_the_key_on_every_call_and_never_asks_for_a_token(sinch: FakeSinch) -> None:
    with make_client(sinch, auth="basic") as client:
        client.send_message(BODY)
        client.get_app("app-1")

    assert sinch.token_requests == []
    assert sinch.bearers == [basic(KEY_ID, SECRET)] * 2


def test_basic_auth_401_is_permanent_without_a_retry(sinch: FakeSinch) -> None:
    sinch.api = answer(401, headers=EXPIRED)

    with make_client(sinch, auth="basic") as client, pytest.raises(PermanentError):
        client.send_message(BODY)

    assert (len(sinch.token_requests), len(sinch.api_requests)) == (0, 1)


# --- set-up calls ----------------------------------------------------------------------------


def test_get_app(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={"id": "app-1", "display_name": "Shop"})

    assert client.get_app("app-1") == {"id": "app-1", "display_name": "Shop"}
    [request] = sinch.api_requests
    assert (request.method, str(request.url)) == ("GET", f"{API_URL}/v1/projects/{PROJECT}/apps/app-1")
    assert request.headers["Authorization"] == "Bearer token-1"


def test_update_app_patches_with_a_comma_joined_update_mask(client: SinchClient, sinch: FakeSinch) -> None:
    body = {"display_name": "Shop", "channel_credentials": [{"channel": "KAKAOTALK"}]}
    sinch.api = answer(200, json={"id": "app-1", **body})

    assert client.update_app("app-1", body, ["display_name", "channel_credentials"])["id"] == "app-1"
    [request] = sinch.api_requests
    assert request.method == "PATCH"
    assert request.url.path == f"/v1/projects/{PROJECT}/apps/app-1"
    assert request.url.params.get_list("update_mask") == ["display_name,channel_credentials"]
    assert json.loads(request.content) == body


def test_update_app_refuses_a_bare_string_as_the_mask(client: SinchClient) -> None:
    with pytest.raises(TypeError):
        client.update_app("app-1", {}, "display_name")


def test_create_webhook(client: SinchClient, sinch: FakeSinch) -> None:
    body = {"app_id": "app-1", "target": "https://hooks.example/sinch", "triggers": ["MESSAGE_DELIVERY"]}
    sinch.api = answer(200, json={"id": "wh-1", **body})

    assert client.create_webhook(body)["id"] == "wh-1"
    [request] = sinch.api_requests
    assert (request.method, str(request.url)) == ("POST", f"{API_URL}/v1/projects/{PROJECT}/webhooks")
    assert json.loads(request.content) == body


def test_list_webhooks_returns_the_list(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={"webhooks": [{"id": "wh-1"}, {"id": "wh-2"}]})

    assert client.list_webhooks("app-1") == [{"id": "wh-1"}, {"id": "wh-2"}]
    [request] = sinch.api_requests
    assert (request.method, str(request.url)) == ("GET", f"{API_URL}/v1/projects/{PROJECT}/apps/app-1/webhooks")


def test_list_webhooks_of_an_app_without_any_is_empty(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={})

    assert client.list_webhooks("app-1") == []


def test_delete_webhook(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={})

    assert client.delete_webhook("wh-1") == {}
    [request] = sinch.api_requests
    assert (request.method, str(request.url)) == ("DELETE", f"{API_URL}/v1/projects/{PROJECT}/webhooks/wh-1")


def test_merge_contacts(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={"id": "contact-dest"})

    assert client.merge_contacts("contact-dest", "contact-src") == {"id": "contact-dest"}
    [request] = sinch.api_requests
    assert request.method == "POST"
    assert str(request.url) == f"{API_URL}/v1/projects/{PROJECT}/contacts/contact-dest:merge"
    assert json.loads(request.content) == {"source_id": "contact-src", "strategy": "MERGE"}


def test_get_contact(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(200, json={"id": "c-1", "channel_identities": []})

    assert client.get_contact("c-1")["id"] == "c-1"
    [request] = sinch.api_requests
    assert (request.method, str(request.url)) == ("GET", f"{API_URL}/v1/projects/{PROJECT}/contacts/c-1")


def test_ids_cannot_change_the_path(client: SinchClient, sinch: FakeSinch) -> None:
    client.get_contact("../apps/x?y=1")

    assert sinch.api_requests[0].url.raw_path == f"/v1/projects/{PROJECT}/contacts/..%2Fapps%2Fx%3Fy%3D1".encode()


def test_set_up_calls_share_the_error_classes(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(404, json=sinch_error(404, "NOT_FOUND", "App not found"))
    with pytest.raises(PermanentError, match="NOT_FOUND"):
        client.get_app("app-x")
    sinch.api = answer(503)
    with pytest.raises(RetryableError):
        client.list_webhooks("app-1")
    sinch.api = answer(200, text="<html>")
    with pytest.raises(AmbiguousError):
        client.create_webhook({"app_id": "app-1"})


# --- regions ---------------------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "sinch_project_id": PROJECT,
        "sinch_key_id": KEY_ID,
        "sinch_key_secret": SECRET,
        "sinch_api_url_override": None,
        "sinch_auth_url_override": None,
    }
    return Settings(**(defaults | values))


@pytest.mark.parametrize("region", ["us", "eu", "br"])
def test_region_picks_the_base_url(sinch: FakeSinch, region: str) -> None:
    with SinchClient.from_settings(settings(sinch_region=region), transport=httpx.MockTransport(sinch)) as client:
        client.send_message(BODY)

    assert str(sinch.token_requests[0].url) == "https://auth.sinch.com/oauth2/token"
    expected = f"https://{region}.conversation.api.sinch.com/v1/projects/{PROJECT}/messages:send"
    assert str(sinch.api_requests[0].url) == expected


def test_api_url_setting_overrides_the_region(sinch: FakeSinch) -> None:
    configured = settings(sinch_region="eu", sinch_api_url_override="http://127.0.0.1:8765/")
    with SinchClient.from_settings(configured, transport=httpx.MockTransport(sinch), auth="basic") as client:
        client.send_message(BODY)

    assert str(sinch.api_requests[0].url) == f"http://127.0.0.1:8765/v1/projects/{PROJECT}/messages:send"


def test_keyword_overrides_win_over_settings(sinch: FakeSinch) -> None:
    configured = settings(sinch_region="eu", sinch_api_url_override="http://127.0.0.1:8765")
    transport = httpx.MockTransport(sinch)
    with SinchClient.from_settings(configured, transport=transport, api_url="https://sim.test", auth="basic") as client:
        client.send_message(BODY)

    assert str(sinch.api_requests[0].url) == f"https://sim.test/v1/projects/{PROJECT}/messages:send"


def test_missing_credentials_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="SINCH_KEY_SECRET"):
        SinchClient.from_settings(settings(sinch_key_secret=""))


# --- permanent failures ----------------------------------------------------------------------


def test_bad_request_is_permanent_with_sinch_error_parsed(client: SinchClient, sinch: FakeSinch) -> None:
    details = [{"type_url": "type.googleapis.com/google.rpc.BadRequest", "value": "..."}]
    sinch.api = answer(400, json=sinch_error(400, "INVALID_ARGUMENT", "Invalid recipient", details))

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    error = caught.value
    assert (error.status_code, error.code, error.status) == (400, 400, "INVALID_ARGUMENT")
    assert error.message == "Invalid recipient"
    assert error.details == details
    assert str(error) == "messages:send failed: HTTP 400 INVALID_ARGUMENT: Invalid recipient"


@pytest.mark.parametrize("status", [403, 404, 405, 409, 413, 415, 422, 501, 505, 507])
def test_client_errors_and_unsupported_5xx_are_permanent(client: SinchClient, sinch: FakeSinch, status: int) -> None:
    sinch.api = answer(status, json=sinch_error(status, "SOME_STATUS", "no"))

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    assert (caught.value.status_code, caught.value.code) == (status, status)


@pytest.mark.parametrize(
    "content",
    [b"", b"<html>Bad Gateway</html>", b"\xff\xfe", b"[1, 2]", b'{"error": "nope"}', b'{"error": {"code": "x"}}'],
)
def test_error_bodies_of_other_shapes_are_tolerated(client: SinchClient, sinch: FakeSinch, content: bytes) -> None:
    sinch.api = answer(400, content=content)

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    assert caught.value.status_code == 400
    assert (caught.value.code, caught.value.message, caught.value.details) == (None, None, [])


# --- retryable failures ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(client: SinchClient, sinch: FakeSinch, status: int) -> None:
    sinch.api = answer(status)

    with pytest.raises(RetryableError) as caught:
        client.send_message(BODY)

    assert type(caught.value) is RetryableError
    assert (caught.value.status_code, caught.value.retry_after) == (status, None)


def test_429_is_rate_limited_with_retry_after_seconds(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(429, headers={"Retry-After": "7"}, json=sinch_error(429, "RESOURCE_EXHAUSTED", "slow down"))

    with pytest.raises(RateLimitedError) as caught:
        client.send_message(BODY)

    assert (caught.value.status_code, caught.value.retry_after, caught.value.status) == (429, 7.0, "RESOURCE_EXHAUSTED")


def test_429_with_an_http_date_waits_until_that_date_by_the_server_clock(client: SinchClient, sinch: FakeSinch) -> None:
    server_now = datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)  # far from this host's clock on purpose
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=90), usegmt=True),
    }
    sinch.api = answer(429, headers=headers)

    with pytest.raises(RateLimitedError) as caught:
        client.send_message(BODY)

    assert caught.value.retry_after == 90.0


def test_429_with_an_http_date_and_no_date_header_uses_this_host_clock(client: SinchClient, sinch: FakeSinch) -> None:
    retry_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    sinch.api = answer(429, headers={"Retry-After": format_datetime(retry_at, usegmt=True)})

    with pytest.raises(RateLimitedError) as caught:
        client.send_message(BODY)

    assert caught.value.retry_after is not None
    assert 28.0 <= caught.value.retry_after <= 30.0


def test_429_without_retry_after(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(429)

    with pytest.raises(RateLimitedError) as caught:
        client.send_message(BODY)

    assert caught.value.retry_after is None


def test_503_retry_after_is_kept(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(503, headers={"Retry-After": "120"})

    with pytest.raises(RetryableError) as caught:
        client.send_message(BODY)

    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.retry_after == 120.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 15 ", 15.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: never negative
        ("-5", None),
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:30 -0000", None),  # not a GMT date
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()

    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout, httpx.WriteError]
)
def test_failures_before_the_request_was_complete_are_retryable(
    client: SinchClient, sinch: FakeSinch, error: type[httpx.TransportError]
) -> None:
    client.get_app("app-1")  # the token is in hand; this failure is the send's own
    sinch.api = fail_with(error)

    with pytest.raises(RetryableError) as caught:
        client.send_message(BODY)

    assert type(caught.value) is RetryableError
    assert (caught.value.status_code, caught.value.retry_after) == (None, None)
    assert isinstance(caught.value.__cause__, error)


# --- ambiguous failures ----------------------------------------------------------------------


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError])
def test_failures_after_the_request_was_sent_are_ambiguous(
    client: SinchClient, sinch: FakeSinch, error: type[httpx.TransportError]
) -> None:
    sinch.api = fail_with(error)

    with pytest.raises(AmbiguousError) as caught:
        client.send_message(BODY)

    assert caught.value.status_code is None
    assert len(sinch.api_requests) == 1  # never resent


@pytest.mark.parametrize(
    "content",
    [b"", b"OK", b"\xff", b"[]", b"{}", b'{"message_id": ""}', b'{"message_id": 42}', b'{"accepted_time": "x"}'],
)
def test_2xx_without_a_message_id_is_ambiguous(client: SinchClient, sinch: FakeSinch, content: bytes) -> None:
    sinch.api = answer(200, content=content)

    with pytest.raises(AmbiguousError) as caught:
        client.send_message(BODY)

    assert caught.value.status_code == 200


# --- the token endpoint failing --------------------------------------------------------------


def test_token_endpoint_401_is_permanent(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.token_endpoint = answer(401, json={"error": "invalid_client", "error_description": "Bad client"})

    with pytest.raises(PermanentError) as caught:
        client.send_message(BODY)

    assert (caught.value.status_code, caught.value.status) == (401, "invalid_client")
    assert "key id or key secret" in str(caught.value)
    assert sinch.api_requests == []


@pytest.mark.parametrize("status", [429, 500, 501, 502, 503])
def test_token_endpoint_overload_is_retryable(client: SinchClient, sinch: FakeSinch, status: int) -> None:
    sinch.token_endpoint = answer(status, headers={"Retry-After": "3"})

    with pytest.raises(RetryableError) as caught:
        client.send_message(BODY)

    assert type(caught.value) is RetryableError  # a token-endpoint 429 must not slow the cluster's sends
    assert (caught.value.status_code, caught.value.retry_after) == (status, 3.0)
    assert sinch.api_requests == []


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError])
def test_token_endpoint_unreachable_is_retryable(
    client: SinchClient, sinch: FakeSinch, error: type[httpx.TransportError]
) -> None:
    sinch.token_endpoint = fail_with(error)

    with pytest.raises(RetryableError):
        client.send_message(BODY)

    assert sinch.api_requests == []


def test_token_response_without_a_token_is_retryable(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.token_endpoint = answer(200, json={"token_type": "Bearer"})

    with pytest.raises(RetryableError):
        client.send_message(BODY)


def test_failed_refresh_after_an_expired_401_is_retryable(client: SinchClient, sinch: FakeSinch) -> None:
    client.send_message(BODY)
    sinch.api = answer(401, headers=EXPIRED)
    sinch.token_endpoint = answer(503)

    with pytest.raises(RetryableError) as caught:
        client.send_message(BODY)

    assert caught.value.status_code == 503


# --- secrets ---------------------------------------------------------------------------------


def test_repr_shows_no_secret(client: SinchClient) -> None:
    text = repr(client)

    assert SECRET not in text
    assert KEY_ID in text and PROJECT in text


def test_exception_text_never_carries_the_secret_or_the_token(sinch: FakeSinch) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=sinch_error(400, "INVALID_ARGUMENT", f"bad {request.headers['Authorization']}"))

    sinch.api = echo
    errors: list[SinchError] = []
    for auth in ("oauth", "basic"):
        with make_client(sinch, auth=auth) as client, pytest.raises(PermanentError) as caught:
            client.send_message(BODY)
        errors.append(caught.value)
    sinch.token_endpoint = answer(401, json={"error": "invalid_client", "error_description": f"secret {SECRET}"})
    with make_client(sinch) as client, pytest.raises(PermanentError) as caught:
        client.send_message(BODY)
    errors.append(caught.value)

    encoded = base64.b64encode(f"{KEY_ID}:{SECRET}".encode()).decode()
    for error in errors:
        for text in (str(error), repr(error), error.message or ""):
            assert SECRET not in text
            assert encoded not in text
            assert "token-" not in text


def test_exceptions_survive_pickling_with_their_fields(client: SinchClient, sinch: FakeSinch) -> None:
    sinch.api = answer(429, headers={"Retry-After": "7"}, json=sinch_error(429, "RESOURCE_EXHAUSTED", "slow down"))
    with pytest.raises(RateLimitedError) as caught:
        client.send_message(BODY)

    copy = pickle.loads(pickle.dumps(caught.value))

    assert type(copy) is RateLimitedError
    assert str(copy) == str(caught.value)
    assert (copy.status_code, copy.code, copy.status, copy.message, copy.retry_after) == (
        429,
        429,
        "RESOURCE_EXHAUSTED",
        "slow down",
        7.0,
    )


def test_closed_client_refuses_to_send(sinch: FakeSinch) -> None:
    with make_client(sinch) as client:
        client.send_message(BODY)

    with pytest.raises(RuntimeError):
        client.send_message(BODY)


# --- over real HTTP --------------------------------------------------------------------------


class _SlowSinchHandler(BaseHTTPRequestHandler):
    """Answers tokens at once and `messages:send` only once the test releases it (too late)."""

    server: _SlowSinchServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/oauth2/token":
            self._json({"access_token": "token-1", "expires_in": 3600})
            return
        self.server.received.set()
        self.server.release.wait(timeout=5)
        self._json(ACCEPTED)

    def _json(self, document: dict[str, Any]) -> None:
        content = json.dumps(document).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:  # the client gave up and closed the connection
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SlowSinchServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for the handler threads

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowSinchHandler)
        self.received = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def slow_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_SlowSinchServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = _SlowSinchServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_read_timeout_over_real_http_is_ambiguous(slow_server: _SlowSinchServer) -> None:
    timeout = httpx.Timeout(2.0, read=0.3)
    with SinchClient(
        api_url=slow_server.url,
        auth_url=f"{slow_server.url}/oauth2/token",
        project_id=PROJECT,
        key_id=KEY_ID,
        key_secret=SECRET,
        timeout=timeout,
    ) as client:
        started = time.monotonic()
        with pytest.raises(AmbiguousError, match="ReadTimeout"):
            client.send_message(BODY)

    assert slow_server.received.is_set()  # the request did reach the server
    assert time.monotonic() - started < 2.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("auth", ["basic", "oauth"])
def test_refused_connection_over_real_http_is_retryable(monkeypatch: pytest.MonkeyPatch, auth: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        SinchClient(
            api_url=closed,
            auth_url=f"{closed}/oauth2/token",
            project_id=PROJECT,
            key_id=KEY_ID,
            key_secret=SECRET,
            auth=auth,  # type: ignore[arg-type]
        ) as client,
        pytest.raises(RetryableError, match="ConnectError") as caught,
    ):
        client.send_message(BODY)

    assert type(caught.value) is RetryableError
