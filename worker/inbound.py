"""Inbound ConsultationTalk messages (MESSAGE_INBOUND): stored per contact, sessions opened, choices linked.

Sinch deletes inbound media after 7 days (channel document); each media message records when its
URL stops working, and with KAKAO_DISPATCH_INBOUND_MEDIA_DIR set a task copies it before then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx

from worker import keys
from worker.contacts import ContactBook
from worker.jobs import STATUSES, JobStore

log = logging.getLogger(__name__)

INBOUND_MEDIA_LIFETIME = timedelta(days=7)
INBOUND_KEPT_PER_CONTACT = 1000
#: Stores a message and marks it seen in one script, the mark last (worker/lua/store_inbound.lua).
_STORE_SCRIPT = (Path(__file__).with_name("lua") / "store_inbound.lua").read_text()


@dataclass(frozen=True)
class InboundMessage:
    id: str
    contact_id: str
    channel: str
    identity: str
    conversation_id: str
    at: datetime
    kind: str  # text, media, choice_response, or the Conversation API kind for others
    content: dict[str, Any]

    @property
    def media_url(self) -> str | None:
        url = self.content.get("url") if self.kind == "media" else None
        return str(url) if url else None

    def as_dict(self) -> dict[str, Any]:
        document = {
            "id": self.id,
            "contact_id": self.contact_id,
            "channel": self.channel,
            "conversation_id": self.conversation_id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            **self.content,
        }
        if self.kind == "media":
            document["media_expires_at"] = (self.at + INBOUND_MEDIA_LIFETIME).isoformat()
        return document


def parse_inbound(payload: Mapping[str, Any]) -> InboundMessage:
    message = payload.get("message")
    if not isinstance(message, dict):
        raise ValueError("not a MESSAGE_INBOUND callback: no message object")
    contact_message = message.get("contact_message") or {}
    identity = message.get("channel_identity") or {}
    if "text_message" in contact_message:
        kind = "text"
        content: dict[str, Any] = {"text": str(contact_message["text_message"].get("text", ""))}
    elif "media_message" in contact_message:
        media = contact_message["media_message"]
        kind, content = (
            "media",
            {"url": str(media.get("url", "")), "thumbnail_url": str(media.get("thumbnail_url", ""))},
        )
    elif "choice_response_message" in contact_message:
        choice = contact_message["choice_response_message"]
        kind = "choice_response"
        content = {
            "answers_message_id": str(choice.get("message_id", "")),
            "postback_data": str(choice.get("postback_data", "")),
        }
    else:
        kind = next(iter(contact_message), "unknown")
        content = {"raw": contact_message.get(kind)}
    return InboundMessage(
        id=str(message.get("id") or ""),
        contact_id=str(message.get("contact_id") or ""),
        channel=str(identity.get("channel") or ""),
        identity=str(identity.get("identity") or ""),
        conversation_id=str(message.get("conversation_id") or ""),
        at=_instant(message.get("accept_time") or payload.get("accepted_time")),
        kind=kind,
        content=content,
    )


def store_inbound(
    store: JobStore, contacts: ContactBook, payload: Mapping[str, Any], now: datetime
) -> InboundMessage | None:
    """Store a user's message once (Sinch retries callbacks); returns it, or None for a duplicate."""
    message = parse_inbound(payload)
    if not message.contact_id or not message.id:
        raise ValueError("MESSAGE_INBOUND without message id or contact id")
    stored = store.redis.register_script(_STORE_SCRIPT)(
        keys=[keys.inbound_seen(message.id), keys.inbound(message.contact_id), keys.COUNTERS],
        args=[json.dumps(message.as_dict(), ensure_ascii=False), INBOUND_KEPT_PER_CONTACT, store.retention_seconds,
              message.kind],
    )  # fmt: skip
    if not stored:
        return None
    if message.channel in ("KAKAOTALKCHAT", ""):
        contacts.touch_session(message.contact_id, message.at, conversation_id=message.conversation_id)
    if message.kind == "choice_response":
        _link_choice(store, message, now)
    return message


def inbound_messages(store: JobStore, contact_id: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in store.redis.lrange(keys.inbound(contact_id), 0, -1)]


def _link_choice(store: JobStore, message: InboundMessage, now: datetime) -> None:
    """A choice response names the message it answers: note the answer on that job."""
    answered = str(message.content.get("answers_message_id") or "")
    job_id = store.job_for_message(answered) if answered else None
    if job_id is None:
        return
    postback = str(message.content.get("postback_data") or "")
    store.transition(
        job_id, STATUSES, "", now=now, reason=f"user answered: {postback}"[:300],
        fields={"choice_response": postback, "choice_response_contact_id": message.contact_id},
    )  # fmt: skip


def _instant(value: object) -> datetime:
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def copy_inbound_media(
    client: httpx.Client, store: JobStore, directory: Path, contact_id: str, message_id: str, url: str,
    *, max_bytes: int = 20 * 1024 * 1024,
) -> Path:  # fmt: skip
    """Download an inbound media file to `directory/<contact>/<message id><ext>` (bounded); returns the path."""
    target_dir = directory / _safe(contact_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()[:8]
    target = target_dir / f"{_safe(message_id)}{suffix if suffix.isascii() else ''}"
    partial = target.with_name(target.name + ".part")
    written = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        with partial.open("wb") as output:
            for chunk in response.iter_bytes():
                written += len(chunk)
                if written > max_bytes:
                    raise OSError(f"inbound media {url} is larger than {max_bytes} bytes")
                output.write(chunk)
    partial.replace(target)
    store.redis.hset(keys.INBOUND_MEDIA, message_id, str(target))
    return target


def _safe(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in name)[:128] or "_"
