"""The ASGI application: Sinch Conversation API endpoints, the OAuth2 token endpoint and the `/_sim/*` controls."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.apps import App
from simulator.callbacks import CallbackTarget, delivery_report_body, inbound_message_body
from simulator.clock import rfc3339
from simulator.config import SimulatorConfig
from simulator.contacts import KAKAOTALKCHAT, Contact
from simulator.errors import SinchApiError, error_bytes, invalid_argument
from simulator.faults import Faults, SendFault
from simulator.ids import new_id
from simulator.kakaotalk import Decision
from simulator.routing import resolve_route
from simulator.send_request import ChannelIdentity, SendRequest, parse_send_request
from simulator.state import Simulation
from simulator.webhooks import MESSAGE_DELIVERY, MESSAGE_INBOUND, parse_webhook

INJECTED_5XX_STATUSES = (500, 502, 503, 504)
Handler = Callable[[Request], Awaitable[Response]]


def json_response(document: Any, status: int = 200) -> Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def error_response(error: SinchApiError) -> Response:
    return Response(
        error_bytes(error.http_status, error.message),
        status_code=error.http_status,
        media_type="application/json",
        headers=error.headers,
    )


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise invalid_argument("Invalid JSON payload: the body is empty")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise invalid_argument(f"Invalid JSON payload: {error}") from error


def request_for_record(raw: bytes) -> Any:
    """The body as JSON when it parses, else as text: `/_sim/messages` shows what was received."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


def message_record(received_at: str, document: Any, *, http_status: int) -> dict[str, Any]:
    """One item of `/_sim/messages`, every key present; a refused request keeps the None/empty values."""
    return {
        "message_id": None,
        "http_status": http_status,
        "received_at": received_at,
        "request": document,
        "outcome": None,
        "reason": None,
        "kind": None,
        "channel": None,
        "contact_id": None,
        "receipts": [],
        "error": None,
    }


def update_mask(request: Request) -> list[str]:
    """`update_mask` repeated, comma-separated, or as `update_mask.paths` (gRPC-gateway form)."""
    values = request.query_params.getlist("update_mask") + request.query_params.getlist("update_mask.paths")
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


class ChoiceResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str
    postback_data: str


class InboundRequest(BaseModel):
    """`POST /_sim/inbound`: what a KakaoTalk user writes — exactly one of text, media_url, choice_response."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    media_url: str | None = None
    choice_response: ChoiceResponse | None = None
    contact_id: str | None = None
    app_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one_content(self) -> InboundRequest:
        given = [self.text is not None, self.media_url is not None, self.choice_response is not None]
        if sum(given) != 1:
            raise ValueError("expected exactly one of text, media_url, choice_response")
        return self

    def contact_message(self) -> dict[str, Any]:
        if self.text is not None:
            return {"text_message": {"text": self.text}}
        if self.media_url is not None:
            return {"media_message": {"url": self.media_url, "thumbnail_url": ""}}
        assert self.choice_response is not None
        return {"choice_response_message": self.choice_response.model_dump()}


class ClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: datetime | None = None
    offset_seconds: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockRequest:
        if (self.now is None) == (self.offset_seconds is None):
            raise ValueError("expected exactly one of now, offset_seconds")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now needs a UTC offset, e.g. 2026-11-24T22:30:00+09:00")
        return self


def validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


class SimulatorApi:
    """Request handlers over one Simulation."""

    def __init__(self, simulation: Simulation) -> None:
        self.sim = simulation

    # Authentication ---------------------------------------------------------------------------

    async def issue_token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        grant_type = form.get("grant_type", [None])[0]
        token = self.sim.auth.issue(request.headers.get("authorization"), grant_type)
        return json_response(token.to_json())

    def _authorize(self, request: Request, project_id: str) -> None:
        self.sim.auth.check(request.headers.get("authorization"))
        self.sim.check_project(project_id)

    # messages:send ----------------------------------------------------------------------------

    async def send_message(self, request: Request) -> Response:
        sim, stats, faults = self.sim, self.sim.stats, self.sim.faults
        stats.requests += 1
        received_at = rfc3339(sim.clock.now())
        raw = await request.body()
        document = request_for_record(raw)
        latency_s = faults.draw_latency_s(sim.rng)
        if latency_s:
            stats.faults["latency"] += 1
        try:
            send, app, route, contact = self._accept(request, raw, document)
            fault = faults.draw_send_fault(sim.rng)
            self._raise_injected(fault)
        except SinchApiError as error:
            self._record_refusal(document, received_at, error)
            await asyncio.sleep(latency_s)
            return error_response(error)

        message_id, accepted = new_id(), sim.clock.now()
        if contact is None:
            contact = sim.contacts.find_or_create(send.identities)
        decision = await sim.channel.decide(send, route, accepted)
        self._record_acceptance(document, received_at, message_id, contact, decision)
        self._schedule_receipts(app, send, message_id, accepted, contact, decision, faults)
        if fault is SendFault.TIMEOUT:
            stats.faults["timeout"] += 1
            await asyncio.sleep(faults.timeout_delay_s)
        else:
            await asyncio.sleep(latency_s)
        return json_response({"message_id": message_id, "accepted_time": rfc3339(accepted)})

    def _accept(
        self, request: Request, raw: bytes, document: Any
    ) -> tuple[SendRequest, App, list[ChannelIdentity], Contact | None]:
        """Stage 1, in Sinch's order: auth, project, JSON, app, rate limit, body validation, routing."""
        self._authorize(request, request.path_params["project_id"])
        if isinstance(document, str):
            parse_json(raw)  # raises the 400 that names the JSON error
        app_id = document.get("app_id") if isinstance(document, dict) else None
        app = self.sim.app(app_id) if isinstance(app_id, str) and app_id else None
        if app is not None and not self.sim.rate_limiter.try_acquire(app.id):
            limit = f"{app.rate_limit:g} messages per second"
            raise self._too_many_requests(f"Rate limit of {limit} exceeded for app {app.id}")
        send = parse_send_request(document, app.configured_channels if app else ())
        assert app is not None, "parse_send_request refuses a missing app_id"
        route, contact = resolve_route(send, app.configured_channels, self.sim.contacts)
        return send, app, route, contact

    def _too_many_requests(self, message: str) -> SinchApiError:
        retry_after = self.sim.faults.retry_after_s
        return SinchApiError(429, message, {"Retry-After": str(retry_after)} if retry_after is not None else None)

    def _raise_injected(self, fault: SendFault) -> None:
        if fault is SendFault.HTTP_5XX:
            self.sim.stats.faults["http_5xx"] += 1
            status = self.sim.rng.choice(INJECTED_5XX_STATUSES)
            raise SinchApiError(status, f"Simulated server error {status} (fault http_5xx)")
        if fault is SendFault.HTTP_429:
            self.sim.stats.faults["http_429"] += 1
            raise self._too_many_requests("Simulated rate limiting (fault http_429)")

    def _record_refusal(self, document: Any, received_at: str, error: SinchApiError) -> None:
        self.sim.stats.http_status[error.http_status] += 1
        self.sim.messages.append(
            message_record(received_at, document, http_status=error.http_status)
            | {"error": {"status": error.status, "message": error.message}}
        )

    def _record_acceptance(
        self, document: Any, received_at: str, message_id: str, contact: Contact, decision: Decision
    ) -> None:
        stats, final = self.sim.stats, decision.final
        stats.http_status[200] += 1
        stats.accepted += 1
        stats.outcomes[final.status] += 1
        if final.reason is not None:
            stats.reasons[final.reason.code] += 1
        self.sim.messages.append(
            message_record(received_at, document, http_status=200)
            | {
                "message_id": message_id,
                "outcome": final.status,
                "reason": final.reason.to_json() if final.reason else None,
                "kind": decision.kind.value if decision.kind else None,
                "channel": final.channel_identity.channel,
                "contact_id": contact.id,
                "receipts": [step.to_json() for step in decision.steps],
            }
        )

    def _schedule_receipts(
        self,
        app: App,
        send: SendRequest,
        message_id: str,
        accepted: datetime,
        contact: Contact,
        decision: Decision,
        faults: Faults,
    ) -> None:
        sim = self.sim
        if send.callback_url is not None:
            targets = [CallbackTarget(send.callback_url, app.overridden_callback_secret)]
        else:
            targets = [
                CallbackTarget(hook.target, hook.secret) for hook in sim.webhooks.receiving(app.id, MESSAGE_DELIVERY)
            ]
        if not targets:
            return
        conversation_id = contact.conversation_id(app.id)
        delay_s = 0.0
        for step in decision.steps:
            delay_s += faults.draw_receipt_delay_s(sim.rng)
            body = delivery_report_body(
                app_id=app.id,
                project_id=sim.config.project_id,
                accepted_time=rfc3339(accepted),
                event_time=rfc3339(accepted + timedelta(seconds=delay_s)),
                message_id=message_id,
                conversation_id=conversation_id,
                status=step.status,
                channel_identity=step.channel_identity,
                contact_id=contact.id,
                reason=step.reason,
                metadata=send.message_metadata,
                message_metadata=send.conversation_metadata_text,
                correlation_id=send.correlation_id or "",
            )
            sim.callbacks.schedule_receipt(targets, body, delay_s, sim.stats.receipts, faults, sim.rng)

    # Apps -------------------------------------------------------------------------------------

    async def get_app(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        return json_response(self.sim.app(request.path_params["app_id"]).to_json())

    async def patch_app(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        app = self.sim.app(request.path_params["app_id"])
        app.patch(parse_json(await request.body()), update_mask(request))
        return json_response(app.to_json())

    # Webhooks ---------------------------------------------------------------------------------

    async def create_webhook(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        webhook = parse_webhook(parse_json(await request.body()))
        self.sim.app(webhook.app_id)
        return json_response(self.sim.webhooks.add(webhook).to_json())

    async def list_webhooks(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        app = self.sim.app(request.path_params["app_id"])
        return json_response({"webhooks": [webhook.to_json() for webhook in self.sim.webhooks.of_app(app.id)]})

    async def get_webhook(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        return json_response(self.sim.webhooks.get(request.path_params["webhook_id"]).to_json())

    async def delete_webhook(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        self.sim.webhooks.delete(request.path_params["webhook_id"])
        return json_response({})

    # Contacts ---------------------------------------------------------------------------------

    async def get_contact(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        return json_response(self.sim.contacts.require(request.path_params["contact_id"]).to_json())

    async def merge_contacts(self, request: Request) -> Response:
        self._authorize(request, request.path_params["project_id"])
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise invalid_argument("request body: expected a JSON object")
        unknown = set(body) - {"source_id", "strategy"}
        if unknown:
            raise invalid_argument(f"Invalid JSON payload: unknown field {sorted(unknown)[0]!r}")
        source_id = body.get("source_id")
        if not isinstance(source_id, str) or not source_id:
            raise invalid_argument("source_id is required")
        if body.get("strategy", "MERGE") != "MERGE":
            raise invalid_argument("strategy: expected MERGE")
        merged = self.sim.contacts.merge(request.path_params["contact_id"], source_id)
        return json_response(merged.to_json())

    # Control endpoints ------------------------------------------------------------------------

    async def list_messages(self, request: Request) -> Response:
        return json_response(list(self.sim.messages))

    async def inbound(self, request: Request) -> Response:
        sim = self.sim
        try:
            inbound = InboundRequest.model_validate(parse_json(await request.body()))
        except ValidationError as error:
            raise invalid_argument(validation_message(error)) from error
        app = sim.app(inbound.app_id or sim.config.app_id)
        if inbound.contact_id is not None:
            contact = sim.contacts.require(inbound.contact_id)
            identity = contact.identity_on(KAKAOTALKCHAT)
            if identity is None:
                raise invalid_argument(f"Contact {contact.id} has no KAKAOTALKCHAT identity to write from")
        else:
            contact = sim.contacts.create_chat_user()
            identity = contact.identity_on(KAKAOTALKCHAT)
            assert identity is not None
        sim.contacts.record_user_message(contact, identity)
        sim.stats.inbound["received"] += 1
        message_id = new_id()
        conversation_id = contact.conversation_id(app.id)
        body = inbound_message_body(
            app_id=app.id,
            project_id=sim.config.project_id,
            accepted_time=rfc3339(sim.clock.now()),
            message_id=message_id,
            contact_message=inbound.contact_message(),
            channel_identity=identity,
            conversation_id=conversation_id,
            contact_id=contact.id,
        )
        targets = [CallbackTarget(hook.target, hook.secret) for hook in sim.webhooks.receiving(app.id, MESSAGE_INBOUND)]
        sim.callbacks.schedule(targets, body, 0.0, sim.stats.inbound, "callbacks_")
        return json_response(
            {
                "contact_id": contact.id,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "identity": identity.identity,
            }
        )

    async def get_faults(self, request: Request) -> Response:
        return json_response(self.sim.faults.model_dump(mode="json"))

    async def put_faults(self, request: Request) -> Response:
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise invalid_argument("request body: expected a JSON object")
        try:
            self.sim.faults = self.sim.start_faults.with_changes(body)
        except ValidationError as error:
            raise invalid_argument(validation_message(error)) from error
        return json_response(self.sim.faults.model_dump(mode="json"))

    async def get_stats(self, request: Request) -> Response:
        return json_response(self.sim.stats.to_json())

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return json_response({"reset": True})

    def _clock_json(self) -> dict[str, Any]:
        return {"now": rfc3339(self.sim.clock.now()), "offset_seconds": self.sim.clock.offset_seconds}

    async def get_clock(self, request: Request) -> Response:
        return json_response(self._clock_json())

    async def put_clock(self, request: Request) -> Response:
        try:
            clock = ClockRequest.model_validate(parse_json(await request.body()))
        except ValidationError as error:
            raise invalid_argument(validation_message(error)) from error
        if clock.now is not None:
            self.sim.clock.set_now(clock.now)
        else:
            assert clock.offset_seconds is not None
            self.sim.clock.set_offset(clock.offset_seconds)
        return json_response(self._clock_json())

    async def delete_clock(self, request: Request) -> Response:
        self.sim.clock.reset()
        return json_response(self._clock_json())


async def _sinch_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, SinchApiError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {404: f"No such endpoint: {request.url.path}", 405: f"Method {request.method} not allowed here"}
    return error_response(SinchApiError(error.status_code, messages.get(error.status_code, str(error.detail))))


async def _internal_error(request: Request, error: Exception) -> Response:
    return error_response(SinchApiError(500, f"Internal simulator error: {type(error).__name__}"))


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """The simulator as an ASGI app; its state is `app.state.simulation`."""
    simulation = Simulation(config or SimulatorConfig())
    api = SimulatorApi(simulation)
    project = "/v1/projects/{project_id}"

    def route(path: str, handler: Handler, *methods: str) -> Route:
        return Route(path, handler, methods=list(methods))

    routes = [
        route("/oauth2/token", api.issue_token, "POST"),
        route(f"{project}/messages:send", api.send_message, "POST"),
        route(f"{project}/apps/{{app_id}}/webhooks", api.list_webhooks, "GET"),
        route(f"{project}/apps/{{app_id}}", api.get_app, "GET"),
        route(f"{project}/apps/{{app_id}}", api.patch_app, "PATCH"),
        route(f"{project}/webhooks", api.create_webhook, "POST"),
        route(f"{project}/webhooks/{{webhook_id}}", api.get_webhook, "GET"),
        route(f"{project}/webhooks/{{webhook_id}}", api.delete_webhook, "DELETE"),
        route(f"{project}/contacts/{{contact_id}}:merge", api.merge_contacts, "POST"),
        route(f"{project}/contacts/{{contact_id}}", api.get_contact, "GET"),
        route("/_sim/messages", api.list_messages, "GET"),
        route("/_sim/inbound", api.inbound, "POST"),
        route("/_sim/faults", api.get_faults, "GET"),
        route("/_sim/faults", api.put_faults, "PUT"),
        route("/_sim/stats", api.get_stats, "GET"),
        route("/_sim/reset", api.reset, "POST"),
        route("/_sim/clock", api.get_clock, "GET"),
        route("/_sim/clock", api.put_clock, "PUT"),
        route("/_sim/clock", api.delete_clock, "DELETE"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulation.start()
        try:
            yield
        finally:
            await simulation.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={SinchApiError: _sinch_error, HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.simulation = simulation
    return app
