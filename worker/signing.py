"""HMAC-SHA256 signatures in Sinch's webhook scheme: sign and verify over the raw body.

The signed string is `raw body + "." + nonce + "." + timestamp` (UTF-8, timestamp in unix seconds),
the key is the secret as UTF-8, the signature is standard base64 with padding (reference §5.4). Sinch
leaves the receiver three duties: compare the signature, bound the timestamp, refuse replayed nonces.
`check_signed_request` does the first two; the nonce store is the caller's (it needs Redis), and is
consulted only after the signature holds, so a forged request cannot burn a nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

ALGORITHM = "HmacSHA256"
#: Nonces are Sinch's ULIDs (26 characters); anything much longer is not a nonce and would make a long Redis key.
MAX_NONCE_LENGTH = 128


@dataclass(frozen=True)
class SignatureHeaders:
    """The names of the four signature headers (lower case): Sinch's, or ours with another prefix."""

    signature: str
    nonce: str
    timestamp: str
    algorithm: str

    @classmethod
    def with_prefix(cls, prefix: str) -> SignatureHeaders:
        """`<prefix>`, `<prefix>-nonce`, `<prefix>-timestamp`, `<prefix>-algorithm`."""
        prefix = prefix.lower()
        return cls(prefix, f"{prefix}-nonce", f"{prefix}-timestamp", f"{prefix}-algorithm")


#: The headers Sinch signs its callbacks with.
SINCH_HEADERS = SignatureHeaders.with_prefix("x-sinch-webhook-signature")


class SignatureRejected(Exception):
    """A signed request failed a check; `reason` is a short machine name (counted and answered as is)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sign(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, body + b"." + nonce + b"." + timestamp)), all strings as UTF-8."""
    signed = body + b"." + nonce.encode() + b"." + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, nonce: str, timestamp: str, signature: str) -> bool:
    """Whether `signature` signs these raw bytes; compared in constant time."""
    expected = sign(secret, body, nonce, timestamp).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def signed_headers(
    secret: str,
    body: bytes,
    *,
    names: SignatureHeaders = SINCH_HEADERS,
    nonce: str | None = None,
    now: float | None = None,
) -> dict[str, str]:
    """The four headers for an outgoing body: a fresh random nonce and the current unix second unless given."""
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    timestamp = str(int(time.time() if now is None else now))
    return {
        names.signature: sign(secret, body, nonce, timestamp),
        names.nonce: nonce,
        names.timestamp: timestamp,
        names.algorithm: ALGORITHM,
    }


def check_signed_request(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_age_seconds: float,
    now: float | None = None,
    names: SignatureHeaders = SINCH_HEADERS,
) -> str:
    """Check headers, algorithm, timestamp window (both directions) and signature; return the nonce.

    Raises SignatureRejected with reason `missing_headers`, `unsupported_algorithm`, `malformed_nonce`,
    `malformed_timestamp`, `stale_timestamp`, `future_timestamp` or `bad_signature`. The nonce is not
    recorded here: the caller refuses it when seen before (reason `replayed_nonce`).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    wanted = (names.signature, names.nonce, names.timestamp, names.algorithm)
    missing = [name for name in wanted if not lowered.get(name, "").strip()]
    if missing:
        raise SignatureRejected("missing_headers", "missing " + ", ".join(missing))
    algorithm = lowered[names.algorithm].strip()
    if algorithm.lower() != ALGORITHM.lower():
        raise SignatureRejected("unsupported_algorithm", f"algorithm {algorithm[:40]!r} is not {ALGORITHM}")
    nonce, timestamp = lowered[names.nonce].strip(), lowered[names.timestamp].strip()
    if len(nonce) > MAX_NONCE_LENGTH or not nonce.isprintable():
        raise SignatureRejected("malformed_nonce", f"the nonce is not a printable string of ≤ {MAX_NONCE_LENGTH}")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureRejected("malformed_timestamp", "the timestamp is not unix seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if age > max_age_seconds:
        raise SignatureRejected("stale_timestamp", f"signed {age:.0f} s ago, more than {max_age_seconds:g} s")
    if -age > max_age_seconds:
        raise SignatureRejected("future_timestamp", f"signed {-age:.0f} s ahead, more than {max_age_seconds:g} s")
    if not verify(secret, body, nonce, timestamp, lowered[names.signature]):
        raise SignatureRejected("bad_signature", "the signature does not match the body")
    return nonce
