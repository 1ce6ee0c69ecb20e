"""The HTTP API for producers (DESIGN §6): enqueue, batch, read and cancel jobs.

`create_api_router` builds the `/v1` routes the gateway serves. Bodies are read as raw bytes and
judged by the KakaoTalk rules engine (`Producer.send`), so every refusal is the same
`{"violations": [{rule, path, limit, actual, message}]}` document the CLI and the Python producer
give, never FastAPI's own validation error. The OpenAPI document still declares the send request
(the `SendRequest` model), every answer, and the bearer scheme, so clients and schemathesis can
rely on it.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import kombu.exceptions
import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from producers.producer import Enqueued, Producer, RequestRejected
from worker.channels import Channel, Kind
from worker.jobs import Job
from worker.recipients import mask_msisdn
from worker.send_request import SendRequest
from worker.sending_window import KST
from worker.verdict import EARLIEST_INSTANT, LATEST_INSTANT
from worker.violations import Violation

log = logging.getLogger(__name__)

MESSAGE_BODY_LIMIT = 1024 * 1024  # 1 MiB: a send request is a few KB; a carousel stays far below this
BATCH_BODY_LIMIT = 8 * 1024 * 1024
BATCH_MAX_MESSAGES = 1000
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: What "the job store or the broker is down" looks like from redis-py and kombu (both are Redis by default).
UNAVAILABLE_ERRORS = (redis.RedisError, kombu.exceptions.OperationalError, OSError)
UNAVAILABLE_DETAIL = "job store unavailable"

_INSTANT = TypeAdapter(AwareDatetime)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "requests"
#: The OpenAPI examples of the send request: (name, file in examples/requests, summary), one per message type.
REQUEST_EXAMPLES = (
    ("alimtalk", "alimtalk-generic.json", "AlimTalk: an approved template to a phone number"),
    ("alimtalk_authentication", "alimtalk-authentication.json", "AlimTalk authentication template (one-time code)"),
    ("friendtalk_text", "friendtalk-text.json", "FriendTalk text"),
    ("friendtalk_media", "friendtalk-media.json", "FriendTalk image (png/jpg, width ≥ 500 px)"),
    ("friendtalk_choice", "friendtalk-choice.json", "FriendTalk text with choices"),
    ("friendtalk_card", "friendtalk-card.json", "FriendTalk card"),
    ("friendtalk_carousel", "friendtalk-carousel.json", "FriendTalk carousel"),
    ("friendtalk_location", "friendtalk-location.json", "FriendTalk location"),
    ("consultation_reply", "consultation-text.json", "ConsultationTalk reply to a KAKAOTALKCHAT contact"),
    ("auto", "auto-template.json", "auto: the worker picks the kind (a template goes as AlimTalk)"),
)
#: The example files name their images `$MEDIA/...` (the demo serves them locally); the API documents a public URL.
EXAMPLE_MEDIA_BASE = "https://cdn.example.com/kakao"

JobStatus = Literal[
    "queued", "sending", "sent", "delivered", "failed", "scheduled", "rejected", "unknown", "cancelled", "expired"
]  # fmt: skip


# -- the answers, as OpenAPI models (the handlers build the same documents as plain dicts) ------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobAccepted(_Answer):
    """The job the request became (or, for a known idempotency key, already was)."""

    id: str = Field(examples=["job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"])
    status: JobStatus
    not_before: datetime | None = Field(description="When a scheduled job may be sent (KST offset); null: at once")


class RuleViolation(_Answer):
    """One broken rule: `schema` for the document's shape, else a named KakaoTalk rule (README, Rules)."""

    rule: str = Field(examples=["text.length"])
    path: str = Field(
        description="Where in the request ('' for the whole body)", examples=["message.text_message.text"]
    )
    limit: int | float | str | None
    actual: int | float | str | None
    message: str


class Violations(_Answer):
    """The request was refused: nothing was saved or sent."""

    violations: list[RuleViolation] = Field(min_length=1)


class BatchItemAccepted(_Answer):
    index: int = Field(ge=0, description="Position of the request in `messages`")
    id: str
    status: JobStatus
    not_before: datetime | None


class BatchItemRejected(_Answer):
    index: int = Field(ge=0, description="Position of the request in `messages`")
    violations: list[RuleViolation] = Field(min_length=1)


class BatchResults(_Answer):
    """One result per request, in order; accepted requests were enqueued even when others were refused."""

    results: list[BatchItemAccepted | BatchItemRejected]
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)


class JobEventRecord(_Answer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    at: datetime
    from_status: JobStatus | None = Field(alias="from")
    to: JobStatus
    reason: str


class JobRecord(_Answer):
    """A job as stored, with every status change. The recipient's phone number is partly masked."""

    id: str
    type: Kind
    channel: Channel
    status: JobStatus
    recipient: str | None = Field(description="The masked MSISDN, or the KAKAOTALKCHAT contact id")
    request: SendRequest = Field(
        description="The send request as accepted; template parameters are emptied once the job is terminal"
    )
    not_before: datetime | None
    expires_at: datetime | None
    idempotency_key: str | None
    metadata: dict[str, Any]
    attempts: int = Field(ge=0)
    message_id: str | None = Field(description="Sinch's message id once sent")
    delivery: dict[str, str] = Field(description="Sinch's delivery status, code, sub_code and description")
    created_at: datetime
    updated_at: datetime
    terminal_at: datetime | None
    parameters_redacted: bool
    events: list[JobEventRecord]


class JobCancelled(_Answer):
    id: str
    status: Literal["cancelled"]


class JobNotCancellable(_Answer):
    """The job is past the point where it can be cancelled (being sent, sent, or finished)."""

    id: str
    status: JobStatus
    detail: str


class ErrorMessage(_Answer):
    detail: str


_UNAUTHORIZED: dict[str, Any] = {
    "model": ErrorMessage,
    "description": "No API key, or not one of KAKAO_DISPATCH_API_KEYS",
    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
}
_UNAVAILABLE: dict[str, Any] = {"model": ErrorMessage, "description": "Redis (job store or broker) does not answer"}
_NOT_FOUND: dict[str, Any] = {"model": ErrorMessage, "description": "No such job (or its record has expired)"}


def _too_large(limit: int) -> dict[str, Any]:
    return {"model": ErrorMessage, "description": f"The body is larger than {limit // (1024 * 1024)} MiB"}


_REFUSED: dict[str, Any] = {
    "model": Violations,
    "description": "The body is not JSON, not a send request, or breaks a KakaoTalk rule; nothing was saved",
}
_JOB_ID_PARAMETER: dict[str, Any] = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "examples": ["job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"]},
}


# -- reading requests -----------------------------------------------------------------------------


class Refusal(Exception):
    """An answer other than success, raised while reading a request; `response()` is its JSON body."""

    def __init__(self, status_code: int, content: dict[str, Any]) -> None:
        super().__init__(f"{status_code} {content}")
        self.status_code = status_code
        self.content = content

    def response(self) -> JSONResponse:
        return JSONResponse(self.content, status_code=self.status_code)


def violations_body(violations: Sequence[Violation]) -> dict[str, Any]:
    return {"violations": [violation.as_dict() for violation in violations]}


def schema_refusal(path: str, message: str, actual: Any = None, limit: Any = None) -> Refusal:
    """A 422 with one `schema` violation (the same rule name the rules engine uses for shapes)."""
    return Refusal(422, violations_body([Violation("schema", path, _scalar(limit), _scalar(actual), message)]))


def _scalar(value: Any) -> int | float | str | None:
    return value if isinstance(value, int | float | str) and not isinstance(value, bool) else None


async def read_body(request: Request, limit: int, too_large: Callable[[str], Exception]) -> bytes:
    """The raw body; `too_large(detail)` is raised as soon as it is known to exceed `limit` (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"the body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"the body exceeds {limit} bytes")
    return bytes(body)


def _payload_too_large(detail: str) -> Refusal:
    return Refusal(413, {"detail": detail})


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: JSON has no infinity, and the answer could not be written back as JSON
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The JSON document of a body (UTF-8, RFC 8259); anything else is a 422 `schema` violation at path ''."""
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_float=_finite_float, parse_constant=_no_constants)
        if "\\u" in text:  # a \ud800 escape decodes to a lone surrogate that neither Redis nor a reply can encode
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError:
        raise schema_refusal("", "the body is not UTF-8 text") from None
    except UnicodeEncodeError:
        raise schema_refusal("", "the body holds a \\u escape of a lone surrogate, which is not a character") from None
    except json.JSONDecodeError as error:
        message = f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        raise schema_refusal("", message) from None
    except ValueError as error:  # NaN, Infinity, 1e400, integers beyond Python's digit limit
        raise schema_refusal("", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise schema_refusal("", "the body is not valid JSON: nested too deeply") from None
    return document


def with_idempotency_header(document: Any, header: str | None) -> Any:
    """The request with the `Idempotency-Key` header as its `idempotency_key`; both given and different is a 422."""
    if header is None or not isinstance(document, dict):
        return document  # a body that is not an object is refused by the rules engine, which names it
    in_body = document.get("idempotency_key")
    if in_body is None:
        return document | {"idempotency_key": header}
    if in_body != header:
        raise schema_refusal(
            "idempotency_key",
            f"idempotency_key differs from the {IDEMPOTENCY_HEADER} header; give one, or the same in both",
            actual=in_body,
            limit=header,
        )
    return document


def instants_out_of_range(document: Any) -> list[Violation]:
    """`schema` violations for a `send_at`/`expires_at` too close to year 1 or 9999 for date arithmetic.

    The rules engine refuses these too (rule `instant_range`, same range); the API answers them as `schema`, before
    the engine, as it did before the engine had that rule.
    """
    if not isinstance(document, dict):
        return []
    violations = []
    for name in ("send_at", "expires_at"):
        try:
            moment = _INSTANT.validate_python(document.get(name))
        except ValidationError:
            continue  # absent or malformed: the rules engine names it
        if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
            limit = f"{EARLIEST_INSTANT:%Y-%m-%d} to {LATEST_INSTANT:%Y-%m-%d} (UTC)"
            violations.append(Violation("schema", name, limit, _scalar(document[name]), f"{name}: out of range"))
    return violations


def batch_messages(document: Any) -> list[Any]:
    """The `messages` of a batch body: an array of 1 to 1,000 send requests (each judged on its own later)."""
    if not isinstance(document, dict):
        raise schema_refusal("", 'the body must be a JSON object {"messages": [send request, ...]}')
    unknown = [
        Violation("schema", str(name), None, None, f"{name}: unknown field") for name in document if name != "messages"
    ]
    if unknown:
        raise Refusal(422, violations_body(unknown))
    messages = document.get("messages")
    if not isinstance(messages, list):
        problem = "field required" if "messages" not in document else "must be an array of send requests"
        raise schema_refusal("messages", f"messages: {problem}")
    if not 1 <= len(messages) <= BATCH_MAX_MESSAGES:
        limit = 1 if not messages else BATCH_MAX_MESSAGES
        wanted = "at least one message" if not messages else f"at most {BATCH_MAX_MESSAGES:,} messages"
        violation = Violation(
            "batch.size", "messages", limit, len(messages), f"a batch holds {wanted}; this one has {len(messages):,}"
        )
        raise Refusal(422, violations_body([violation]))
    return messages


# -- answers -------------------------------------------------------------------------------------


def _iso_kst(moment: datetime | None) -> str | None:
    return moment.astimezone(KST).isoformat() if moment is not None else None


def masked_job(job: Job) -> dict[str, Any]:
    """`Job.as_dict()` with the MSISDN masked wherever it appears, and the (masked) recipient."""
    record = job.as_dict()
    request = dict(record["request"])
    to = request.get("to")
    if isinstance(to, dict) and isinstance(to.get("msisdn"), str):
        request["to"] = to | {"msisdn": mask_msisdn(to["msisdn"])}
    record["request"] = request
    record["recipient"] = mask_msisdn(job.msisdn) if job.msisdn else job.contact_id
    return record


def _unavailable(error: Exception) -> JSONResponse:
    log.error("job store unavailable: %s: %s", type(error).__name__, error)
    return JSONResponse({"detail": UNAVAILABLE_DETAIL}, status_code=503)


def _not_found(job_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"no job {job_id}"}, status_code=404)


# -- authentication ------------------------------------------------------------------------------


def key_matches(presented: str, keys: Sequence[bytes]) -> bool:
    """Compared in constant time with every key (no early exit), so timing tells nothing about which is close."""
    candidate = presented.encode("utf-8")
    matches = [hmac.compare_digest(candidate, key) for key in keys]
    return any(matches)


#: Declares the bearer scheme in OpenAPI and reads the header; `ApiKeyCheck` decides (auto_error off: our 401 body).
BEARER = HTTPBearer(
    auto_error=False,
    bearerFormat="API key",
    description="One of the keys in KAKAO_DISPATCH_API_KEYS: `Authorization: Bearer <key>`",
)


class ApiKeyCheck:
    """The dependency that guards every `/v1` route: 401 with `WWW-Authenticate: Bearer` unless a key matches."""

    def __init__(self, api_keys: Sequence[str]) -> None:
        self.keys = tuple(key.encode("utf-8") for key in api_keys)

    def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if not self.keys:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "missing API key: send Authorization: Bearer <key>", headers=challenge)
        if not key_matches(credentials.credentials, self.keys):
            raise HTTPException(401, "invalid API key", headers=challenge)


# -- OpenAPI request bodies ----------------------------------------------------------------------


def request_examples(directory: Path = EXAMPLES_DIR) -> dict[str, dict[str, Any]]:
    """The OpenAPI examples of a send request, read from examples/requests (those present, when installed without)."""
    examples = {}
    for name, file_name, summary in REQUEST_EXAMPLES:
        path = directory / file_name
        if not path.is_file():
            continue
        value = json.loads(path.read_text(encoding="utf-8").replace("$MEDIA", EXAMPLE_MEDIA_BASE))
        # The files pin instants for `check --at` demos; in the API an example must stay valid on any day.
        for moment in ("send_at", "expires_at"):
            value.pop(moment, None)
        examples[name] = {"summary": summary, "value": value}
    return examples


def _send_request_body(examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/SendRequest"}}
    if examples:
        content["examples"] = examples
    return {
        "requestBody": {
            "required": True,
            "description": "The send request (DESIGN §6). Checked by the KakaoTalk rules before anything is saved.",
            "content": {"application/json": content},
        },
        "parameters": [
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "description": "Instead of the body's `idempotency_key`; both given must be equal",
                "schema": {"type": "string", "minLength": 1, "maxLength": 256},
            }
        ],
    }


def _batch_body(examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "schema": {
            "type": "object",
            "title": "BatchRequest",
            "additionalProperties": False,
            "required": ["messages"],
            "properties": {
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": BATCH_MAX_MESSAGES,
                    "items": {"$ref": "#/components/schemas/SendRequest"},
                }
            },
        }
    }
    sample = [examples[name]["value"] for name in ("alimtalk", "friendtalk_text") if name in examples]
    if sample:
        content["example"] = {"messages": sample}
    return {
        "requestBody": {
            "required": True,
            "description": f"1 to {BATCH_MAX_MESSAGES:,} send requests; each is accepted or refused on its own",
            "content": {"application/json": content},
        }
    }


# -- the endpoints -------------------------------------------------------------------------------


class ProducerEndpoints:
    """The handlers of the `/v1` routes; the producer's blocking Redis calls run in the threadpool."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer

    async def send_message(self, request: Request) -> JSONResponse:
        try:
            document = parse_json(await read_body(request, MESSAGE_BODY_LIMIT, _payload_too_large))
            document = with_idempotency_header(document, request.headers.get(IDEMPOTENCY_HEADER))
            if out_of_range := instants_out_of_range(document):
                raise RequestRejected(out_of_range)
            job = await run_in_threadpool(self.producer.send, document)
        except Refusal as refusal:
            return refusal.response()
        except RequestRejected as rejected:
            return JSONResponse(violations_body(rejected.violations), status_code=422)
        except UNAVAILABLE_ERRORS as error:
            return _unavailable(error)
        answer = {"id": job.id, "status": job.status, "not_before": _iso_kst(job.not_before)}
        return JSONResponse(answer, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    async def send_batch(self, request: Request) -> JSONResponse:
        try:
            messages = batch_messages(parse_json(await read_body(request, BATCH_BODY_LIMIT, _payload_too_large)))
            outcomes = await run_in_threadpool(self.enqueue_batch, messages)
        except Refusal as refusal:
            return refusal.response()
        except UNAVAILABLE_ERRORS as error:
            return _unavailable(error)
        results: list[dict[str, Any]] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, RequestRejected):
                results.append({"index": index} | violations_body(outcome.violations))
            else:
                results.append(
                    {"index": index, "id": outcome.id, "status": outcome.status,
                     "not_before": _iso_kst(outcome.not_before)}
                )  # fmt: skip
        rejected = sum(1 for outcome in outcomes if isinstance(outcome, RequestRejected))
        return JSONResponse({"results": results, "accepted": len(outcomes) - rejected, "rejected": rejected})

    def enqueue_batch(self, messages: list[Any]) -> list[Enqueued | RequestRejected]:
        """`Producer.send_many`, with requests whose instants are out of range refused in their place."""
        refused = {index: found for index, message in enumerate(messages) if (found := instants_out_of_range(message))}
        if not refused:
            return self.producer.send_many(messages)
        sent = iter(
            self.producer.send_many([message for index, message in enumerate(messages) if index not in refused])
        )
        return [
            RequestRejected(refused[index], index) if index in refused else next(sent) for index in range(len(messages))
        ]

    async def get_job(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        try:
            job = await run_in_threadpool(self.producer.get, job_id)
        except UNAVAILABLE_ERRORS as error:
            return _unavailable(error)
        if job is None:
            return _not_found(job_id)
        return JSONResponse(masked_job(job))

    async def cancel_job(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        try:
            transition = await run_in_threadpool(self.producer.cancel, job_id)
        except UNAVAILABLE_ERRORS as error:
            return _unavailable(error)
        if transition.ok:
            return JSONResponse({"id": job_id, "status": "cancelled"})
        if not transition.previous:
            return _not_found(job_id)
        detail = f"job {job_id} is {transition.previous}: only queued or scheduled jobs can be cancelled"
        return JSONResponse({"id": job_id, "status": transition.previous, "detail": detail}, status_code=409)


def create_api_router(producer: Producer, api_keys: Sequence[str]) -> APIRouter:
    """The `/v1` routes, enqueuing through `producer`; with no `api_keys` the API is open (a warning at start-up)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not api_keys:
            log.warning("KAKAO_DISPATCH_API_KEYS is not set: the HTTP API accepts requests without a key")
        yield

    router = APIRouter(prefix="/v1", dependencies=[Depends(ApiKeyCheck(api_keys))], lifespan=lifespan)
    endpoints = ProducerEndpoints(producer)
    examples = request_examples()
    router.add_api_route(
        "/messages",
        endpoints.send_message,
        methods=["POST"],
        summary="Enqueue one message",
        status_code=202,
        response_model=JobAccepted,
        response_description="Enqueued (or the existing job of this idempotency key); see GET /v1/jobs/{id}",
        responses={
            202: {"headers": {"Location": {"description": "/v1/jobs/{id}", "schema": {"type": "string"}}}},
            401: _UNAUTHORIZED,
            413: _too_large(MESSAGE_BODY_LIMIT),
            422: _REFUSED,
            503: _UNAVAILABLE,
        },
        openapi_extra=_send_request_body(examples),
    )
    router.add_api_route(
        "/messages:batch",  # Starlette escapes literal path text: the ":" matches itself (a custom method, AIP-136)
        endpoints.send_batch,
        methods=["POST"],
        summary="Enqueue up to 1,000 messages; each is accepted or refused on its own",
        response_model=BatchResults,
        responses={
            401: _UNAUTHORIZED,
            413: _too_large(BATCH_BODY_LIMIT),
            422: {"model": Violations, "description": "The body is not {messages: [1 to 1,000 items]}"},
            503: _UNAVAILABLE,
        },
        openapi_extra=_batch_body(examples),
    )
    # The job id is read from the path, not validated by FastAPI: any id is a lookup, answered 200 or 404.
    router.add_api_route(
        "/jobs/{job_id}",
        endpoints.get_job,
        methods=["GET"],
        summary="A job with its events",
        response_model=JobRecord,
        responses={401: _UNAUTHORIZED, 404: _NOT_FOUND, 503: _UNAVAILABLE},
        openapi_extra={"parameters": [_JOB_ID_PARAMETER]},
    )
    router.add_api_route(
        "/jobs/{job_id}",
        endpoints.cancel_job,
        methods=["DELETE"],
        summary="Cancel a job that is queued or scheduled",
        response_model=JobCancelled,
        responses={
            401: _UNAUTHORIZED,
            404: _NOT_FOUND,
            409: {"model": JobNotCancellable, "description": "The job is being sent or has been; nothing changed"},
            503: _UNAVAILABLE,
        },
        openapi_extra={"parameters": [_JOB_ID_PARAMETER]},
    )
    return router
