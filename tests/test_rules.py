"""Every KakaoTalk content limit at its limit and one past it (DESIGN §1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from worker.media import MediaInfo, MediaUnreachable
from worker.sending_window import KST
from worker.verdict import CheckContext, Verdict, check_request

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=KST)
KB, MB = 1024, 1024 * 1024


def image(url: str, fmt: str | None, width: int | None, height: int | None, size: int | None) -> MediaInfo:
    return MediaInfo(
        url=url,
        format=fmt,
        width=width,
        height=height,
        size_bytes=size,
        size_is_lower_bound=False,
        content_type=None,
    )


IMAGES = {
    "https://img/ok.png": image("https://img/ok.png", "png", 600, 600, 100 * KB),
    "https://img/wide.jpg": image("https://img/wide.jpg", "jpeg", 800, 600, 100 * KB),
    "https://img/anim.gif": image("https://img/anim.gif", "gif", 600, 600, 100 * KB),
    "https://img/photo.webp": image("https://img/photo.webp", "webp", 600, 600, 100 * KB),
    "https://img/text.txt": image("https://img/text.txt", None, None, None, 20),
}


def lookup(url: str) -> MediaInfo:
    if url in IMAGES:
        return IMAGES[url]
    if url.startswith("https://img/gen/"):  # https://img/gen/<fmt>/<w>x<h>/<bytes>
        fmt, size, length = url.removeprefix("https://img/gen/").split("/")
        width, height = (int(part) for part in size.split("x"))
        return image(url, fmt, width, height, int(length))
    raise MediaUnreachable("HTTP 404")


def friendtalk(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "friendtalk", "to": {"msisdn": "010-1234-5678"}, "message": message}


def consultation(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "consultation", "to": {"contact_id": "contact-1"}, "message": message}


def verdict_of(request: dict[str, Any]) -> Verdict:
    return check_request(request, CheckContext(now=NOON, media=lookup, app_id="app"))


def rules_of(request: dict[str, Any]) -> list[str]:
    return [violation.rule for violation in verdict_of(request).violations]


def card(text_length: int, media: str | None = None, choices: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "T" * 10, "description": "d" * (text_length - 10)}
    if media:
        body["media_message"] = {"url": media}
    if choices:
        body["choices"] = [{"text_message": {"text": f"choice {i}"}} for i in range(choices)]
    return {"card_message": body}


def carousel(text_length: int) -> dict[str, Any]:
    # Two cards of title only render as "A...\n\nB..." : two blocks joined by one blank line.
    first = (text_length - 2) // 2
    return {"carousel_message": {"cards": [{"title": "a" * first}, {"title": "b" * (text_length - 2 - first)}]}}


def location(text_length: int) -> dict[str, Any]:
    link = "https://www.google.com/maps/search/?api=1&query=37.5,127.0"
    return {
        "location_message": {
            "coordinates": {"latitude": 37.5, "longitude": 127.0},
            "title": "t" * (text_length - len(link) - 1),
        }
    }


def gen(fmt: str, width: int, height: int, size: int) -> str:
    return f"https://img/gen/{fmt}/{width}x{height}/{size}"


AT_LIMIT_AND_PAST: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "text",
        friendtalk({"text_message": {"text": "가" * 1000}}),
        friendtalk({"text_message": {"text": "가" * 1001}}),
        "text.length",
    ),
    (
        "choice text",
        friendtalk(
            {
                "choice_message": {
                    "text_message": {"text": "x" * 1000},
                    "choices": [{"text_message": {"text": "a"}}],
                }
            }
        ),
        friendtalk(
            {
                "choice_message": {
                    "text_message": {"text": "x" * 1001},
                    "choices": [{"text_message": {"text": "a"}}],
                }
            }
        ),
        "choice.text_length",
    ),
    (
        "choice title",
        friendtalk({"choice_message": {"choices": [{"text_message": {"text": "가" * 14}}]}}),
        friendtalk({"choice_message": {"choices": [{"text_message": {"text": "가" * 15}}]}}),
        "choice.title_length",
    ),
    (
        "url choice title",
        friendtalk({"choice_message": {"choices": [{"url_message": {"title": "x" * 14, "url": "https://e"}}]}}),
        friendtalk({"choice_message": {"choices": [{"url_message": {"title": "x" * 15, "url": "https://e"}}]}}),
        "choice.title_length",
    ),
    ("card without media", friendtalk(card(1000)), friendtalk(card(1001)), "card.text_length"),
    (
        "card with media",
        friendtalk(card(400, "https://img/ok.png")),
        friendtalk(card(401, "https://img/ok.png")),
        "card.text_length",
    ),
    (
        "card with wide image",
        friendtalk(card(76, "https://img/wide.jpg")),
        friendtalk(card(77, "https://img/wide.jpg")),
        "card.text_length",
    ),
    (
        "card wide image choices",
        friendtalk(card(20, "https://img/wide.jpg", choices=1)),
        friendtalk(card(20, "https://img/wide.jpg", choices=2)),
        "card.wide_image_choices",
    ),
    (
        "card choice title",
        friendtalk({"card_message": {"title": "t", "choices": [{"text_message": {"text": "c" * 14}}]}}),
        friendtalk({"card_message": {"title": "t", "choices": [{"text_message": {"text": "c" * 15}}]}}),
        "card.choice_title_length",
    ),
    ("carousel as text", friendtalk(carousel(1000)), friendtalk(carousel(1001)), "carousel.text_length"),
    ("location as text", friendtalk(location(1000)), friendtalk(location(1001)), "location.text_length"),
    (
        "media width",
        friendtalk({"media_message": {"url": gen("png", 500, 500, KB)}}),
        friendtalk({"media_message": {"url": gen("png", 499, 499, KB)}}),
        "media.width",
    ),
    (
        "media ratio 2:1",
        friendtalk({"media_message": {"url": gen("png", 1000, 500, KB)}}),
        friendtalk({"media_message": {"url": gen("png", 1002, 500, KB)}}),
        "media.ratio",
    ),
    (
        "media ratio 3:4",
        friendtalk({"media_message": {"url": gen("jpeg", 600, 800, KB)}}),
        friendtalk({"media_message": {"url": gen("jpeg", 600, 801, KB)}}),
        "media.ratio",
    ),
    (
        "media size",
        friendtalk({"media_message": {"url": gen("jpeg", 600, 600, 500 * KB)}}),
        friendtalk({"media_message": {"url": gen("jpeg", 600, 600, 500 * KB + 1)}}),
        "media.size",
    ),
    (
        "wide image size",
        friendtalk({"media_message": {"url": gen("jpeg", 800, 600, 2 * MB)}}),
        friendtalk({"media_message": {"url": gen("jpeg", 800, 600, 2 * MB + 1)}}),
        "media.size",
    ),
    (
        "KAKAOTALKCHAT media size",
        consultation({"media_message": {"url": gen("gif", 100, 900, 5 * MB)}}),
        consultation({"media_message": {"url": gen("gif", 100, 900, 5 * MB + 1)}}),
        "media.size",
    ),
    (
        "consultation text",
        consultation({"text_message": {"text": "x" * 1000}}),
        consultation({"text_message": {"text": "x" * 1001}}),
        "text.length",
    ),
]


@pytest.mark.parametrize(
    ("name", "at_limit", "past_limit", "rule"), AT_LIMIT_AND_PAST, ids=[case[0] for case in AT_LIMIT_AND_PAST]
)
def test_limit_holds_at_the_limit_and_breaks_one_past_it(
    name: str, at_limit: dict[str, Any], past_limit: dict[str, Any], rule: str
) -> None:
    assert rules_of(at_limit) == [], name
    assert rules_of(past_limit) == [rule], name


def test_violation_names_rule_path_limit_and_actual() -> None:
    [violation] = verdict_of(friendtalk({"text_message": {"text": "x" * 1001}})).violations
    assert violation.as_dict() == {
        "rule": "text.length",
        "path": "message.text_message.text",
        "limit": 1000,
        "actual": 1001,
        "message": "message.text_message.text is 1001 characters; KakaoTalk allows 1000",
    }


@pytest.mark.parametrize(
    ("request_", "rules"),
    [
        (friendtalk({"media_message": {"url": "https://img/ok.png"}}), []),
        (friendtalk({"media_message": {"url": "https://img/wide.jpg"}}), []),
        (friendtalk({"media_message": {"url": "https://img/anim.gif"}}), ["media.type"]),
        (friendtalk({"media_message": {"url": "https://img/photo.webp"}}), ["media.type"]),
        (friendtalk({"media_message": {"url": "https://img/text.txt"}}), ["media.type"]),
        (friendtalk({"media_message": {"url": "https://img/missing.png"}}), ["media.unreachable"]),
        (consultation({"media_message": {"url": "https://img/anim.gif"}}), []),
        (consultation({"media_message": {"url": gen("png", 100, 900, KB)}}), []),  # no dimension rule there
        (consultation({"media_message": {"url": "https://img/photo.webp"}}), ["media.type"]),
        (consultation(card(20, "https://img/anim.gif")), ["media.type"]),  # cards: png/jpg on either channel
        (friendtalk(card(20, gen("png", 499, 400, KB))), ["media.width"]),
    ],
)
def test_media_type_per_channel(request_: dict[str, Any], rules: list[str]) -> None:
    assert rules_of(request_) == rules


def test_media_type_violation_reports_what_was_found() -> None:
    [violation] = verdict_of(friendtalk({"media_message": {"url": "https://img/anim.gif"}})).violations
    assert (violation.limit, violation.actual) == ("png/jpg", "gif")


def test_without_probing_media_is_judged_by_its_name_and_warned_about() -> None:
    context = CheckContext(now=NOON)
    gif = check_request(friendtalk({"media_message": {"url": "https://cdn.example/a.GIF?x=1"}}), context)
    assert [v.rule for v in gif.violations] == ["media.type"]
    png = check_request(friendtalk({"media_message": {"url": "https://cdn.example/a.png"}}), context)
    assert png.accepted and [w.rule for w in png.warnings] == ["media.not_probed"]
    unprobed_card = check_request(friendtalk(card(200, "https://cdn.example/a.jpg")), context)
    assert unprobed_card.accepted
    assert {w.rule for w in unprobed_card.warnings} == {"media.not_probed", "card.text_length"}


def test_size_lower_bound_still_breaks_the_limit() -> None:
    big = MediaInfo(
        url="u",
        format="png",
        width=600,
        height=600,
        size_bytes=5 * MB + 1,
        size_is_lower_bound=True,
        content_type=None,
    )
    verdict = check_request(friendtalk({"media_message": {"url": "u"}}), CheckContext(now=NOON, media=lambda url: big))
    [violation] = verdict.violations
    assert violation.rule == "media.size" and "at least" in violation.message


@pytest.mark.parametrize(
    ("path", "value"),
    [("send_at", "9999-12-31T20:00:00+00:00"), ("send_at", 253_402_300_000_000),
     ("expires_at", "0001-01-01T00:00:00+09:00"), ("expires_at", "9999-12-31T23:59:59-14:00")],
)  # fmt: skip
def test_an_instant_at_the_end_of_the_calendar_is_a_named_violation(path: str, value: Any) -> None:
    verdict = check_request(friendtalk({"text_message": {"text": "hi"}}) | {path: value}, CheckContext(now=NOON))
    assert [(violation.rule, violation.path) for violation in verdict.violations] == [("instant_range", path)]
    assert verdict.not_before is None and verdict.body is None
