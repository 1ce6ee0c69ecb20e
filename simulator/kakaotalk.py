"""KakaoTalk as a channel: decides what becomes of each accepted message (DELIVERED, or FAILED and why)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from simulator import rules
from simulator.media import MediaProber
from simulator.rules import KAKAOTALK, KAKAOTALKCHAT, Kind, Reason
from simulator.send_request import ChannelIdentity, SendRequest
from simulator.templates import TemplateRegistry

DELIVERED = "DELIVERED"
FAILED = "FAILED"
SWITCHING_CHANNEL = "SWITCHING_CHANNEL"


@dataclass(frozen=True)
class DeliveryStep:
    """One delivery receipt to come: the channel tried, its status and, unless delivered, the reason."""

    channel_identity: ChannelIdentity
    status: str
    reason: Reason | None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel_identity.channel,
            "identity": self.channel_identity.identity,
            "status": self.status,
            "reason": self.reason.to_json() if self.reason else None,
        }


@dataclass(frozen=True)
class Decision:
    """The receipts of one message in order; the last is final. `kind` is the KakaoTalk kind first tried."""

    kind: Kind | None
    steps: tuple[DeliveryStep, ...]

    @property
    def final(self) -> DeliveryStep:
        return self.steps[-1]


class KakaoTalkChannel:
    """Applies the KakaoTalk rules in order: recipient, template or window, content and media, reachability.

    A FAILED channel followed by another channel in the route (e.g. SMS fallback) gives a
    SWITCHING_CHANNEL receipt and the next channel is tried; channels other than KakaoTalk deliver.
    """

    def __init__(
        self,
        *,
        templates: TemplateRegistry | None,
        window: tuple[time, time],
        media: MediaProber,
        has_written: Callable[[str], bool],
    ) -> None:
        self._templates = templates
        self._window = window
        self._media = media
        self._has_written = has_written  # has this KAKAOTALKCHAT identity ever written to the channel?

    async def decide(self, request: SendRequest, route: list[ChannelIdentity], now: datetime) -> Decision:
        steps: list[DeliveryStep] = []
        first_kind: Kind | None = None
        for position, target in enumerate(route):
            kind, reason = await self._channel_verdict(request, target, now)
            if position == 0:
                first_kind = kind
            if reason is None:
                steps.append(DeliveryStep(target, DELIVERED, None))
                break
            last = position == len(route) - 1
            steps.append(DeliveryStep(target, FAILED if last else SWITCHING_CHANNEL, reason))
        return Decision(first_kind, tuple(steps))

    async def _channel_verdict(
        self, request: SendRequest, target: ChannelIdentity, now: datetime
    ) -> tuple[Kind | None, Reason | None]:
        if target.channel == KAKAOTALK:
            return await self._kakaotalk(request, target.identity, now)
        if target.channel == KAKAOTALKCHAT:
            return Kind.CONSULTATION, await self._consultation(request, target.identity)
        return None, None

    async def _kakaotalk(self, request: SendRequest, identity: str, now: datetime) -> tuple[Kind, Reason | None]:
        """AlimTalk for a KAKAOTALK channel template, FriendTalk for anything else."""
        reference = _kakaotalk_template(request)
        kind = Kind.ALIMTALK if reference is not None else Kind.FRIENDTALK
        reason = rules.invalid_msisdn_reason(identity)
        if reason is None and reference is not None:
            authentication = request.channel_properties.get("KAKAOTALK_AUTHENTICATION", "").lower() == "true"
            reason = rules.alimtalk_reason(reference, self._templates, authentication=authentication)
        if reason is None and reference is None:
            reason = rules.window_reason(now, self._window) or await self._content_reason(request, KAKAOTALK)
        return kind, reason or rules.unreachable_reason(identity)

    async def _consultation(self, request: SendRequest, identity: str) -> Reason | None:
        if request.message_kind == "template_message" and "channel_template" in request.content:
            return rules.bad_request(
                "Template messages cannot be sent as a ConsultationTalk reply (KAKAOTALKCHAT): "
                "send an AlimTalk to the MSISDN instead"
            )
        if not self._has_written(identity):
            return Reason(
                "RECIPIENT_NOT_REACHABLE",
                f"No ConsultationTalk session with {identity}: the user has never written to the channel",
            )
        return await self._content_reason(request, KAKAOTALKCHAT)

    async def _content_reason(self, request: SendRequest, channel: str) -> Reason | None:
        """Text limits, media and rendering for FriendTalk and ConsultationTalk content."""
        specific = request.message.get("channel_specific_message") or {}
        if channel in specific:
            return None  # KakaoTalk's own message types (COMMERCE...) are passed through unchecked
        kind, content = request.message_kind, request.content
        if kind == "text_message":
            return rules.text_reason(content["text"], "Text message")
        if kind == "media_message":
            probe = await self._media.probe(content["url"])
            return rules.media_reason(probe, channel, in_card=False)
        if kind == "choice_message":
            return rules.choice_message_reason(content)
        if kind == "card_message":
            return await self._card_reason(content, channel)
        if kind == "carousel_message":
            text = rules.render_carousel_text(content)
            return rules.text_reason(text, "Carousel rendered as text", rules.RENDERED_TEXT_MAX)
        if kind == "location_message":
            text = rules.render_location_text(content)
            return rules.text_reason(text, "Location rendered as text", rules.RENDERED_TEXT_MAX)
        if kind == "template_message":
            if "omni_template" in content:
                return None  # omni-channel templates are rendered by Sinch's template store, not modelled here
            return rules.bad_request("The template message has no KAKAOTALK channel template and no omni template")
        return rules.bad_request(f"{kind} is not supported on KakaoTalk")

    async def _card_reason(self, content: Mapping[str, Any], channel: str) -> Reason | None:
        media_url = (content.get("media_message") or {}).get("url")
        if media_url is None:
            return rules.card_reason(content, None)
        probe = await self._media.probe(media_url)
        return rules.media_reason(probe, channel, in_card=True) or rules.card_reason(content, probe)


def _kakaotalk_template(request: SendRequest) -> Mapping[str, Any] | None:
    if request.message_kind != "template_message":
        return None
    reference: Mapping[str, Any] | None = (request.content.get("channel_template") or {}).get(KAKAOTALK)
    return reference
