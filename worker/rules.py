"""The KakaoTalk content limits (DESIGN §1, reference/kakaotalk-channel.txt), each a named rule.

Every function adds what it finds to a `Findings`; nothing here does I/O except through the
media lookup it is given, so the rules run the same in `check`, the producer and the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from worker.channels import Channel
from worker.media import MediaInfo, MediaUnreachable
from worker.messages import (
    AppMessage,
    CardMessage,
    Choice,
    carousel_as_text,
    location_as_text,
)
from worker.violations import RuleWarning, Violation

TEXT_MAX = 1000
CHOICE_TITLE_MAX = 14
CARD_TEXT_MAX = 1000
CARD_TEXT_WITH_MEDIA_MAX = 400
CARD_TEXT_WITH_WIDE_IMAGE_MAX = 76
WIDE_IMAGE = (800, 600)
WIDE_IMAGE_CHOICES_MAX = 1
MEDIA_MIN_WIDTH = 500
# width:height must lie between 3:4 (portrait) and 2:1 (landscape).
MEDIA_RATIO_MIN = 3 / 4
MEDIA_RATIO_MAX = 2.0
KB = 1024
MB = 1024 * KB
KAKAOTALK_MEDIA_MAX_BYTES = 500 * KB
KAKAOTALK_WIDE_IMAGE_MAX_BYTES = 2 * MB
KAKAOTALKCHAT_MEDIA_MAX_BYTES = 5 * MB
KAKAOTALK_FORMATS = ("png", "jpeg")
KAKAOTALKCHAT_FORMATS = ("gif", "png", "jpeg")
_EXTENSION_FORMATS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".webp": "webp",
    ".bmp": "bmp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".heic": "heic",
    ".svg": "svg",
}

#: Probe a media URL (raises MediaUnreachable); None means media is not probed.
MediaLookup = Callable[[str], MediaInfo]


@dataclass
class Findings:
    violations: list[Violation] = field(default_factory=list)
    warnings: list[RuleWarning] = field(default_factory=list)

    def violate(
        self,
        rule: str,
        path: str,
        limit: int | float | str | None,
        actual: int | float | str | None,
        message: str,
    ) -> None:
        self.violations.append(Violation(rule, path, limit, actual, message))

    def warn(self, rule: str, path: str, message: str) -> None:
        self.warnings.append(RuleWarning(rule, path, message))


def check_text_length(text: str, path: str, rule: str, findings: Findings, limit: int = TEXT_MAX) -> None:
    if len(text) > limit:
        findings.violate(rule, path, limit, len(text), f"{path} is {len(text)} characters; KakaoTalk allows {limit}")


def check_choice_titles(choices: Sequence[Choice], path: str, rule: str, findings: Findings) -> None:
    for index, choice in enumerate(choices):
        title = choice.title
        if len(title) > CHOICE_TITLE_MAX:
            findings.violate(
                rule,
                f"{path}[{index}]",
                CHOICE_TITLE_MAX,
                len(title),
                f"choice title {title!r} is {len(title)} characters; KakaoTalk allows {CHOICE_TITLE_MAX}",
            )


def check_message(message: AppMessage, channel: Channel, media: MediaLookup | None, findings: Findings) -> None:
    """The limits of whichever message kind the request carries."""
    if message.text_message is not None:
        check_text_length(message.text_message.text, "message.text_message.text", "text.length", findings)
    elif message.media_message is not None:
        check_media(message.media_message.url, channel, "message.media_message.url", media, findings)
    elif message.choice_message is not None:
        choice = message.choice_message
        if choice.text_message is not None:
            check_text_length(
                choice.text_message.text,
                "message.choice_message.text_message.text",
                "choice.text_length",
                findings,
            )
        check_choice_titles(choice.choices, "message.choice_message.choices", "choice.title_length", findings)
    elif message.card_message is not None:
        check_card(message.card_message, channel, "message.card_message", media, findings)
    elif message.carousel_message is not None:
        text = carousel_as_text(message.carousel_message)
        if len(text) > TEXT_MAX:
            findings.violate(
                "carousel.text_length",
                "message.carousel_message",
                TEXT_MAX,
                len(text),
                f"KakaoTalk receives a carousel as text; this one is {len(text)} characters as text, "
                f"more than {TEXT_MAX}",
            )
    elif message.location_message is not None:
        text = location_as_text(message.location_message)
        if len(text) > TEXT_MAX:
            findings.violate(
                "location.text_length",
                "message.location_message",
                TEXT_MAX,
                len(text),
                f"KakaoTalk receives a location as text (title, label, link); this one is {len(text)} "
                f"characters, more than {TEXT_MAX}",
            )


def check_card(card: CardMessage, channel: Channel, path: str, media: MediaLookup | None, findings: Findings) -> None:
    choices = card.choices or []
    check_choice_titles(choices, f"{path}.choices", "card.choice_title_length", findings)
    text = card.title_and_description
    if card.media_message is None:
        check_text_length(text, f"{path}.title+description", "card.text_length", findings, CARD_TEXT_MAX)
        return
    info = check_media(card.media_message.url, channel, f"{path}.media_message.url", media, findings, in_card=True)
    wide = info is not None and (info.width, info.height) == WIDE_IMAGE
    limit = CARD_TEXT_WITH_WIDE_IMAGE_MAX if wide else CARD_TEXT_WITH_MEDIA_MAX
    check_text_length(text, f"{path}.title+description", "card.text_length", findings, limit)
    if info is None and len(text) > CARD_TEXT_WITH_WIDE_IMAGE_MAX:
        findings.warn(
            "card.text_length",
            f"{path}.title+description",
            f"the image was not probed: if it is a wide 800×600 image the limit is "
            f"{CARD_TEXT_WITH_WIDE_IMAGE_MAX} characters, and this text has {len(text)}",
        )
    if wide and len(choices) > WIDE_IMAGE_CHOICES_MAX:
        findings.violate(
            "card.wide_image_choices",
            f"{path}.choices",
            WIDE_IMAGE_CHOICES_MAX,
            len(choices),
            f"a card with a wide 800×600 image may have one choice; this one has {len(choices)}",
        )


def check_media(
    url: str,
    channel: Channel,
    path: str,
    media: MediaLookup | None,
    findings: Findings,
    *,
    in_card: bool = False,
) -> MediaInfo | None:
    """Type, dimensions and size of an image for its channel; returns what the probe learnt."""
    # Card images follow the KAKAOTALK image rules on either channel (channel document, "Card Messages").
    strict = channel == "KAKAOTALK" or in_card
    formats = KAKAOTALK_FORMATS if strict else KAKAOTALKCHAT_FORMATS
    if media is None:
        _check_extension(url, formats, path, findings)
        return None
    try:
        info = media(url)
    except MediaUnreachable as error:
        findings.violate(
            "media.unreachable", path, None, error.reason, f"media {url} cannot be fetched: {error.reason}"
        )
        return None
    if info.format not in formats:
        actual = info.format or "not an image"
        findings.violate(
            "media.type",
            path,
            "/".join(_display(fmt) for fmt in formats),
            _display(actual),
            f"{'card images' if in_card else channel + ' media'} must be {' or '.join(map(_display, formats))}; "
            f"{url} is {_display(actual)}",
        )
        return info
    if strict:
        _check_kakaotalk_image(info, path, findings)
    else:
        _check_size(info, KAKAOTALKCHAT_MEDIA_MAX_BYTES, path, findings)
    return info


def _check_kakaotalk_image(info: MediaInfo, path: str, findings: Findings) -> None:
    width, height = info.width, info.height
    wide = (width, height) == WIDE_IMAGE
    if width is None or height is None:
        findings.warn("media.dimensions", path, f"the dimensions of {info.url} could not be read")
    else:
        if width < MEDIA_MIN_WIDTH:
            findings.violate(
                "media.width",
                path,
                MEDIA_MIN_WIDTH,
                width,
                f"image is {width} px wide; KakaoTalk needs at least {MEDIA_MIN_WIDTH} px",
            )
        ratio = width / height if height else float("inf")
        if not MEDIA_RATIO_MIN <= ratio <= MEDIA_RATIO_MAX:
            findings.violate(
                "media.ratio",
                path,
                "between 3:4 and 2:1",
                f"{width}:{height}",
                f"image is {width}×{height}; KakaoTalk needs a width:height ratio between 3:4 and 2:1",
            )
    _check_size(info, KAKAOTALK_WIDE_IMAGE_MAX_BYTES if wide else KAKAOTALK_MEDIA_MAX_BYTES, path, findings)


def _check_size(info: MediaInfo, limit: int, path: str, findings: Findings) -> None:
    if info.size_bytes is None:
        findings.warn("media.size", path, f"the size of {info.url} could not be learnt")
    elif info.size_bytes > limit:
        size = f"at least {info.size_bytes}" if info.size_is_lower_bound else str(info.size_bytes)
        findings.violate(
            "media.size",
            path,
            limit,
            info.size_bytes,
            f"image is {size} bytes; the limit here is {limit} bytes ({_human(limit)})",
        )


def _check_extension(url: str, formats: Sequence[str], path: str, findings: Findings) -> None:
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    guessed = _EXTENSION_FORMATS.get(suffix)
    if guessed is not None and guessed not in formats:
        findings.violate(
            "media.type",
            path,
            "/".join(map(_display, formats)),
            _display(guessed),
            f"{url} looks like {_display(guessed)} from its name; allowed: {' or '.join(map(_display, formats))}",
        )
    else:
        findings.warn("media.not_probed", path, f"{url} was not probed: type, size and dimensions unchecked")


def _display(fmt: str) -> str:
    return "jpg" if fmt == "jpeg" else fmt


def _human(size: int) -> str:
    return f"{size // MB} MB" if size % MB == 0 else f"{size // KB} KB"
