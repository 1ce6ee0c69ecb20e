"""The gateway: an ASGI app (FastAPI) with the HTTP API for producers (`producers.api`), the Sinch
webhook endpoint, health checks and the Prometheus metrics (`worker.metrics`, read from Redis when scraped).

`POST /webhooks/sinch` answers Sinch quickly and does no processing itself: a callback that passes
verification is published as the Celery task `kakao_dispatch.process_callback` on the `callbacks`
queue, and 200 is answered only once that publish succeeded. Anything not stored is answered
non-2xx so that Sinch retries it (reference §5.5): 503 when Redis or the broker is down. Workers
treat callbacks as at-least-once (a retried or duplicated callback changes nothing twice).
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Annotated, Any

import redis
import typer
import uvicorn
from celery import Celery
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from producers.api import UNAVAILABLE_ERRORS, create_api_router, read_body
from producers.producer import Producer
from worker import keys, logs, metrics
from worker.celery import CALLBACKS_QUEUE, DISPATCH_QUEUE, create_app
from worker.settings import Settings, get_settings
from worker.signing import SignatureRejected, check_signed_request
from worker.templates import TemplateRegistry, TemplateRegistryError

log = logging.getLogger(__name__)

PROCESS_CALLBACK_TASK = "kakao_dispatch.process_callback"
#: The callbacks the workers act on: delivery receipts and the messages users write.
QUEUED_KINDS = ("message_delivery_report", "message")
#: Every payload key of a Conversation API callback (reference §5.1), one per webhook trigger.
CALLBACK_KINDS = (
    *QUEUED_KINDS,
    "message_submit_notification",
    "event_delivery_report",
    "event",
    "conversation_start_notification",
    "conversation_stop_notification",
    "conversation_delete_notification",
    "contact_create_notification",
    "contact_delete_notification",
    "contact_merge_notification",
    "contact_update_notification",
    "duplicated_identities_notification",
    "capability_notification",
    "opt_in_notification",
    "opt_out_notification",
    "channel_event_notification",
    "unsupported_callback",
    "smart_conversation_notification",
    "message_inbound_smart_conversation_redaction",
    "record_notification",
)
#: A few quick tries, then 503: Sinch retries the callback itself, so waiting long here only holds its connection.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def callback_kind(payload: Mapping[str, Any]) -> str:
    """The payload key that names a callback (`message_delivery_report`, `message`, ...), else `unknown`."""
    return next((kind for kind in CALLBACK_KINDS if kind in payload), "unknown")


class WebhookRefused(Exception):
    """A callback answered with a non-2xx status; `reason` is a short machine name, counted and answered."""

    def __init__(self, status_code: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status_code} {reason}: {detail}")
        self.status_code = status_code
        self.reason = reason
        self.detail = detail

    def response(self) -> JSONResponse:
        body = {"status": "unavailable" if self.status_code == 503 else "rejected", "reason": self.reason}
        if self.detail:
            body["detail"] = self.detail
        return JSONResponse(body, status_code=self.status_code)


class SinchWebhook:
    """The blocking half of `POST /webhooks/sinch` (signature, nonce, counters, publish); runs in the threadpool."""

    def __init__(self, settings: Settings, redis_client: redis.Redis, celery_app: Celery) -> None:
        secret = settings.sinch_webhook_secret.get_secret_value() if settings.sinch_webhook_secret else ""
        self.secret = secret or None
        self.max_age_seconds = settings.webhook_max_age_seconds
        # A nonce must outlive every timestamp still accepted: signed up to one window ahead, kept one window after.
        self.nonce_ttl_seconds = math.ceil(2 * settings.webhook_max_age_seconds)
        self.redis = redis_client
        self.celery = celery_app

    def receive(self, body: bytes, headers: Mapping[str, str], received_at_ms: int) -> dict[str, str]:
        """The 200 answer for a callback, or WebhookRefused (401, 400 or 503)."""
        nonce = self._verified_nonce(body, headers)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise WebhookRefused(400, "malformed_json", str(error)[:200]) from None
        if not isinstance(payload, dict):
            raise WebhookRefused(400, "not_an_object", "the body is not a JSON object")
        if nonce is not None:
            self._claim_nonce(nonce)
        kind = callback_kind(payload)
        if kind not in QUEUED_KINDS:
            self._count_or_unavailable(f"callbacks:{kind}")
            return {"status": "ignored", "kind": kind}
        try:
            self.celery.send_task(
                PROCESS_CALLBACK_TASK,
                args=[payload, received_at_ms],
                queue=CALLBACKS_QUEUE,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except UNAVAILABLE_ERRORS as error:
            log.error("cannot publish a %s callback: %s", kind, error)
            if nonce is not None:
                self._release_nonce(nonce)  # Sinch may retry with the same signature: let it through then
            raise WebhookRefused(503, "broker_unavailable") from None
        try:
            self.redis.hincrby(keys.COUNTERS, f"callbacks:{kind}", 1)
        except redis.RedisError as error:  # the callback is queued: a lost count must not make Sinch send it twice
            log.warning("callback queued but not counted: %s", error)
        return {"status": "accepted"}

    def count_rejection(self, reason: str) -> None:
        """Best effort: a refused request is answered whether or not Redis can count it."""
        with suppress(redis.RedisError):
            self.redis.hincrby(keys.COUNTERS, f"webhook_rejected:{reason}", 1)

    def _verified_nonce(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        if self.secret is None:
            return None
        try:
            return check_signed_request(self.secret, body, headers, max_age_seconds=self.max_age_seconds)
        except SignatureRejected as rejected:
            raise WebhookRefused(401, rejected.reason, rejected.detail) from None

    def _claim_nonce(self, nonce: str) -> None:
        try:
            fresh = self.redis.set(keys.webhook_nonce(nonce), 1, nx=True, ex=self.nonce_ttl_seconds)
        except redis.RedisError as error:
            log.error("cannot record a webhook nonce: %s", error)
            raise WebhookRefused(503, "redis_unavailable") from None
        if not fresh:
            raise WebhookRefused(401, "replayed_nonce", "this nonce was seen before")

    def _release_nonce(self, nonce: str) -> None:
        with suppress(redis.RedisError):
            self.redis.delete(keys.webhook_nonce(nonce))

    def _count_or_unavailable(self, counter: str) -> None:
        try:
            self.redis.hincrby(keys.COUNTERS, counter, 1)
        except redis.RedisError as error:
            log.error("cannot count a callback: %s", error)
            raise WebhookRefused(503, "redis_unavailable") from None


def create_gateway(settings: Settings | None = None, *, redis_client: redis.Redis | None = None) -> FastAPI:
    """The gateway for these settings (the environment's by default); a given Redis client is not closed.

    The client must decode responses (`decode_responses=True`): the producer's job store reads text.
    """
    settings = settings or get_settings()
    # First, so that an unreadable registry (TemplateRegistryError) is refused before any connection is made.
    templates = TemplateRegistry.from_file(settings.templates_path) if settings.templates_path else None
    owns_redis = redis_client is None
    client = redis_client or redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=25, decode_responses=True
    )
    if not client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the gateway's Redis client must be created with decode_responses=True")
    celery_app = create_app(settings)
    webhook = SinchWebhook(settings, client, celery_app)
    producer = Producer(client, settings=settings, templates=templates)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if webhook.secret is None:
            log.warning("SINCH_WEBHOOK_SECRET is not set: Sinch callbacks are accepted unsigned (local use only)")
        yield
        celery_app.close()
        if owns_redis:
            producer.close()  # its Celery app, and the client they share
            client.close()

    gateway = FastAPI(title="kakao-dispatch gateway", lifespan=lifespan)
    gateway.state.settings = settings
    gateway.state.redis = client
    gateway.state.celery = celery_app
    gateway.state.producer = producer
    gateway.include_router(create_api_router(producer, settings.api_keys))

    @gateway.post("/webhooks/sinch", summary="Sinch Conversation API callbacks")
    async def sinch_webhook(request: Request) -> JSONResponse:
        received_at_ms = int(time.time() * 1000)
        try:
            body = await read_body(
                request, settings.webhook_max_body_bytes, partial(WebhookRefused, 413, "body_too_large")
            )
            answer = await run_in_threadpool(webhook.receive, body, request.headers, received_at_ms)
        except WebhookRefused as refused:
            if refused.status_code != 503:
                log.warning("refused a Sinch callback: %s %s", refused.reason, refused.detail)
                await run_in_threadpool(webhook.count_rejection, refused.reason)
            return refused.response()
        return JSONResponse(answer)

    @gateway.get("/healthz", summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @gateway.get("/readyz", summary="Redis answers PING")
    def readyz() -> JSONResponse:
        try:
            client.ping()
        except redis.RedisError as error:
            return JSONResponse({"status": "unavailable", "reason": f"redis: {error}"}, status_code=503)
        return JSONResponse({"status": "ok"})

    scraper = metrics.Scraper(
        client,
        queues=(DISPATCH_QUEUE, CALLBACKS_QUEUE),
        broker_url=None if settings.broker_url == settings.redis_url else settings.broker_url,
    )

    @gateway.get("/metrics", summary="Prometheus metrics (no API key)", include_in_schema=False)
    def prometheus_metrics() -> Response:
        try:
            body = scraper.scrape()
        except UNAVAILABLE_ERRORS as error:
            return PlainTextResponse(f"metrics unavailable: redis: {error}\n", status_code=503)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return gateway


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (OSError when taken), handed to uvicorn so the error is ours to word."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def register(app: typer.Typer) -> None:
    """Add the `gateway` command to a typer application."""

    @app.command("gateway")
    def gateway_command(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    ) -> None:
        """Serve the gateway: the HTTP API (/v1, OpenAPI at /docs), the Sinch webhook, /metrics, /healthz, /readyz."""
        from producers.cli import fail, load_settings

        settings = load_settings()
        try:
            gateway = create_gateway(settings)
        except TemplateRegistryError as error:
            fail(str(error))
        try:
            sock = listening_socket(host, port)
        except OSError as error:
            fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
        bound_host, bound_port = sock.getsockname()[:2]
        typer.echo(
            f"kakao-dispatch gateway on http://{bound_host}:{bound_port} "
            "(API /v1, OpenAPI /openapi.json, POST /webhooks/sinch, /metrics, /healthz, /readyz)"
        )
        logs.configure_logging("json")  # after the one-line failures above: from here on, log lines
        config = uvicorn.Config(
            gateway, lifespan="on", log_config=None, log_level=logging.getLogger().level,
            timeout_graceful_shutdown=5,
        )  # fmt: skip
        uvicorn.Server(config).run(sockets=[sock])
