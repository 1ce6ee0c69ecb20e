"""ConsultationTalk sessions and the links between an MSISDN and the KAKAOTALKCHAT contact of the same person.

A user who writes to the business opens (or refreshes) a session on their KAKAOTALKCHAT contact;
replies inside it are ConsultationTalk. Sinch does not say which phone number that contact
belongs to (channel document), so the link comes from an operator (`contacts link`) or from a
contact merge; with it, `auto` sends a message for that MSISDN as a reply in the open session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import redis

from worker import keys
from worker.settings import Settings

DEFAULT_SESSION_SECONDS = 24 * 3600


class ContactBook:
    """Links and sessions in Redis."""

    def __init__(self, client: redis.Redis, *, session_seconds: float = DEFAULT_SESSION_SECONDS) -> None:
        self.redis = client
        self.session_seconds = session_seconds

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> ContactBook:
        """The contact book with the configured session period (KAKAO_DISPATCH_SESSION_HOURS)."""
        return cls(client, session_seconds=settings.session_hours * 3600)

    def link(self, msisdn: str, contact_id: str) -> None:
        """Record that `contact_id` (KAKAOTALKCHAT) is the person with this E.164 MSISDN; replaces older links."""
        previous_contact = self.redis.get(keys.link_msisdn(msisdn))
        previous_msisdn = self.redis.get(keys.link_contact(contact_id))
        pipe = self.redis.pipeline(transaction=True)
        if previous_contact and previous_contact != contact_id:
            pipe.delete(keys.link_contact(str(previous_contact)))
        if previous_msisdn and previous_msisdn != msisdn:
            pipe.delete(keys.link_msisdn(str(previous_msisdn)))
        pipe.set(keys.link_msisdn(msisdn), contact_id)
        pipe.set(keys.link_contact(contact_id), msisdn)
        pipe.execute()

    def contact_for(self, msisdn: str) -> str | None:
        value = self.redis.get(keys.link_msisdn(msisdn))
        return str(value) if value is not None else None

    def msisdn_for(self, contact_id: str) -> str | None:
        value = self.redis.get(keys.link_contact(contact_id))
        return str(value) if value is not None else None

    def touch_session(self, contact_id: str, at: datetime, *, conversation_id: str = "") -> None:
        """A user wrote: open the session, or extend it by the session period from `at`."""
        key = keys.session(contact_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(key, "opened_at", int(at.timestamp() * 1000))
        pipe.hset(key, mapping={"last_inbound_at": int(at.timestamp() * 1000), "conversation_id": conversation_id})
        pipe.pexpireat(key, int((at + timedelta(seconds=self.session_seconds)).timestamp() * 1000))
        pipe.execute()

    def has_open_session(self, contact_id: str) -> bool:
        return bool(self.redis.exists(keys.session(contact_id)))

    def open_session_for(self, msisdn: str) -> str | None:
        """The contact id to reply to when this MSISDN's person has an open session (`auto`'s lookup)."""
        contact_id = self.contact_for(msisdn)
        if contact_id is not None and self.has_open_session(contact_id):
            return contact_id
        return None

    def merged(self, source_id: str, destination_id: str) -> None:
        """Sinch merged contact `source_id` into `destination_id`: its link and open session move over."""
        msisdn = self.msisdn_for(source_id)
        session_key, target_key = keys.session(source_id), keys.session(destination_id)
        if self.redis.exists(session_key):
            ttl_ms = int(self.redis.pttl(session_key))
            fields: Any = self.redis.hgetall(session_key)
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(session_key)
            pipe.hset(target_key, mapping=fields)
            if ttl_ms > 0:
                pipe.pexpire(target_key, ttl_ms)
            pipe.execute()
        if msisdn is not None:
            self.redis.delete(keys.link_contact(source_id))
            self.link(msisdn, destination_id)
