"""Pydantic models of the Conversation API message kinds kakao-dispatch sends, and their text renderings.

Only the fields KakaoTalk uses are modelled; unknown fields are refused so that a typo is reported
instead of silently dropped on the way to Sinch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_sinch(self) -> dict[str, Any]:
        """The JSON object Sinch expects: fields that were not given are left out."""
        return self.model_dump(mode="json", exclude_none=True)


def _exactly_one(model: BaseModel, fields: tuple[str, ...], what: str) -> None:
    present = [name for name in fields if getattr(model, name) is not None]
    if len(present) != 1:
        given = ", ".join(present) if present else "none"
        raise ValueError(f"{what} must have exactly one of {', '.join(fields)} (given: {given})")


class TextMessage(_Model):
    text: str = Field(min_length=1)  # Sinch refuses an empty text; a choice's text is its title


class MediaMessage(_Model):
    url: str = Field(min_length=1)
    thumbnail_url: str | None = None
    filename_override: str | None = None


class Coordinates(_Model):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class LocationMessage(_Model):
    coordinates: Coordinates
    title: str
    label: str | None = None


class UrlMessage(_Model):
    title: str = Field(min_length=1)
    url: str


class CallMessage(_Model):
    title: str = Field(min_length=1)
    phone_number: str


class CalendarMessage(_Model):
    title: str = Field(min_length=1)
    event_start: str
    event_end: str
    event_title: str
    event_description: str | None = None
    url: str


class ShareLocationMessage(_Model):
    title: str = Field(min_length=1)
    fallback_url: str


CHOICE_KINDS = (
    "text_message",
    "url_message",
    "call_message",
    "location_message",
    "calendar_message",
    "share_location_message",
)


class Choice(_Model):
    """One button of a choice or card message: exactly one kind, plus optional postback data."""

    text_message: TextMessage | None = None
    url_message: UrlMessage | None = None
    call_message: CallMessage | None = None
    location_message: LocationMessage | None = None
    calendar_message: CalendarMessage | None = None
    share_location_message: ShareLocationMessage | None = None
    postback_data: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Choice:
        _exactly_one(self, CHOICE_KINDS, "a choice")
        return self

    @property
    def title(self) -> str:
        """The label KakaoTalk shows on the button."""
        if self.text_message is not None:
            return self.text_message.text
        kind = next(getattr(self, name) for name in CHOICE_KINDS[1:] if getattr(self, name) is not None)
        return str(kind.title)

    def as_text(self) -> str:
        """How the choice reads when Sinch transcodes its message to text."""
        if self.url_message is not None:
            return f"{self.url_message.title}: {self.url_message.url}"
        if self.call_message is not None:
            return f"{self.call_message.title}: {self.call_message.phone_number}"
        if self.location_message is not None:
            return location_as_text(self.location_message)
        if self.calendar_message is not None:
            return f"{self.calendar_message.title}: {self.calendar_message.url}"
        if self.share_location_message is not None:
            return f"{self.share_location_message.title}: {self.share_location_message.fallback_url}"
        return self.title


class MessageProperties(_Model):
    whatsapp_footer: str | None = None


class ChoiceMessage(_Model):
    choices: list[Choice] = Field(min_length=1)
    text_message: TextMessage | None = None
    message_properties: MessageProperties | None = None


class CardMessage(_Model):
    title: str | None = None
    description: str | None = None
    media_message: MediaMessage | None = None
    height: Literal["UNSPECIFIED_HEIGHT", "SHORT", "MEDIUM", "TALL"] | None = None
    choices: list[Choice] | None = None
    message_properties: MessageProperties | None = None

    @property
    def title_and_description(self) -> str:
        return (self.title or "") + (self.description or "")


class CarouselMessage(_Model):
    cards: list[CardMessage] = Field(min_length=1)
    choices: list[Choice] | None = None


class TemplateReference(_Model):
    template_id: str = Field(min_length=1)
    version: str | None = None
    language_code: str | None = None
    parameters: dict[str, str] | None = None


class ChannelTemplates(_Model):
    KAKAOTALK: TemplateReference | None = None
    KAKAOTALKCHAT: TemplateReference | None = None
    SMS: TemplateReference | None = None


class TemplateMessage(_Model):
    channel_template: ChannelTemplates | None = None
    omni_template: TemplateReference | None = None

    @model_validator(mode="after")
    def _some_template(self) -> TemplateMessage:
        if self.channel_template is None and self.omni_template is None:
            raise ValueError("a template_message needs channel_template or omni_template")
        if self.omni_template is not None and not self.omni_template.version:
            raise ValueError('omni_template.version is required by Sinch (use "latest" for the newest)')
        return self


MESSAGE_KINDS = (
    "text_message",
    "media_message",
    "choice_message",
    "card_message",
    "carousel_message",
    "location_message",
    "template_message",
)


class AppMessage(_Model):
    """The `message` of a send request: exactly one Conversation API message kind."""

    text_message: TextMessage | None = None
    media_message: MediaMessage | None = None
    choice_message: ChoiceMessage | None = None
    card_message: CardMessage | None = None
    carousel_message: CarouselMessage | None = None
    location_message: LocationMessage | None = None
    template_message: TemplateMessage | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_kind(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(MESSAGE_KINDS))
            if unknown:
                raise ValueError(
                    f"unknown message kind {', '.join(unknown)}; KakaoTalk takes one of {', '.join(MESSAGE_KINDS)}"
                )
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> AppMessage:
        _exactly_one(self, MESSAGE_KINDS, "message")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in MESSAGE_KINDS if getattr(self, name) is not None)


def location_as_text(location: LocationMessage) -> str:
    """Location as Sinch sends it on KakaoTalk: title, label and a map link, one per line."""
    lat, lng = location.coordinates.latitude, location.coordinates.longitude
    lines = [
        location.title,
        location.label or "",
        f"https://www.google.com/maps/search/?api=1&query={lat},{lng}",
    ]
    return "\n".join(line for line in lines if line)


def card_as_text(card: CardMessage) -> str:
    lines = [card.title or "", card.description or ""]
    if card.media_message is not None:
        lines.append(card.media_message.url)
    lines.extend(choice.as_text() for choice in card.choices or [])
    return "\n".join(line for line in lines if line)


def carousel_as_text(carousel: CarouselMessage) -> str:
    """Carousel as text: the cards one after another, blank-line separated, then the shared choices.

    Sinch transcodes carousels for KakaoTalk; its exact layout is not published, so this rendering
    (the same information, one item per line) is what the 1000-character limit is measured on.
    """
    blocks = [card_as_text(card) for card in carousel.cards]
    if carousel.choices:
        blocks.append("\n".join(choice.as_text() for choice in carousel.choices))
    return "\n\n".join(block for block in blocks if block)
