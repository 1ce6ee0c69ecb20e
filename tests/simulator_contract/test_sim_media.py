"""Media as KakaoTalk checks it: fetched from a local server, type and dimensions read with Pillow, cached."""

from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest
from sim_client import APP, SimClient, friendtalk
from sim_servers import MediaServer, Resource, image_bytes

KB, MB = 1024, 1024 * 1024
_paths = itertools.count()


def serve(media: MediaServer, resource: Resource, suffix: str = ".png") -> str:
    """A fresh URL per call, so the simulator's probe cache never answers for another test."""
    return media.add(f"/media/{next(_paths)}{suffix}", resource)


def image_url(media: MediaServer, width: int, height: int, image_format: str = "PNG", size: int | None = None) -> str:
    content_type = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}[image_format]
    return serve(media, Resource(image_bytes(width, height, image_format, size), content_type))


def media_message(url: str) -> dict[str, Any]:
    return {"media_message": {"url": url}}


def reason_of(sim: SimClient, body: dict[str, Any]) -> dict[str, Any] | None:
    outcome, reason = sim.outcome(body)
    assert (outcome == "DELIVERED") == (reason is None)
    return reason


def consultation(sim: SimClient, message: dict[str, Any]) -> dict[str, Any]:
    contact_id = sim.inbound(text="사진 보내주세요")["contact_id"]
    return {"app_id": APP, "recipient": {"contact_id": contact_id}, "message": message}


@pytest.mark.parametrize(
    ("width", "height", "image_format"),
    [(800, 600, "PNG"), (800, 600, "JPEG"), (500, 250, "PNG"), (600, 800, "PNG"), (1000, 500, "JPEG")],
)
def test_kakaotalk_accepts_png_and_jpg_within_width_and_ratio(
    sim: SimClient, media: MediaServer, width: int, height: int, image_format: str
) -> None:
    assert reason_of(sim, friendtalk(media_message(image_url(media, width, height, image_format)))) is None


def test_gif_is_refused_on_kakaotalk(sim: SimClient, media: MediaServer) -> None:
    reason = reason_of(sim, friendtalk(media_message(image_url(media, 800, 600, "GIF"))))
    assert reason is not None and reason["code"] == "MEDIA_TYPE_UNSUPPORTED" and "gif" in reason["description"]


@pytest.mark.parametrize(
    ("width", "height"),
    [(499, 300), (1001, 500), (500, 667)],  # too narrow, wider than 2:1, taller than 3:4
)
def test_bad_dimensions_are_rejected_as_attachment(sim: SimClient, media: MediaServer, width: int, height: int) -> None:
    reason = reason_of(sim, friendtalk(media_message(image_url(media, width, height))))
    assert reason is not None
    assert (reason["code"], reason["sub_code"]) == ("MEDIA_TYPE_UNSUPPORTED", "ATTACHMENT_REJECTED")


def test_kakaotalk_size_limit_is_500_kb(sim: SimClient, media: MediaServer) -> None:
    assert reason_of(sim, friendtalk(media_message(image_url(media, 1000, 750, size=500 * KB)))) is None
    reason = reason_of(sim, friendtalk(media_message(image_url(media, 1000, 750, size=500 * KB + 1))))
    assert reason is not None and reason["code"] == "MEDIA_TOO_LARGE" and "500 KB" in reason["description"]


def test_an_800x600_image_may_weigh_up_to_2_mb(sim: SimClient, media: MediaServer) -> None:
    assert reason_of(sim, friendtalk(media_message(image_url(media, 800, 600, size=2 * MB)))) is None
    reason = reason_of(sim, friendtalk(media_message(image_url(media, 800, 600, size=2 * MB + 1))))
    assert reason is not None and reason["code"] == "MEDIA_TOO_LARGE" and "2.0 MB" in reason["description"]


def test_kakaotalkchat_accepts_gif_and_any_dimensions_up_to_5_mb(sim: SimClient, media: MediaServer) -> None:
    gif = image_url(media, 120, 900, "GIF", size=5 * MB)
    assert reason_of(sim, consultation(sim, media_message(gif))) is None
    too_big = image_url(media, 120, 900, "GIF", size=5 * MB + 1)
    reason = reason_of(sim, consultation(sim, media_message(too_big)))
    assert reason is not None and reason["code"] == "MEDIA_TOO_LARGE"


def test_size_is_measured_when_the_server_sends_no_content_length(sim: SimClient, media: MediaServer) -> None:
    unsized = Resource(image_bytes(800, 600, size=6 * MB), send_length=False)
    reason = reason_of(sim, consultation(sim, media_message(serve(media, unsized))))
    assert reason is not None and reason["code"] == "MEDIA_TOO_LARGE"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_media_answering_an_error_is_not_reachable(sim: SimClient, media: MediaServer, status: int) -> None:
    url = serve(media, Resource(b"oops", "text/plain", status))
    reason = reason_of(sim, friendtalk(media_message(url)))
    assert reason is not None and reason["code"] == "MEDIA_NOT_REACHABLE" and str(status) in reason["description"]


def test_media_on_a_closed_port_is_not_reachable(sim: SimClient) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    reason = reason_of(sim, friendtalk(media_message(f"http://127.0.0.1:{port}/gone.png")))
    assert reason is not None and reason["code"] == "MEDIA_NOT_REACHABLE"


def test_a_file_that_is_not_an_image_is_unsupported_undetermined(sim: SimClient, media: MediaServer) -> None:
    url = serve(media, Resource(b"%PDF-1.7 not an image", "application/pdf"), ".pdf")
    reason = reason_of(sim, friendtalk(media_message(url)))
    assert reason is not None
    assert (reason["code"], reason["sub_code"]) == ("MEDIA_TYPE_UNSUPPORTED", "MEDIA_TYPE_UNDETERMINED")


def test_probes_are_cached_per_url(sim: SimClient, media: MediaServer) -> None:
    url = image_url(media, 800, 600)
    for _ in range(3):
        assert reason_of(sim, friendtalk(media_message(url))) is None
    assert media.hits[url.removeprefix(media.url)] == 1


# Cards ------------------------------------------------------------------------------------------


def card(url: str, title: str, description: str = "", choices: int = 0) -> dict[str, Any]:
    buttons = [{"url_message": {"title": f"보기 {index}", "url": "https://e.com"}} for index in range(choices)]
    content: dict[str, Any] = {"title": title, "description": description, "media_message": {"url": url}}
    if buttons:
        content["choices"] = buttons
    return {"card_message": content}


def test_card_with_media_title_and_description_up_to_400(sim: SimClient, media: MediaServer) -> None:
    url = image_url(media, 1000, 750)
    assert reason_of(sim, friendtalk(card(url, "가" * 200, "나" * 200))) is None
    reason = reason_of(sim, friendtalk(card(url, "가" * 200, "나" * 201)))
    assert reason is not None and reason["code"] == "BAD_REQUEST" and "400" in reason["description"]


def test_card_with_a_wide_image_up_to_76_and_one_choice(sim: SimClient, media: MediaServer) -> None:
    wide = image_url(media, 800, 600)
    assert reason_of(sim, friendtalk(card(wide, "가" * 40, "나" * 36, choices=1))) is None
    too_long = reason_of(sim, friendtalk(card(wide, "가" * 40, "나" * 37)))
    assert too_long is not None and too_long["code"] == "BAD_REQUEST" and "76" in too_long["description"]
    two_choices = reason_of(sim, friendtalk(card(wide, "겨울", choices=2)))
    assert two_choices is not None and "only one choice" in two_choices["description"]


def test_card_media_must_be_png_or_jpg_even_on_kakaotalkchat(sim: SimClient, media: MediaServer) -> None:
    gif = image_url(media, 800, 600, "GIF")
    reason = reason_of(sim, consultation(sim, card(gif, "겨울")))
    assert reason is not None and reason["code"] == "MEDIA_TYPE_UNSUPPORTED"
