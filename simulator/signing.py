"""Sinch's callback signature: base64(HMAC-SHA256(secret, raw_body + "." + nonce + "." + timestamp))."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

ALGORITHM = "HmacSHA256"
SIGNATURE_HEADER = "x-sinch-webhook-signature"
NONCE_HEADER = "x-sinch-webhook-signature-nonce"
TIMESTAMP_HEADER = "x-sinch-webhook-signature-timestamp"
ALGORITHM_HEADER = "x-sinch-webhook-signature-algorithm"


def sign(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    """The value of `x-sinch-webhook-signature` for this raw body, nonce and unix-seconds timestamp."""
    signed = body + b"." + nonce.encode() + b"." + timestamp.encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_headers(secret: str, body: bytes) -> dict[str, str]:
    """The four signature headers, with a fresh nonce and the current real time (not the simulated clock)."""
    nonce = secrets.token_hex(13)
    timestamp = str(int(time.time()))
    return {
        SIGNATURE_HEADER: sign(secret, body, nonce, timestamp),
        NONCE_HEADER: nonce,
        TIMESTAMP_HEADER: timestamp,
        ALGORITHM_HEADER: ALGORITHM,
    }


def verify(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """What a receiver does: recompute over the raw bytes and compare in constant time."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        expected = sign(secret, body, lowered[NONCE_HEADER], lowered[TIMESTAMP_HEADER])
        return hmac.compare_digest(expected, lowered[SIGNATURE_HEADER])
    except KeyError:
        return False
