"""Stage-1 validation of a `messages:send` body, as Sinch answers it synchronously with 400 INVALID_ARGUMENT."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.errors import invalid_argument

CHANNELS = frozenset(
    {
        "WHATSAPP", "RCS", "SMS", "MESSENGER", "VIBER", "VIBERBM", "MMS", "INSTAGRAM", "TELEGRAM",
        "KAKAOTALK", "KAKAOTALKCHAT", "LINE", "LINE_ENTERPRISE", "WECHAT", "APPLEBC",
    }
)  # fmt: skip
MESSAGE_KINDS = (
    "text_message",
    "media_message",
    "choice_message",
    "card_message",
    "carousel_message",
    "location_message",
    "list_message",
    "contact_info_message",
    "template_message",
)
MESSAGE_OVERRIDES = frozenset(
    {"explicit_channel_message", "explicit_channel_omni_message", "channel_specific_message", "agent"}
)
CHOICE_KINDS = (
    "text_message",
    "url_message",
    "call_message",
    "location_message",
    "calendar_message",
    "share_location_message",
)
SEND_FIELDS = frozenset(
    {
        "app_id", "recipient", "message", "channel_priority_order", "channel_properties", "message_metadata",
        "conversation_metadata", "conversation_metadata_update_strategy", "callback_url", "correlation_id",
        "queue", "ttl", "processing_strategy", "message_content_type",
    }
)  # fmt: skip
ENUM_FIELDS: Mapping[str, frozenset[str]] = {
    "queue": frozenset({"NORMAL_PRIORITY", "HIGH_PRIORITY"}),
    "processing_strategy": frozenset({"DEFAULT", "DISPATCH_ONLY"}),
    "message_content_type": frozenset({"CONTENT_UNKNOWN", "CONTENT_MARKETING", "CONTENT_NOTIFICATION"}),
    "conversation_metadata_update_strategy": frozenset({"REPLACE", "MERGE_PATCH"}),
}
MESSAGE_METADATA_MAX = 1024
CORRELATION_ID_MAX = 128
CHANNEL_PROPERTY_VALUE_MAX = 1024
CONVERSATION_METADATA_MAX = 2048


@dataclass(frozen=True)
class ChannelIdentity:
    channel: str
    identity: str

    def to_json(self) -> dict[str, str]:
        return {"channel": self.channel, "identity": self.identity, "app_id": ""}


@dataclass(frozen=True)
class SendRequest:
    """The parts of a valid `messages:send` body that decide routing and outcome."""

    app_id: str
    contact_id: str | None
    identities: tuple[ChannelIdentity, ...]
    channel_priority_order: tuple[str, ...]
    message: Mapping[str, Any]
    message_kind: str
    channel_properties: Mapping[str, str]
    message_metadata: str
    correlation_id: str | None
    callback_url: str | None
    conversation_metadata_text: str  # the JSON text of conversation_metadata, "" when none

    @property
    def content(self) -> Mapping[str, Any]:
        """The body of the one message kind, e.g. `{"text": ...}` for a text message."""
        content: Mapping[str, Any] = self.message[self.message_kind]
        return content


def parse_send_request(body: object, configured_channels: Collection[str]) -> SendRequest:
    """The request, or SinchApiError(400) naming the first problem (field path and what was expected)."""
    document = _object(body, "request body")
    _known_fields(document, SEND_FIELDS, "")
    app_id = document.get("app_id")
    if not isinstance(app_id, str) or not app_id:
        raise invalid_argument("app_id is required")
    if "recipient" not in document:
        raise invalid_argument("recipient is required")
    if "message" not in document:
        raise invalid_argument("message is required")
    contact_id, identities = _recipient(document["recipient"])
    message, kind = _message(document["message"])
    _check_optional_fields(document)
    return SendRequest(
        app_id=app_id,
        contact_id=contact_id,
        identities=identities,
        channel_priority_order=_channel_priority_order(document, configured_channels, app_id),
        message=message,
        message_kind=kind,
        channel_properties=_channel_properties(document.get("channel_properties")),
        message_metadata=_bounded_string(document, "message_metadata", MESSAGE_METADATA_MAX) or "",
        correlation_id=_bounded_string(document, "correlation_id", CORRELATION_ID_MAX),
        callback_url=_callback_url(document.get("callback_url")),
        conversation_metadata_text=(
            json.dumps(document["conversation_metadata"], ensure_ascii=False, separators=(",", ":"))
            if "conversation_metadata" in document
            else ""
        ),
    )


def _check_optional_fields(document: Mapping[str, Any]) -> None:
    for field, allowed in ENUM_FIELDS.items():
        if field in document and document[field] not in allowed:
            raise invalid_argument(f"{field}: expected one of {', '.join(sorted(allowed))}")
    if "ttl" in document:
        ttl = document["ttl"]
        if not (isinstance(ttl, str) and ttl.endswith("s") and ttl[:-1].isdigit() and int(ttl[:-1]) >= 3):
            raise invalid_argument('ttl: expected a duration in seconds such as "3600s" (at least 3s)')
    if "conversation_metadata" in document:
        metadata = document["conversation_metadata"]
        if not isinstance(metadata, dict):
            raise invalid_argument("conversation_metadata: expected a JSON object")
        if len(json.dumps(metadata, ensure_ascii=False)) > CONVERSATION_METADATA_MAX:
            raise invalid_argument(f"conversation_metadata: longer than {CONVERSATION_METADATA_MAX} characters")


def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_argument(f"{path}: expected a JSON object")
    return value


def _known_fields(document: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
    for field in document:
        if field not in allowed:
            where = f"{path}.{field}" if path else field
            raise invalid_argument(f"Invalid JSON payload: unknown field {where!r}")


def _string(document: Mapping[str, Any], field: str, path: str, *, required: bool) -> str | None:
    value = document.get(field)
    if value is None:
        if required:
            raise invalid_argument(f"{path}.{field} is required")
        return None
    if not isinstance(value, str):
        raise invalid_argument(f"{path}.{field}: expected a string")
    if required and not value:
        raise invalid_argument(f"{path}.{field} must not be empty")
    return value


def _bounded_string(document: Mapping[str, Any], field: str, limit: int) -> str | None:
    value = _string(document, field, "request", required=False)
    if value is not None and len(value) > limit:
        raise invalid_argument(f"{field}: longer than {limit} characters")
    return value


def _recipient(value: object) -> tuple[str | None, tuple[ChannelIdentity, ...]]:
    recipient = _object(value, "recipient")
    _known_fields(recipient, ("contact_id", "identified_by"), "recipient")
    if len(recipient) != 1:
        raise invalid_argument("recipient: expected exactly one of contact_id, identified_by")
    if "contact_id" in recipient:
        return _string(recipient, "contact_id", "recipient", required=True), ()
    identified_by = _object(recipient["identified_by"], "recipient.identified_by")
    _known_fields(identified_by, ("channel_identities",), "recipient.identified_by")
    raw_identities = identified_by.get("channel_identities")
    if not isinstance(raw_identities, list) or not raw_identities:
        raise invalid_argument("recipient.identified_by.channel_identities: expected a non-empty list")
    identities = []
    for index, raw in enumerate(raw_identities):
        path = f"recipient.identified_by.channel_identities[{index}]"
        item = _object(raw, path)
        _known_fields(item, ("channel", "identity", "app_id"), path)
        channel = _string(item, "channel", path, required=True)
        identity = _string(item, "identity", path, required=True)
        _string(item, "app_id", path, required=False)
        if channel not in CHANNELS:
            raise invalid_argument(f"{path}.channel: unknown channel {channel!r}")
        assert identity is not None
        identities.append(ChannelIdentity(channel, identity))
    return None, tuple(identities)


def _message(value: object) -> tuple[dict[str, Any], str]:
    message = _object(value, "message")
    _known_fields(message, (*MESSAGE_KINDS, *MESSAGE_OVERRIDES), "message")
    kinds = [kind for kind in MESSAGE_KINDS if kind in message]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        raise invalid_argument(
            f"message: expected exactly one message kind of {', '.join(MESSAGE_KINDS)}; found {found}"
        )
    kind = kinds[0]
    _MESSAGE_SHAPES[kind](_object(message[kind], f"message.{kind}"), f"message.{kind}")
    return message, kind


def _text_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("text",), path)
    _string(content, "text", path, required=True)


def _media_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("url", "thumbnail_url", "filename_override"), path)
    _string(content, "url", path, required=True)
    _string(content, "thumbnail_url", path, required=False)
    _string(content, "filename_override", path, required=False)


def _choices(value: object, path: str) -> None:
    if not isinstance(value, list) or not value:
        raise invalid_argument(f"{path}: expected a non-empty list of choices")
    for index, raw in enumerate(value):
        choice_path = f"{path}[{index}]"
        choice = _object(raw, choice_path)
        _known_fields(choice, (*CHOICE_KINDS, "postback_data"), choice_path)
        kinds = [kind for kind in CHOICE_KINDS if kind in choice]
        if len(kinds) != 1:
            raise invalid_argument(f"{choice_path}: expected exactly one of {', '.join(CHOICE_KINDS)}")
        _string(choice, "postback_data", choice_path, required=False)
        content = _object(choice[kinds[0]], f"{choice_path}.{kinds[0]}")
        title_field = "text" if kinds[0] == "text_message" else "title"
        if kinds[0] != "location_message":
            _string(content, title_field, f"{choice_path}.{kinds[0]}", required=True)


def _choice_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("choices", "text_message", "message_properties"), path)
    _choices(content.get("choices"), f"{path}.choices")
    if "text_message" in content:
        _text_message(_object(content["text_message"], f"{path}.text_message"), f"{path}.text_message")


def _card_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("title", "description", "media_message", "height", "choices", "message_properties"), path)
    _string(content, "title", path, required=False)
    _string(content, "description", path, required=False)
    if "media_message" in content:
        _media_message(_object(content["media_message"], f"{path}.media_message"), f"{path}.media_message")
    if "choices" in content:
        _choices(content["choices"], f"{path}.choices")


def _carousel_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("cards", "choices"), path)
    cards = content.get("cards")
    if not isinstance(cards, list) or not cards:
        raise invalid_argument(f"{path}.cards: expected a non-empty list of cards")
    for index, card in enumerate(cards):
        _card_message(_object(card, f"{path}.cards[{index}]"), f"{path}.cards[{index}]")
    if "choices" in content:
        _choices(content["choices"], f"{path}.choices")


def _location_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("coordinates", "title", "label"), path)
    coordinates = _object(content.get("coordinates"), f"{path}.coordinates")
    for axis in ("latitude", "longitude"):
        value = coordinates.get(axis)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_argument(f"{path}.coordinates.{axis}: expected a number")
    _string(content, "title", path, required=True)
    _string(content, "label", path, required=False)


def _any_object(content: Mapping[str, Any], path: str) -> None:
    """List and contact-info messages: shape left to the channel (KakaoTalk refuses them at stage 2)."""


def _template_reference(value: object, path: str, *, omni: bool) -> None:
    reference = _object(value, path)
    _known_fields(reference, ("template_id", "version", "language_code", "parameters"), path)
    _string(reference, "template_id", path, required=True)
    _string(reference, "version", path, required=omni)
    _string(reference, "language_code", path, required=False)
    parameters = reference.get("parameters", {})
    if not isinstance(parameters, dict) or not all(isinstance(value, str) for value in parameters.values()):
        raise invalid_argument(f"{path}.parameters: expected an object of string values")


def _template_message(content: Mapping[str, Any], path: str) -> None:
    _known_fields(content, ("channel_template", "omni_template"), path)
    if "channel_template" not in content and "omni_template" not in content:
        raise invalid_argument(f"{path}: expected channel_template or omni_template")
    if "channel_template" in content:
        by_channel = _object(content["channel_template"], f"{path}.channel_template")
        for channel, reference in by_channel.items():
            if channel not in CHANNELS:
                raise invalid_argument(f"{path}.channel_template: unknown channel {channel!r}")
            _template_reference(reference, f"{path}.channel_template.{channel}", omni=False)
    if "omni_template" in content:
        _template_reference(content["omni_template"], f"{path}.omni_template", omni=True)


_MESSAGE_SHAPES = {
    "text_message": _text_message,
    "media_message": _media_message,
    "choice_message": _choice_message,
    "card_message": _card_message,
    "carousel_message": _carousel_message,
    "location_message": _location_message,
    "list_message": _any_object,
    "contact_info_message": _any_object,
    "template_message": _template_message,
}


def _channel_priority_order(
    document: Mapping[str, Any], configured_channels: Collection[str], app_id: str
) -> tuple[str, ...]:
    order = document.get("channel_priority_order")
    if order is None:
        return ()
    if not isinstance(order, list) or not all(isinstance(channel, str) for channel in order):
        raise invalid_argument("channel_priority_order: expected a list of channel names")
    for channel in order:
        if channel not in CHANNELS:
            raise invalid_argument(f"channel_priority_order: unknown channel {channel!r}")
        if channel not in configured_channels:
            raise invalid_argument(f"channel_priority_order: channel {channel} is not configured on app {app_id}")
    return tuple(dict.fromkeys(order))


def _channel_properties(value: object) -> dict[str, str]:
    if value is None:
        return {}
    properties = _object(value, "channel_properties")
    for key, item in properties.items():
        if not isinstance(item, str):
            raise invalid_argument(f"channel_properties.{key}: expected a string")
        if len(item) > CHANNEL_PROPERTY_VALUE_MAX:
            raise invalid_argument(f"channel_properties.{key}: longer than {CHANNEL_PROPERTY_VALUE_MAX} characters")
    return properties


def _callback_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise invalid_argument("callback_url: expected an http:// or https:// URL")
    return value
