"""Identifiers shaped like Sinch's: 26-character ULIDs (48-bit millisecond time + 80 random bits, Crockford base 32)."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: ids made later sort after earlier ones (to the millisecond), like Sinch's message ids."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    characters = []
    for _ in range(26):
        characters.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(characters))


def new_chat_identity() -> str:
    """The KAKAOTALKCHAT channel's unique identifier of a user (opaque, like Kakao's)."""
    return "kakaochat-" + secrets.token_hex(10)


def new_token() -> str:
    return secrets.token_urlsafe(32)
