"""Conversation API apps: channel credentials (which channels an app may use) and PATCH with `update_mask`."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import invalid_argument
from simulator.send_request import CHANNELS

# Fields a PATCH may change; the simulator models CONVERSATION-mode apps only (KakaoTalk replies need contacts).
EDITABLE_FIELDS = (
    "display_name",
    "channel_credentials",
    "processing_mode",
    "conversation_metadata_report_view",
    "retention_policy",
    "dispatch_retention_policy",
    "callback_settings",
)
READ_ONLY_FIELDS = ("id", "rate_limits", "queue_stats")
RETENTION_TYPES = frozenset({"MESSAGE_EXPIRE_POLICY", "CONVERSATION_EXPIRE_POLICY", "PERSIST_RETENTION_POLICY"})
# The credentials object each channel carries; KakaoTalk's fields are checked, others only need an object.
CREDENTIAL_FIELDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "KAKAOTALK": ("kakaotalk_credentials", ("kakaotalk_plus_friend_id", "kakaotalk_sender_key")),
    "KAKAOTALKCHAT": ("kakaotalkchat_credentials", ("kakaotalk_plus_friend_id",)),
}
CREDENTIAL_EXTRAS = ("channel", "callback_secret", "credential_ordinal_number", "state", "channel_known_id")


def default_channel_credentials() -> list[dict[str, Any]]:
    """KAKAOTALK and KAKAOTALKCHAT, configured so a sandbox can send at once."""
    return [
        {
            "channel": "KAKAOTALK",
            "kakaotalk_credentials": {
                "kakaotalk_plus_friend_id": "@sim-business-channel",
                "kakaotalk_sender_key": "sim-sender-key",
            },
        },
        {
            "channel": "KAKAOTALKCHAT",
            "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": "@sim-business-channel"},
        },
    ]


@dataclass
class App:
    id: str
    display_name: str
    rate_limit: float
    channel_credentials: list[dict[str, Any]] = field(default_factory=default_channel_credentials)
    conversation_metadata_report_view: str = "NONE"
    retention_policy: dict[str, Any] = field(
        default_factory=lambda: {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 180}
    )
    dispatch_retention_policy: dict[str, Any] = field(
        default_factory=lambda: {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 0}
    )
    callback_settings: dict[str, Any] = field(default_factory=lambda: {"secret_for_overridden_callback_urls": ""})
    processing_mode: str = "CONVERSATION"
    configured_channels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._refresh_channels()

    def _refresh_channels(self) -> None:
        self.configured_channels = frozenset(item["channel"] for item in self.channel_credentials)

    @property
    def overridden_callback_secret(self) -> str:
        return str(self.callback_settings.get("secret_for_overridden_callback_urls") or "")

    def to_json(self) -> dict[str, Any]:
        credentials = []
        for item in self.channel_credentials:
            shown = copy.deepcopy(item)
            shown.setdefault("callback_secret", "")
            shown["state"] = {"status": "ACTIVE", "description": ""}
            shown.setdefault("channel_known_id", "")
            credentials.append(shown)
        return {
            "id": self.id,
            "display_name": self.display_name,
            "channel_credentials": credentials,
            "processing_mode": self.processing_mode,
            "conversation_metadata_report_view": self.conversation_metadata_report_view,
            "retention_policy": copy.deepcopy(self.retention_policy),
            "dispatch_retention_policy": copy.deepcopy(self.dispatch_retention_policy),
            "callback_settings": copy.deepcopy(self.callback_settings),
            "rate_limits": {"inbound": 25, "outbound": int(self.rate_limit), "webhooks": 25},
            "queue_stats": {"outbound_size": 0, "outbound_limit": 500000},
        }

    def patch(self, body: object, update_mask: Iterable[str]) -> None:
        """Replace the masked fields with the body's values (absent = cleared to the default); without a
        mask, replace the editable fields present in the body. Read-only fields in a body are ignored."""
        if not isinstance(body, dict):
            raise invalid_argument("request body: expected a JSON object")
        for name in body:
            if name not in EDITABLE_FIELDS and name not in READ_ONLY_FIELDS:
                raise invalid_argument(f"Invalid JSON payload: unknown field {name!r}")
        mask = list(update_mask)
        for name in mask:
            if name not in EDITABLE_FIELDS:
                raise invalid_argument(f"update_mask: field {name!r} cannot be updated")
        names = mask or [name for name in EDITABLE_FIELDS if name in body]
        changes = {name: _validated(name, body.get(name)) for name in names}
        for name, value in changes.items():
            setattr(self, name, value)
        self._refresh_channels()


def _validated(name: str, value: object) -> Any:
    if name == "display_name":
        if value is None:
            return ""
        if not isinstance(value, str):
            raise invalid_argument("display_name: expected a string")
        return value
    if name == "channel_credentials":
        return _channel_credentials(value)
    if name == "processing_mode":
        if value not in (None, "CONVERSATION"):
            raise invalid_argument("processing_mode: the simulator models CONVERSATION-mode apps only")
        return "CONVERSATION"
    if name == "conversation_metadata_report_view":
        if value not in (None, "NONE", "FULL"):
            raise invalid_argument("conversation_metadata_report_view: expected NONE or FULL")
        return value or "NONE"
    if name == "callback_settings":
        return _callback_settings(value)
    return _retention(name, value)


def _callback_settings(value: object) -> dict[str, str]:
    settings = {} if value is None else value
    if not isinstance(settings, dict) or set(settings) - {"secret_for_overridden_callback_urls"}:
        raise invalid_argument("callback_settings: expected {secret_for_overridden_callback_urls: string}")
    secret = settings.get("secret_for_overridden_callback_urls", "")
    if not isinstance(secret, str):
        raise invalid_argument("callback_settings.secret_for_overridden_callback_urls: expected a string")
    return {"secret_for_overridden_callback_urls": secret}


def _retention(name: str, value: object) -> dict[str, Any]:
    dispatch = name == "dispatch_retention_policy"
    policy = (
        value if value is not None else {"retention_type": "MESSAGE_EXPIRE_POLICY", "ttl_days": 0 if dispatch else 180}
    )
    if not isinstance(policy, dict) or set(policy) - {"retention_type", "ttl_days"}:
        raise invalid_argument(f"{name}: expected {{retention_type, ttl_days}}")
    allowed_types = {"MESSAGE_EXPIRE_POLICY"} if dispatch else RETENTION_TYPES
    low, high = (0, 7) if dispatch else (1, 3650)
    retention_type = policy.get("retention_type", "MESSAGE_EXPIRE_POLICY")
    ttl_days = policy.get("ttl_days", low if dispatch else 180)
    if retention_type not in allowed_types:
        raise invalid_argument(f"{name}.retention_type: expected one of {', '.join(sorted(allowed_types))}")
    if isinstance(ttl_days, bool) or not isinstance(ttl_days, int) or not low <= ttl_days <= high:
        raise invalid_argument(f"{name}.ttl_days: expected an integer from {low} to {high}")
    return {"retention_type": retention_type, "ttl_days": ttl_days}


def _channel_credentials(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid_argument("channel_credentials: expected a non-empty list")
    seen: set[tuple[str, int]] = set()
    result = []
    for index, item in enumerate(value):
        path = f"channel_credentials[{index}]"
        if not isinstance(item, dict):
            raise invalid_argument(f"{path}: expected a JSON object")
        channel = item.get("channel")
        if channel not in CHANNELS:
            raise invalid_argument(f"{path}.channel: unknown channel {channel!r}")
        ordinal = item.get("credential_ordinal_number", 0)
        if (channel, ordinal) in seen:
            raise invalid_argument(f"{path}: channel {channel} is listed twice")
        seen.add((channel, ordinal))
        credentials = {name: part for name, part in item.items() if name not in CREDENTIAL_EXTRAS}
        if len(credentials) != 1 or not isinstance(next(iter(credentials.values())), dict):
            raise invalid_argument(f"{path}: expected exactly one credentials object for {channel}")
        expected = CREDENTIAL_FIELDS.get(channel)
        if expected is not None:
            key, required = expected
            fields = credentials.get(key)
            if not isinstance(fields, dict):
                raise invalid_argument(f"{path}: {channel} needs {key}")
            for name in required:
                if not isinstance(fields.get(name), str) or not fields[name]:
                    raise invalid_argument(f"{path}.{key}.{name} is required")
        kept = {name: copy.deepcopy(part) for name, part in item.items() if name not in ("state", "channel_known_id")}
        result.append(kept)
    return result
