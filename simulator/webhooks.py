"""Webhooks of an app: creation rules (≤ 5 per app, no duplicate target), triggers, listing and deletion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.errors import invalid_argument, not_found
from simulator.ids import new_id

MAX_WEBHOOKS_PER_APP = 5
TARGET_MAX_LENGTH = 742
MESSAGE_DELIVERY = "MESSAGE_DELIVERY"
MESSAGE_INBOUND = "MESSAGE_INBOUND"
TRIGGERS = frozenset(
    {
        "MESSAGE_DELIVERY", "MESSAGE_SUBMIT", "EVENT_DELIVERY", "MESSAGE_INBOUND", "EVENT_INBOUND",
        "CONVERSATION_START", "CONVERSATION_STOP", "CONVERSATION_DELETE", "CONTACT_CREATE", "CONTACT_DELETE",
        "CONTACT_MERGE", "CONTACT_UPDATE", "CONTACT_IDENTITIES_DUPLICATION", "UNSUPPORTED", "OPT_IN", "OPT_OUT",
        "CAPABILITY", "CHANNEL_EVENT", "SMART_CONVERSATION", "SMART_CONVERSATIONS",
        "MESSAGE_INBOUND_SMART_CONVERSATION_REDACTION", "RECORD_NOTIFICATION",
    }
)  # fmt: skip
TARGET_TYPES = ("HTTP", "DISMISS")
CREATE_FIELDS = ("app_id", "target", "target_type", "triggers", "secret")


@dataclass(frozen=True)
class Webhook:
    id: str
    app_id: str
    target: str
    target_type: str
    triggers: tuple[str, ...]
    secret: str

    def receives(self, trigger: str) -> bool:
        return self.target_type == "HTTP" and trigger in self.triggers

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_id": self.app_id,
            "target": self.target,
            "target_type": self.target_type,
            "secret": self.secret,
            "triggers": list(self.triggers),
        }


def parse_webhook(body: object) -> Webhook:
    """A new webhook from a `POST /webhooks` body, or SinchApiError(400)."""
    if not isinstance(body, dict):
        raise invalid_argument("request body: expected a JSON object")
    for name in body:
        if name not in CREATE_FIELDS:
            raise invalid_argument(f"Invalid JSON payload: unknown field {name!r}")
    app_id, target = body.get("app_id"), body.get("target")
    if not isinstance(app_id, str) or not app_id:
        raise invalid_argument("app_id is required")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise invalid_argument("target: expected an http:// or https:// URL")
    if len(target) > TARGET_MAX_LENGTH:
        raise invalid_argument(f"target: longer than {TARGET_MAX_LENGTH} characters")
    target_type = body.get("target_type", "HTTP")
    if target_type not in TARGET_TYPES:
        raise invalid_argument("target_type: expected HTTP or DISMISS")
    triggers = body.get("triggers", [])
    if not isinstance(triggers, list) or not all(isinstance(trigger, str) for trigger in triggers):
        raise invalid_argument("triggers: expected a list of trigger names")
    for trigger in triggers:
        if trigger not in TRIGGERS:
            raise invalid_argument(f"triggers: unknown or invalid trigger {trigger!r}")
    secret = body.get("secret", "")
    if not isinstance(secret, str):
        raise invalid_argument("secret: expected a string")
    return Webhook(new_id(), app_id, target, target_type, tuple(dict.fromkeys(triggers)), secret)


class WebhookRegistry:
    """Webhooks by id; those given on the command line are `permanent` and come back after a reset."""

    def __init__(self) -> None:
        self._by_id: dict[str, Webhook] = {}
        self._permanent: list[Webhook] = []

    def add(self, webhook: Webhook, *, permanent: bool = False) -> Webhook:
        same_app = self.of_app(webhook.app_id)
        if any(existing.target == webhook.target for existing in same_app):
            raise invalid_argument(f"A webhook with target {webhook.target} already exists for app {webhook.app_id}")
        if len(same_app) >= MAX_WEBHOOKS_PER_APP:
            raise invalid_argument(f"App {webhook.app_id} already has {MAX_WEBHOOKS_PER_APP} webhooks, the maximum")
        self._by_id[webhook.id] = webhook
        if permanent:
            self._permanent.append(webhook)
        return webhook

    def get(self, webhook_id: str) -> Webhook:
        webhook = self._by_id.get(webhook_id)
        if webhook is None:
            raise not_found(f"Webhook {webhook_id} not found")
        return webhook

    def delete(self, webhook_id: str) -> None:
        self.get(webhook_id)
        del self._by_id[webhook_id]

    def of_app(self, app_id: str) -> list[Webhook]:
        return [webhook for webhook in self._by_id.values() if webhook.app_id == app_id]

    def receiving(self, app_id: str, trigger: str) -> list[Webhook]:
        return [webhook for webhook in self._by_id.values() if webhook.app_id == app_id and webhook.receives(trigger)]

    def reset(self) -> None:
        self._by_id = {webhook.id: webhook for webhook in self._permanent}
