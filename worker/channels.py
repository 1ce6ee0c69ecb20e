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
    contact_id: str | None = None  # set when `auto` turned an MSISDN into a session's contact

    @property
    def channel(self) -> Channel:
        return CHANNEL_OF[self.type]


def choose_channel(request: SendRequest, msisdn: str | None, sessions: SessionLookup | None) -> ChannelDecision:
    """Explicit types map to their channel; `auto` picks AlimTalk, ConsultationTalk or FriendTalk.

    For `auto`: a template goes as AlimTalk; a message to a contact id is a ConsultationTalk reply, and so is
    one to an MSISDN with an open session (a session store given, the message no template_message); any other
    message to an MSISDN is a FriendTalk.
    """
    if request.type != "auto":
        return ChannelDecision(request.type)
    if request.template is not None:
        return ChannelDecision("alimtalk")
    if request.to.contact_id is not None:
        return ChannelDecision("consultation")
    carries_template = request.message is not None and request.message.template_message is not None
    if msisdn is not None and sessions is not None and not carries_template:
        contact_id = sessions(msisdn)
        if contact_id is not None:
            return ChannelDecision("consultation", contact_id=contact_id)
    return ChannelDecision("friendtalk")
