"""Recipient addresses: MSISDN validation and normalisation with the `phonenumbers` library (KR by default)."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_REGION = "KR"
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


class InvalidMsisdn(ValueError):
    """The text is not a valid phone number."""


@dataclass(frozen=True)
class Msisdn:
    e164: str
    is_mobile: bool


def parse_msisdn(raw: str, default_region: str = DEFAULT_REGION) -> Msisdn:
    """Normalise `010-1234-5678`, `+82 10 1234 5678`, `821012345678`... to E.164, or raise InvalidMsisdn."""
    text = raw.strip()
    if text.isdigit() and text.startswith("82") and len(text) >= 11:
        text = "+" + text  # a Korean number written in international form without its plus sign
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as error:
        raise InvalidMsisdn(f"{raw!r} is not a phone number: {error._msg}") from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidMsisdn(f"{raw!r} is not a valid phone number")
    return Msisdn(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        is_mobile=phonenumbers.number_type(number) in _MOBILE_TYPES,
    )


def mask_msisdn(raw: str) -> str:
    """Mask any phone-number-like text for display, valid or not."""
    digits = raw.strip()
    return digits[:3] + "*" * max(len(digits) - 7, 0) + digits[-4:] if len(digits) > 7 else "****"
