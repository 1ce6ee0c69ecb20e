"""The KakaoTalk channel rules, written from the channel document: kinds, limits, media, templates, window.

Every function returns the `reason` of a FAILED receipt, or None when the rule passes. This module is
the simulator's own reading of reference/kakaotalk-channel.txt; it shares no code with the worker.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from simulator.media import MEBIBYTE, MediaProbe
from simulator.templates import TemplateRegistry

KAKAOTALK = "KAKAOTALK"
KAKAOTALKCHAT = "KAKAOTALKCHAT"
SEOUL = ZoneInfo("Asia/Seoul")

TEXT_MAX = 1000
CHOICE_TITLE_MAX = 14
CARD_TEXT_MAX = 1000
CARD_TEXT_MAX_WITH_MEDIA = 400
CARD_TEXT_MAX_WITH_WIDE_IMAGE = 76
RENDERED_TEXT_MAX = 1000  # carousel and location, which Sinch sends as text
MEDIA_MIN_WIDTH = 500
WIDE_IMAGE = (800, 600)
KAKAOTALK_MEDIA_MAX_BYTES = 500 * 1024
KAKAOTALK_WIDE_IMAGE_MAX_BYTES = 2 * MEBIBYTE
KAKAOTALKCHAT_MEDIA_MAX_BYTES = 5 * MEBIBYTE
KAKAOTALK_IMAGE_FORMATS = frozenset({"PNG", "JPEG"})
KAKAOTALKCHAT_IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF"})

AUTHENTICATION_KEYWORDS_LATIN = ("auth", "password", "verif")
AUTHENTICATION_KEYWORDS_OTHER = ("にんしょう", "認証", "비밀번호", "인증")
# Verbatim from the channel document's FAILED example.
AUTHENTICATION_KEYWORD_MISSING = (
    "Authentication message not included in Template, when sending an authentication message."
    "The content must contain auth guide ment."
)

# MSISDNs +82 10-9999-0000 … +82 10-9999-0999: KakaoTalk users that can never be reached.
UNREACHABLE_PREFIX = "821099990"
UNREACHABLE_LENGTH = 12

UNSPECIFIED_SUB_CODE = "UNSPECIFIED_SUB_CODE"


@dataclass(frozen=True)
class Reason:
    code: str
    description: str
    sub_code: str = UNSPECIFIED_SUB_CODE

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description, "sub_code": self.sub_code}


class Kind(StrEnum):
    ALIMTALK = "alimtalk"
    FRIENDTALK = "friendtalk"
    CONSULTATION = "consultation"


def bad_request(description: str) -> Reason:
    return Reason("BAD_REQUEST", description)


# Recipients --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def msisdn_digits(identity: str) -> str | None:
    """`+821012345678` or `821012345678` → `821012345678`; None unless a valid phone number.
    Cached: the phone-number library is the costliest step of a send, and recipients repeat."""
    digits = identity[1:] if identity.startswith("+") else identity
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        return None
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    return digits if phonenumbers.is_valid_number(number) else None


def invalid_msisdn_reason(identity: str) -> Reason | None:
    if msisdn_digits(identity) is None:
        return Reason(
            "RECIPIENT_INVALID_CHANNEL_IDENTITY",
            f"KAKAOTALK identity {identity!r} is not a valid MSISDN in international format, e.g. +821012345678",
        )
    return None


def unreachable_reason(identity: str) -> Reason | None:
    """The documented test range: +82 10-9999-0000 … +82 10-9999-0999 are never reachable."""
    digits = identity.removeprefix("+")
    if digits.startswith(UNREACHABLE_PREFIX) and len(digits) == UNREACHABLE_LENGTH and digits.isdigit():
        return Reason(
            "RECIPIENT_NOT_REACHABLE",
            f"No KakaoTalk user can be reached at +{digits} (simulator test range +82 10-9999-0000…0999)",
        )
    return None


# Templates (AlimTalk) ----------------------------------------------------------------------------


def has_authentication_keyword(text: str) -> bool:
    lowered = text.lower()
    return any(keyword in lowered for keyword in AUTHENTICATION_KEYWORDS_LATIN) or any(
        keyword in text for keyword in AUTHENTICATION_KEYWORDS_OTHER
    )


def _same_language(requested: str, registered: str) -> bool:
    def primary(tag: str) -> str:
        return tag.replace("_", "-").split("-")[0].lower()

    return primary(requested) == primary(registered)


def alimtalk_reason(
    reference: Mapping[str, Any], registry: TemplateRegistry | None, *, authentication: bool
) -> Reason | None:
    """Registered template, its language, every `#{parameter}` supplied, rendered length, auth keyword."""
    if registry is None:
        return None
    template_id: str = reference["template_id"]
    template = registry.get(template_id)
    if template is None:
        return Reason("TEMPLATE_NOT_FOUND", f"Template {template_id!r} is not registered for this channel")
    requested_language = reference.get("language_code")
    if requested_language and template.language and not _same_language(requested_language, template.language):
        return Reason(
            "TEMPLATE_NON_EXISTING_LANGUAGE_OR_VERSION",
            f"Template {template_id!r} is registered in {template.language!r}, not {requested_language!r}",
        )
    parameters: Mapping[str, str] = reference.get("parameters") or {}
    missing = template.missing_parameters(parameters)
    if missing:
        return Reason(
            "TEMPLATE_INSUFFICIENT_PARAMETERS",
            f"Template {template_id!r} needs parameters that were not supplied: {', '.join(missing)}",
        )
    rendered = template.render(parameters)
    if len(rendered) > TEXT_MAX:
        return bad_request(f"Template text after substitution is {len(rendered)} characters; the limit is {TEXT_MAX}")
    if authentication and not has_authentication_keyword(rendered):
        return Reason("TEMPLATE_INSUFFICIENT_PARAMETERS", AUTHENTICATION_KEYWORD_MISSING)
    return None


# FriendTalk sending window -----------------------------------------------------------------------


def in_window(now: datetime, window: tuple[time, time]) -> bool:
    """start ≤ local time < end in Asia/Seoul; a window whose end is before its start wraps midnight."""
    start, end = window
    local = now.astimezone(SEOUL).time()
    return start <= local < end if start < end else (local >= start or local < end)


def window_reason(now: datetime, window: tuple[time, time]) -> Reason | None:
    if in_window(now, window):
        return None
    start, end = window
    local = now.astimezone(SEOUL)
    return Reason(
        "OUTSIDE_ALLOWED_SENDING_WINDOW",
        f"FriendTalk may be sent only between {start:%H:%M} and {end:%H:%M} KST; it is {local:%H:%M} KST",
    )


# Text limits -------------------------------------------------------------------------------------


def choice_title(choice: Mapping[str, Any]) -> str:
    """The label KakaoTalk shows on a button: the text of a text choice, else its title."""
    if "text_message" in choice:
        text: str = choice["text_message"]["text"]
        return text
    for kind, content in choice.items():
        if kind != "postback_data" and isinstance(content, dict):
            return str(content.get("title", ""))
    return ""


def choice_titles_reason(choices: Sequence[Mapping[str, Any]], where: str) -> Reason | None:
    for choice in choices:
        title = choice_title(choice)
        if len(title) > CHOICE_TITLE_MAX:
            return bad_request(
                f"{where} choice title {title!r} is {len(title)} characters; the limit is {CHOICE_TITLE_MAX}"
            )
    return None


def text_reason(text: str, what: str, limit: int = TEXT_MAX) -> Reason | None:
    if len(text) > limit:
        return bad_request(f"{what} is {len(text)} characters; the limit is {limit}")
    return None


def choice_message_reason(content: Mapping[str, Any]) -> Reason | None:
    text = content.get("text_message", {}).get("text", "")
    return text_reason(text, "Choice message text") or choice_titles_reason(content["choices"], "Choice message")


def is_wide_image(probe: MediaProbe | None) -> bool:
    return probe is not None and (probe.width, probe.height) == WIDE_IMAGE


def card_reason(content: Mapping[str, Any], media: MediaProbe | None) -> Reason | None:
    """Title + description ≤ 1000 / 400 with media / 76 with a wide image; titles ≤ 14; one choice if wide."""
    combined = len(content.get("title") or "") + len(content.get("description") or "")
    if media is None:
        limit, condition = CARD_TEXT_MAX, "without media"
    elif is_wide_image(media):
        limit, condition = CARD_TEXT_MAX_WITH_WIDE_IMAGE, "with a wide 800x600 image"
    else:
        limit, condition = CARD_TEXT_MAX_WITH_MEDIA, "with media"
    if combined > limit:
        return bad_request(
            f"Card title and description are {combined} characters together; the limit {condition} is {limit}"
        )
    choices = content.get("choices") or []
    if is_wide_image(media) and len(choices) > 1:
        return bad_request(f"A card with a wide 800x600 image may have only one choice; it has {len(choices)}")
    return choice_titles_reason(choices, "Card")


def render_choice(choice: Mapping[str, Any]) -> str:
    """One choice as a text line: `- title: target`."""
    title = choice_title(choice)
    for kind, content in choice.items():
        if kind == "postback_data" or not isinstance(content, dict):
            continue
        target = content.get("url") or content.get("phone_number") or content.get("calendar_url")
        target = target or content.get("fallback_url")
        coordinates = content.get("coordinates")
        if target is None and isinstance(coordinates, dict):
            target = map_url(coordinates)
        return f"- {title}: {target}" if target else f"- {title}"
    return f"- {title}"


def render_carousel_text(content: Mapping[str, Any]) -> str:
    """Cards in order, separated by a blank line: title, description, media URL, one line per choice;
    then the carousel's own choices. Empty parts are left out."""
    blocks = []
    for card in content["cards"]:
        lines = [card.get("title") or "", card.get("description") or ""]
        lines.append((card.get("media_message") or {}).get("url") or "")
        lines.extend(render_choice(choice) for choice in card.get("choices") or [])
        blocks.append("\n".join(line for line in lines if line))
    if content.get("choices"):
        blocks.append("\n".join(render_choice(choice) for choice in content["choices"]))
    return "\n\n".join(block for block in blocks if block)


def map_url(coordinates: Mapping[str, Any]) -> str:
    return f"https://maps.google.com/?q={coordinates['latitude']},{coordinates['longitude']}"


def render_location_text(content: Mapping[str, Any]) -> str:
    """Title, label (when given) and a map URL of the coordinates, one per line."""
    lines = [content["title"], content.get("label") or "", map_url(content["coordinates"])]
    return "\n".join(line for line in lines if line)


# Media -------------------------------------------------------------------------------------------


def _size_text(size: int) -> str:
    return f"{size / MEBIBYTE:.1f} MB" if size >= MEBIBYTE else f"{size / 1024:.0f} KB"


def media_reason(probe: MediaProbe, channel: str, *, in_card: bool) -> Reason | None:
    """KAKAOTALK media and every card image: png/jpg, width ≥ 500, 3:4 ≤ w:h ≤ 2:1, ≤ 500 KB (2 MB at 800x600).
    KAKAOTALKCHAT media messages: gif/png/jpg ≤ 5 MB. Dimension violations are MEDIA_TYPE_UNSUPPORTED
    with sub_code ATTACHMENT_REJECTED: the channel rejects the attachment although its type is fine."""
    if not probe.reachable:
        return Reason("MEDIA_NOT_REACHABLE", f"Media {probe.url} could not be fetched: {probe.error}")
    kakaotalk_rules = in_card or channel == KAKAOTALK
    allowed = KAKAOTALK_IMAGE_FORMATS if kakaotalk_rules else KAKAOTALKCHAT_IMAGE_FORMATS
    if probe.image_format is None:
        if probe.over_limit:
            return Reason(
                "MEDIA_TOO_LARGE", f"Media {probe.url} is larger than {_size_text(KAKAOTALKCHAT_MEDIA_MAX_BYTES)}"
            )
        return Reason(
            "MEDIA_TYPE_UNSUPPORTED", f"Media {probe.url} is not a recognisable image", "MEDIA_TYPE_UNDETERMINED"
        )
    if probe.image_format not in allowed:
        names = "/".join(sorted(name.lower() for name in allowed))
        return Reason(
            "MEDIA_TYPE_UNSUPPORTED",
            f"Media type {probe.image_format.lower()} is not supported on {channel}; use {names}",
        )
    wide = is_wide_image(probe)
    if kakaotalk_rules:
        limit = KAKAOTALK_WIDE_IMAGE_MAX_BYTES if wide else KAKAOTALK_MEDIA_MAX_BYTES
    else:
        limit = KAKAOTALKCHAT_MEDIA_MAX_BYTES
    size = probe.size or 0
    if probe.over_limit or size > limit:
        shown = f"more than {_size_text(size)}" if probe.over_limit else _size_text(size)
        qualifier = " for an 800x600 image" if kakaotalk_rules and wide else ""
        return Reason("MEDIA_TOO_LARGE", f"Media is {shown}; the limit{qualifier} is {_size_text(limit)}")
    if kakaotalk_rules:
        return dimensions_reason(probe.width or 0, probe.height or 0)
    return None


def dimensions_reason(width: int, height: int) -> Reason | None:
    if width < MEDIA_MIN_WIDTH:
        return Reason(
            "MEDIA_TYPE_UNSUPPORTED",
            f"Image is {width} px wide; KakaoTalk needs at least {MEDIA_MIN_WIDTH} px",
            "ATTACHMENT_REJECTED",
        )
    if not (3 * height <= 4 * width and width <= 2 * height):
        return Reason(
            "MEDIA_TYPE_UNSUPPORTED",
            f"Image is {width}x{height}; KakaoTalk needs a width:height ratio between 3:4 and 2:1",
            "ATTACHMENT_REJECTED",
        )
    return None
