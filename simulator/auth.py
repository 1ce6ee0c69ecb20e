"""OAuth2 client-credentials tokens and the check of every API request (Bearer token or Basic key)."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.errors import SinchApiError
from simulator.ids import new_token


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int

    def to_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": "",
        }


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """`Basic base64(id:secret)` → (id, secret); anything else → None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key_id, separator, secret = decoded.partition(":")
    return (key_id, secret) if separator else None


class TokenAuthority:
    """Issues opaque bearer tokens for one access key and checks the Authorization header of API calls.

    Expiry is measured in real (monotonic) time. Expired tokens are remembered for a while so the
    answer can say `expired` in `WWW-Authenticate`, which is what Sinch's SDKs key their refresh on.
    """

    def __init__(
        self, key_id: str, key_secret: str, ttl_s: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._key_id = key_id
        self._key_secret = key_secret
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._expiry_by_token: dict[str, float] = {}
        basic = base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()
        self._basic_header = f"Basic {basic}"

    def _key_matches(self, key_id: str, secret: str) -> bool:
        id_ok = hmac.compare_digest(key_id.encode(), self._key_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self._key_secret.encode())
        return id_ok and secret_ok

    def issue(self, authorization: str | None, grant_type: str | None) -> IssuedToken:
        credentials = basic_credentials(authorization)
        if credentials is None or not self._key_matches(*credentials):
            raise SinchApiError(
                401,
                "Invalid client credentials: use HTTP Basic with the access key id and secret",
                {"WWW-Authenticate": 'Basic realm="sinch"'},
            )
        if grant_type != "client_credentials":
            raise SinchApiError(400, f"Unsupported grant_type {grant_type!r}: expected client_credentials")
        now = self._monotonic()
        self._forget_old_tokens(now)
        token = new_token()
        self._expiry_by_token[token] = now + self._ttl_s
        return IssuedToken(token, max(1, math.ceil(self._ttl_s)))

    def check(self, authorization: str | None) -> None:
        """Raise 401 unless the header carries a live token of ours or our key as Basic credentials."""
        if authorization is None:
            raise SinchApiError(401, "Missing Authorization header", {"WWW-Authenticate": 'Bearer realm="sinch"'})
        if authorization == self._basic_header:
            return
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            expiry = self._expiry_by_token.get(value.strip())
            if expiry is None:
                raise SinchApiError(401, "Invalid access token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if self._monotonic() >= expiry:
                raise SinchApiError(
                    401,
                    "Access token expired",
                    {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="token expired"'},
                )
            return
        credentials = basic_credentials(authorization)
        if credentials is not None and self._key_matches(*credentials):
            return
        raise SinchApiError(401, "Invalid credentials", {"WWW-Authenticate": 'Bearer realm="sinch"'})

    def _forget_old_tokens(self, now: float) -> None:
        """Tokens expired for longer than one lifetime (at least an hour) are dropped to bound memory."""
        horizon = now - max(self._ttl_s, 3600.0)
        stale = [token for token, expiry in self._expiry_by_token.items() if expiry < horizon]
        for token in stale:
            del self._expiry_by_token[token]
