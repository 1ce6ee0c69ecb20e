"""The Sinch Conversation API client: one pooled httpx client per process, OAuth2, one hierarchy of send outcomes.

Every failure of a call is one of three outcomes (DESIGN §3.4), told apart by exception class:

| condition                                                                  | exception          |
|----------------------------------------------------------------------------|--------------------|
| 400, 403, 404, every other 4xx but 408/429; 401 (after one token refresh)  | `PermanentError`   |
| 501, 505, every other 5xx but 500/502/503/504; 1xx/3xx (no redirects)      | `PermanentError`   |
| invalid request on our side (unsupported URL scheme, illegal header)       | `PermanentError`   |
| connect error or timeout, pool timeout, proxy error                        | `RetryableError`   |
| write error or timeout (the request was never complete)                    | `RetryableError`   |
| 408, 500, 502, 503, 504                                                    | `RetryableError`   |
| 429                                                                        | `RateLimitedError` |
| read timeout, read error, remote protocol error (connection dropped)       | `AmbiguousError`   |
| 2xx whose body is not the expected JSON (`{message_id}` for a send)        | `AmbiguousError`   |

`RetryableError` means the request certainly did not take effect, so resending cannot duplicate a
message; `AmbiguousError` means it may have, so it is never resent automatically (the job becomes
`unknown` and a receipt resolves it). 500 and 503 are retryable as Sinch's own notes advise
(reference §4.2); DESIGN §3.4 adds 502/504 (gateway failures). Every other 5xx (501 Not
Implemented, 505, 507, 511, ...) names a condition a retry does not change, so it is permanent:
the job fails with Sinch's error instead of spending its retries.

The token endpoint is classified the same way, except that any failure to obtain a token is
retryable (nothing reached the Conversation API) unless the credentials or the request are wrong:
401 and other 4xx but 408/429 there are permanent. A 429 from the token endpoint is a plain
`RetryableError`, not `RateLimitedError`: the cluster's send rate is not what is exhausted.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

from worker import metrics
from worker.settings import Settings

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "AmbiguousError",
    "PermanentError",
    "RateLimitedError",
    "RetryableError",
    "SendResult",
    "SinchClient",
    "SinchError",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=5.0, pool=2.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30.0)

RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
# Refresh a token this long before it expires: 60 s, or 10 % of a short lifetime.
TOKEN_REFRESH_MARGIN = 60.0
TOKEN_REFRESH_FRACTION = 0.1
# Used when the token response has no usable `expires_in`: short, so a wrong guess costs little.
FALLBACK_TOKEN_LIFETIME = 300.0
_MAX_TEXT = 500


# --- exceptions --------------------------------------------------------------------------------


class SinchError(Exception):
    """Base class of every failure of a Sinch call.

    `status_code` is the HTTP status (None when no response came); `code`, `status`, `message`
    and `details` come from Sinch's error body `{"error": {"code", "message", "status",
    "details"}}` when the response had one (else None / empty).
    """

    def __init__(
        self,
        text: str,
        *,
        status_code: int | None = None,
        code: int | None = None,
        status: str | None = None,
        message: str | None = None,
        details: Sequence[Any] = (),
    ) -> None:
        super().__init__(text)
        self.status_code = status_code
        self.code = code
        self.status = status
        self.message = message
        self.details: list[Any] = list(details)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (Celery serialises exceptions).
        return (self.__class__, (str(self),), self.__dict__)


class PermanentError(SinchError):
    """The request will never succeed as it is (400, 403, 404, other 4xx, 401 after a refresh, 501).

    The job becomes `failed` with this error; resending the same request is pointless.
    """


class RetryableError(SinchError):
    """The request certainly did not take effect and may be sent again later.

    Raised for connect errors and timeouts, pool timeouts, write errors and timeouts (the request
    was never complete), 408, 500, 502, 503 and 504. `retry_after` is the server's `Retry-After`
    in seconds (never negative), or None when it sent none.
    """

    def __init__(self, text: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(text, **fields)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """Sinch answered 429: retry later and slow the whole cluster, not just this worker."""


class AmbiguousError(SinchError):
    """The request may have reached Sinch but no usable answer came back.

    Raised for read timeouts, read errors, a connection dropped after the request was sent, and a
    2xx whose body cannot be parsed. Never resent automatically: the job becomes `unknown` and is
    resolved by a delivery receipt or a timeout policy.
    """


@dataclass(frozen=True)
class SendResult:
    """Sinch accepted a `messages:send`: its message id and, when given, its acceptance time (RFC 3339)."""

    message_id: str
    accepted_time: str | None


# --- response and header parsing ---------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value, in either RFC 9110 form; None when absent or invalid.

    `now` (Unix seconds) is the reference for the HTTP-date form; the caller passes the response's
    `Date` so that clock skew between Sinch and this host does not matter. A date in the past
    gives 0, never a negative delay.
    """
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    reference = time.time() if now is None else now
    return max(0.0, when - reference)


def _http_date(value: str) -> float | None:
    """Unix seconds of an RFC 9110 HTTP-date; None when it is not one (they are GMT: a date without a zone is not)."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _response_date(response: httpx.Response) -> float | None:
    raw = response.headers.get("date")
    return _http_date(raw) if raw is not None else None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


@dataclass(frozen=True)
class _ErrorBody:
    code: int | None = None
    status: str | None = None
    message: str | None = None
    details: tuple[Any, ...] = ()


def _parse_error_body(response: httpx.Response) -> _ErrorBody:
    """Sinch's `{"error": {...}}`, or OAuth2's `{"error": "...", "error_description": "..."}`; tolerant."""
    document = _json_or_none(response)
    if not isinstance(document, dict):
        return _ErrorBody()
    error = document.get("error")
    if isinstance(error, str):  # RFC 6749 §5.2, from the token endpoint
        description = document.get("error_description")
        return _ErrorBody(status=error, message=description if isinstance(description, str) else None)
    if not isinstance(error, dict):
        return _ErrorBody()
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status, message, details = error.get("status"), error.get("message"), error.get("details")
    return _ErrorBody(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        status=status if isinstance(status, str) else None,
        message=message if isinstance(message, str) else None,
        details=tuple(details) if isinstance(details, list) else (),
    )


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # on the client's clock


class SinchClient:
    """A Sinch Conversation API client: one pooled `httpx.Client`, shared by all threads of a process.

    With `auth="oauth"` (production) an OAuth2 access token is fetched with the key id and secret,
    cached, refreshed shortly before it expires, and refreshed once more when Sinch answers 401
    with `WWW-Authenticate: ... expired`; only one thread fetches at a time, and a thread whose
    request failed with an older token reuses the one another thread already fetched. With
    `auth="basic"` (Sinch: test use only, heavily rate limited) every call carries the key id and
    secret as HTTP Basic credentials.
    """

    def __init__(
        self,
        *,
        api_url: str,
        auth_url: str,
        project_id: str,
        key_id: str,
        key_secret: str,
        auth: Literal["oauth", "basic"] = "oauth",
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "kakao-dispatch/0.1",
    ) -> None:
        for name, value in (("project_id", project_id), ("key_id", key_id), ("key_secret", key_secret)):
            if not value:
                raise ValueError(f"SinchClient needs a non-empty {name} (SINCH_{name.upper()})")
        if auth not in ("oauth", "basic"):
            raise ValueError(f"auth must be 'oauth' or 'basic', not {auth!r}")
        self.api_url = api_url.rstrip("/")
        self.auth_url = auth_url
        self.project_id = project_id
        self.key_id = key_id
        self.auth: Literal["oauth", "basic"] = auth
        self._key_secret = key_secret
        self._credentials = httpx.BasicAuth(key_id, key_secret)
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._http = httpx.Client(
            timeout=timeout or DEFAULT_TIMEOUT,
            limits=DEFAULT_LIMITS,
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SinchClient:
        """A client for the configured project and region (SINCH_* variables); keyword overrides win."""
        arguments: dict[str, Any] = {
            "api_url": settings.sinch_api_url,
            "auth_url": settings.sinch_auth_url,
            "project_id": settings.sinch_project_id,
            "key_id": settings.sinch_key_id,
            "key_secret": settings.sinch_key_secret.get_secret_value(),
        }
        arguments.update(overrides)
        return cls(**arguments)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_url={self.api_url!r}, project_id={self.project_id!r}, "
            f"key_id={self.key_id!r}, auth={self.auth!r})"
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Conversation API calls ----------------------------------------------------------------

    def send_message(self, body: Mapping[str, Any]) -> SendResult:
        """POST `messages:send`; the accepted message's id, or one of the exceptions of this module."""
        with metrics.sinch_send() as observed:  # latency and status code, for /metrics
            response = self._call("POST", "/messages:send", "messages:send", json_body=body)
            observed.status_code = response.status_code
        document = _json_or_none(response)
        message_id = document.get("message_id") if isinstance(document, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise AmbiguousError(
                f"messages:send answered HTTP {response.status_code} without a message_id",
                status_code=response.status_code,
            )
        accepted_time = document.get("accepted_time")
        return SendResult(
            message_id=message_id, accepted_time=accepted_time if isinstance(accepted_time, str) else None
        )

    def get_app(self, app_id: str) -> dict[str, Any]:
        """GET the app (channel credentials, rate limits, queue stats)."""
        return self._call_json("GET", f"/apps/{_segment(app_id)}", "get app")

    def update_app(self, app_id: str, body: Mapping[str, Any], update_mask: Sequence[str]) -> dict[str, Any]:
        """PATCH the app; only the fields named in `update_mask` are replaced (lists are replaced whole).

        The mask travels as one comma-joined `update_mask` query parameter, as the Node SDK sends it
        (reference §1.2; the FieldMask JSON form, which gRPC-transcoding gateways accept).
        """
        if isinstance(update_mask, str):
            raise TypeError("update_mask is a sequence of field paths, not a string")
        params = {"update_mask": ",".join(update_mask)} if update_mask else None
        return self._call_json("PATCH", f"/apps/{_segment(app_id)}", "update app", json_body=body, params=params)

    def create_webhook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a webhook `{app_id, target, triggers, secret?, ...}`; the created webhook (with its id)."""
        return self._call_json("POST", "/webhooks", "create webhook", json_body=body)

    def list_webhooks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's webhooks (the `webhooks` list of the response; empty when it has none)."""
        document = self._call_json("GET", f"/apps/{_segment(app_id)}/webhooks", "list webhooks")
        webhooks = document.get("webhooks", [])
        if not isinstance(webhooks, list) or not all(isinstance(item, dict) for item in webhooks):
            raise AmbiguousError("list webhooks answered a `webhooks` that is not a list of objects")
        return webhooks

    def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        """DELETE a webhook; Sinch answers an empty object."""
        return self._call_json("DELETE", f"/webhooks/{_segment(webhook_id)}", "delete webhook")

    def merge_contacts(self, destination_id: str, source_id: str) -> dict[str, Any]:
        """Merge contact `source_id` into `destination_id` (the source is deleted); the merged contact."""
        return self._call_json(
            "POST",
            f"/contacts/{_segment(destination_id)}:merge",
            "merge contacts",
            json_body={"source_id": source_id, "strategy": "MERGE"},
        )

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """GET a contact (its channel identities tell which MSISDN a KAKAOTALKCHAT contact belongs to)."""
        return self._call_json("GET", f"/contacts/{_segment(contact_id)}", "get contact")

    # --- request plumbing ----------------------------------------------------------------------

    def _call_json(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self._call(method, path, what, json_body=json_body, params=params)
        if not response.content.strip():
            return {}
        document = _json_or_none(response)
        if not isinstance(document, dict):
            raise AmbiguousError(
                f"{what} answered HTTP {response.status_code} with a body that is not a JSON object",
                status_code=response.status_code,
            )
        return document

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One Conversation API call, with at most one token refresh; returns a 2xx response or raises."""
        url = f"{self.api_url}/v1/projects/{_segment(self.project_id)}{path}"

        def send(auth: httpx.Auth) -> httpx.Response:
            content = None if json_body is None else dict(json_body)  # json.dumps wants a dict, not any Mapping
            request = self._http.build_request(method, url, json=content, params=params)
            try:
                return self._http.send(request, auth=auth)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, what) from exc

        if self.auth == "basic":
            response = send(self._credentials)
        else:
            token = self._current_token()
            response = send(_Bearer(token))
            if response.status_code == 401 and _says_expired(response):
                logger.info("Sinch rejected an expired access token; refreshing it once")
                token = self._refresh_token(failed=token)
                response = send(_Bearer(token))
            if response.status_code == 401:
                self._forget_token(token)
        if response.is_success:
            return response
        raise self._error_for_status(response, what)

    def _error_for_status(self, response: httpx.Response, what: str, *, token_endpoint: bool = False) -> SinchError:
        status_code = response.status_code
        body = _parse_error_body(response)
        text = f"{what} failed: HTTP {status_code}"
        if body.status:
            text += f" {body.status}"
        if body.message:
            text += f": {body.message[:_MAX_TEXT]}"
        if token_endpoint and status_code == 401:
            text += " (the key id or key secret is wrong or revoked)"
        secrets = (self._key_secret, response.request.headers.get("authorization", "").partition(" ")[2])
        fields: dict[str, Any] = {
            "status_code": status_code,
            "code": body.code,
            "status": body.status,
            "message": _redact(body.message, secrets) if body.message is not None else None,
            "details": body.details,
        }
        text = _redact(text, secrets)
        if status_code in RETRYABLE_STATUS_CODES or (token_endpoint and status_code >= 500):
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=_response_date(response))
            # A 429 from the token endpoint says nothing about the cluster's send rate.
            error_class = RateLimitedError if status_code == 429 and not token_endpoint else RetryableError
            return error_class(text, retry_after=retry_after, **fields)
        return PermanentError(text, **fields)

    # --- OAuth2 access token -------------------------------------------------------------------

    def _current_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        with self._token_lock:
            token = self._token  # another thread may have refreshed while this one waited
            if token is None or self._clock() >= token.refresh_at:
                token = self._token = self._fetch_token()
            return token.value

    def _refresh_token(self, *, failed: str) -> str:
        """A token other than `failed`: fetched now, unless another thread already replaced it."""
        with self._token_lock:
            token = self._token
            if token is None or token.value == failed:
                token = self._token = self._fetch_token()
            return token.value

    def _forget_token(self, failed: str) -> None:
        # A rejected token is never reused; the next call fetches a new one.
        with self._token_lock:
            if self._token is not None and self._token.value == failed:
                self._token = None

    def _fetch_token(self) -> _Token:
        what = "Sinch token request"
        started = self._clock()
        try:
            response = self._http.post(self.auth_url, data={"grant_type": "client_credentials"}, auth=self._credentials)
        except httpx.HTTPError as exc:
            error = _transport_error(exc, what)
            if isinstance(error, AmbiguousError):  # nothing was sent to the Conversation API
                raise RetryableError(str(error)) from exc
            raise error from exc
        if not response.is_success:
            raise self._error_for_status(response, what, token_endpoint=True)
        document = _json_or_none(response)
        value = document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(value, str) or not value:
            raise RetryableError(
                f"{what} answered HTTP {response.status_code} without an access_token",
                status_code=response.status_code,
            )
        lifetime = _lifetime(document.get("expires_in"))
        margin = min(TOKEN_REFRESH_MARGIN, lifetime * TOKEN_REFRESH_FRACTION)
        logger.debug("fetched a Sinch access token valid for %.0f s", lifetime)
        return _Token(value=value, refresh_at=started + lifetime - margin)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _says_expired(response: httpx.Response) -> bool:
    return "expired" in response.headers.get("www-authenticate", "").lower()


def _lifetime(expires_in: Any) -> float:
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            return FALLBACK_TOKEN_LIFETIME
    number = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if number and math.isfinite(expires_in) and expires_in > 0:
        return float(expires_in)
    return FALLBACK_TOKEN_LIFETIME


def _redact(text: str, secrets: Sequence[str]) -> str:
    """Blank out credentials a server might echo back into an error message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _segment(value: str) -> str:
    """One URL path segment: an id can never add a segment or a query."""
    return quote(value, safe="")


def _transport_error(exc: httpx.HTTPError, what: str) -> SinchError:
    """Classify an httpx failure by whether the request can have reached Sinch (reference celery-redis §5)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        # Not the message: h11 quotes the offending header, which may be the Authorization header.
        return PermanentError(f"{what} cannot be sent: {name}")
    reason = f"{name}: {exc}" if str(exc) else name
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout | httpx.ProxyError):
        return RetryableError(f"{what} did not reach Sinch ({reason})")
    if isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
        return RetryableError(f"{what} was not sent completely ({reason})")
    # ReadTimeout, ReadError, RemoteProtocolError, CloseError, DecodingError and anything unforeseen:
    # the request may have been processed, so it must not be resent blindly.
    return AmbiguousError(f"{what} was sent, but no answer came ({reason})")
