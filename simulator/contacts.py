"""Contacts and conversations: created on the first send to an MSISDN or when a user writes; merged on request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from simulator.errors import SinchApiError, invalid_argument, not_found
from simulator.ids import new_chat_identity, new_id
from simulator.send_request import ChannelIdentity

KAKAOTALKCHAT = "KAKAOTALKCHAT"
OPTIONAL_FIELDS = ("email", "external_id", "metadata")


def identity_key(channel: str, identity: str) -> tuple[str, str]:
    """Identities are looked up with or without a leading `+` (`+8210…` and `8210…` are one user)."""
    return channel, identity.removeprefix("+")


@dataclass
class Contact:
    id: str
    channel_identities: list[ChannelIdentity]
    channel_priority: list[str]
    display_name: str = "Unknown"
    email: str = ""
    external_id: str = ""
    metadata: str = ""
    language: str = "UNSPECIFIED"
    active_channel: str | None = None  # channel of the user's last message: Sinch's "active conversation"
    conversation_ids: dict[str, str] = field(default_factory=dict)  # app id → conversation id

    def identity_on(self, channel: str) -> ChannelIdentity | None:
        return next((item for item in self.channel_identities if item.channel == channel), None)

    def conversation_id(self, app_id: str) -> str:
        if app_id not in self.conversation_ids:
            self.conversation_ids[app_id] = new_id()
        return self.conversation_ids[app_id]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "channel_identities": [identity.to_json() for identity in self.channel_identities],
            "channel_priority": list(self.channel_priority),
            "display_name": self.display_name,
            "email": self.email,
            "external_id": self.external_id,
            "metadata": self.metadata,
            "language": self.language,
        }


class ContactBook:
    """All contacts of the project, indexed by id and by channel identity."""

    def __init__(self) -> None:
        self._by_id: dict[str, Contact] = {}
        self._by_identity: dict[tuple[str, str], str] = {}
        self._chat_writers: set[str] = set()  # KAKAOTALKCHAT identities with a ConsultationTalk session

    def get(self, contact_id: str) -> Contact | None:
        return self._by_id.get(contact_id)

    def require(self, contact_id: str) -> Contact:
        contact = self._by_id.get(contact_id)
        if contact is None:
            raise not_found(f"Contact {contact_id} not found")
        return contact

    def find(self, channel: str, identity: str) -> Contact | None:
        contact_id = self._by_identity.get(identity_key(channel, identity))
        return self._by_id.get(contact_id) if contact_id else None

    def find_or_create(self, identities: Iterable[ChannelIdentity]) -> Contact:
        """The contact owning any of these identities (gaining the others), else a new one with all of them."""
        identities = list(identities)
        contact = next((found for item in identities if (found := self.find(item.channel, item.identity))), None)
        if contact is None:
            contact = Contact(new_id(), [], [])
            self._by_id[contact.id] = contact
        for item in identities:
            if self.find(item.channel, item.identity) is None and contact.identity_on(item.channel) is None:
                self._add_identity(contact, item)
        return contact

    def create_chat_user(self) -> Contact:
        """A user who writes to the business channel for the first time: a new KAKAOTALKCHAT contact."""
        return self.find_or_create([ChannelIdentity(KAKAOTALKCHAT, new_chat_identity())])

    def record_user_message(self, contact: Contact, identity: ChannelIdentity) -> None:
        """The user wrote from this identity: the session is open and the channel becomes the active one."""
        contact.active_channel = identity.channel
        self._chat_writers.add(identity.identity)

    def has_written(self, chat_identity: str) -> bool:
        return chat_identity in self._chat_writers

    def merge(self, destination_id: str, source_id: str) -> Contact:
        """Sinch's MERGE strategy: identities of channels the destination lacks move over (appended to its
        priority), empty optional fields are filled, conversations move; the source id is gone afterwards."""
        if destination_id == source_id:
            raise invalid_argument("source_id must differ from the destination contact id")
        destination = self.require(destination_id)
        source = self._by_id.get(source_id)
        if source is None:
            raise SinchApiError(404, f"Contact {source_id} not found")
        for item in source.channel_identities:
            self._by_identity.pop(identity_key(item.channel, item.identity), None)
            if destination.identity_on(item.channel) is None:
                self._add_identity(destination, item)
        for name in OPTIONAL_FIELDS:
            if not getattr(destination, name):
                setattr(destination, name, getattr(source, name))
        if destination.display_name == "Unknown":
            destination.display_name = source.display_name
        for app_id, conversation_id in source.conversation_ids.items():
            destination.conversation_ids.setdefault(app_id, conversation_id)
        destination.active_channel = destination.active_channel or source.active_channel
        del self._by_id[source_id]
        return destination

    def _add_identity(self, contact: Contact, item: ChannelIdentity) -> None:
        contact.channel_identities.append(item)
        if item.channel not in contact.channel_priority:
            contact.channel_priority.append(item.channel)
        self._by_identity[identity_key(item.channel, item.identity)] = contact.id
