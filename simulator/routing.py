"""Which channels an accepted message is tried on, in order, and with which identity (Sinch's channel priority)."""

from __future__ import annotations

from collections.abc import Collection

from simulator.contacts import Contact, ContactBook
from simulator.errors import SinchApiError, invalid_argument
from simulator.send_request import ChannelIdentity, SendRequest


def resolve_route(
    request: SendRequest, configured_channels: Collection[str], contacts: ContactBook
) -> tuple[list[ChannelIdentity], Contact | None]:
    """The (channel, identity) pairs to try in order, and the addressed contact for a `contact_id` recipient.

    Order: `channel_priority_order`; else, for `identified_by`, the order of the identities; else, for a
    contact, its active channel (the channel the user last wrote from) then its channel priority. A route
    that is empty is a synchronous error, as is an unknown contact.
    """
    if request.contact_id is not None:
        contact = contacts.get(request.contact_id)
        if contact is None:
            raise SinchApiError(404, f"Contact {request.contact_id} not found")
        preferred = request.channel_priority_order or (
            *((contact.active_channel,) if contact.active_channel else ()),
            *contact.channel_priority,
        )
        route = [
            identity
            for channel in dict.fromkeys(preferred)
            if channel in configured_channels and (identity := contact.identity_on(channel)) is not None
        ]
        if not route:
            raise invalid_argument(
                f"Contact {contact.id} has no channel identity on a channel configured for app {request.app_id}"
                + (f" among {', '.join(request.channel_priority_order)}" if request.channel_priority_order else "")
            )
        return route, contact

    first_identity: dict[str, ChannelIdentity] = {}
    for identity in request.identities:
        first_identity.setdefault(identity.channel, identity)
    if request.channel_priority_order:
        route = [first_identity[channel] for channel in request.channel_priority_order if channel in first_identity]
        if not route:
            raise invalid_argument("channel_priority_order names no channel of the recipient's channel identities")
        return route, None
    unconfigured = [channel for channel in first_identity if channel not in configured_channels]
    if unconfigured:
        raise invalid_argument(f"recipient: channel {unconfigured[0]} is not configured on app {request.app_id}")
    return list(first_identity.values()), None
