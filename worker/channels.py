"""Channel selection: which kind of KakaoTalk message a request becomes, and on which Sinch channel (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from worker.send_request import SendRequest

Channel = Literal["KAKAOTALK", "KAKAOTALKCHAT"]
Kind = Literal["alimtalk", "friendtalk", "consultation"]
CHANNEL_OF: dict[Kind, Channel] = {
    "alimtalk": "KAKAOTALK",
    "friendtalk": "KAKAOTALK",
    "consultation": "KAKAOTALKCHAT",
}

#: Given a normalised MSISDN, the KAKAOTALKCHAT contact id of that person's open ConsultationTalk session.
SessionLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class ChannelDecision:
    type: Kind
    channel: Channel
    reason: str
    contact_id: str | None = None  # set when `auto` turned an MSISDN into a session's contact


def choose_channel(request: SendRequest, msisdn: str | None, sessions: SessionLookup | None) -> ChannelDecision:
    """Explicit types map to their channel; `auto` picks AlimTalk, ConsultationTalk or FriendTalk."""
    if request.type != "auto":
        return ChannelDecision(request.type, CHANNEL_OF[request.type], f"type {request.type} was requested")
    if request.template is not None:
        return ChannelDecision("alimtalk", "KAKAOTALK", "auto: a template goes as AlimTalk")
    if request.to.contact_id is not None:
        return ChannelDecision("consultation", "KAKAOTALKCHAT", "auto: a contact id is a ConsultationTalk reply")
    carries_template = request.message is not None and request.message.template_message is not None
    if msisdn is not None and sessions is not None and not carries_template:
        contact_id = sessions(msisdn)
        if contact_id is not None:
            return ChannelDecision(
                "consultation",
                "KAKAOTALKCHAT",
                "auto: the recipient has an open ConsultationTalk session",
                contact_id=contact_id,
            )
    if sessions is None:
        reason = "auto: no session store consulted; a message to an MSISDN goes as FriendTalk"
    else:
        reason = "auto: no open ConsultationTalk session; a message to an MSISDN goes as FriendTalk"
    return ChannelDecision("friendtalk", "KAKAOTALK", reason)
