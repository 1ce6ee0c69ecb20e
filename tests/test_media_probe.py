"""The media probe against a real local HTTP server: what it learns, how little it reads, when it gives up."""

from __future__ import annotations

import io
import random
import shutil
import ssl
import struct
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from imageserver import HUGE_BYTES, ImageServer, closed_port
from PIL import Image

from worker.media import MAX_REDIRECTS, MediaInfo, MediaProber, MediaUnreachable, probe_media

KB = 1024
MB = 1024 * KB
HEADER_BYTES = 64 * KB


@dataclass(frozen=True)
class Served:
    data: bytes
    content_type: str
    format: str
    width: int
    height: int


def noise(width: int, height: int, seed: int) -> Image.Image:
    """Random pixels: they do not compress, so the file is as large as the image."""
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def gradient(width: int, height: int) -> Image.Image:
    return Image.radial_gradient("L").resize((width, height)).convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height: what Pillow calls a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def make_images() -> dict[str, Served]:
    camera = gradient(640, 480)
    images = {
        "photo.png": Served(encode(noise(800, 600, 1), "PNG"), "image/png", "png", 800, 600),
        "photo.jpg": Served(encode(noise(800, 600, 2), "JPEG"), "image/jpeg", "jpeg", 800, 600),
        "anim.gif": Served(encode(Image.effect_noise((800, 600), 64), "GIF"), "image/gif", "gif", 800, 600),
        # Noise makes it larger than the 64 KB range, and Pillow needs a whole WebP file to identify it.
        "photo.webp": Served(encode(noise(800, 600, 3), "WEBP"), "image/webp", "webp", 800, 600),
        "small.webp": Served(encode(gradient(800, 600), "WEBP"), "image/webp", "webp", 800, 600),
        "photo.bmp": Served(encode(gradient(800, 600), "BMP"), "image/bmp", "bmp", 800, 600),
        "wide-2to1.png": Served(encode(gradient(500, 250), "PNG"), "image/png", "png", 500, 250),
        "tall-3to4.jpg": Served(encode(gradient(600, 800), "JPEG"), "image/jpeg", "jpeg", 600, 800),
        "narrow-499.png": Served(encode(gradient(499, 600), "PNG"), "image/png", "png", 499, 600),
        "600kb.jpg": Served(
            encode(noise(640, 480, 4), "JPEG", quality=92, subsampling=0), "image/jpeg", "jpeg", 640, 480
        ),
        "2.5mb.png": Served(encode(noise(1080, 809, 5), "PNG"), "image/png", "png", 1080, 809),
        # A phone camera's JPEG with a multi-picture block: Pillow says "MPO", the file is a jpg.
        "camera.jpg": Served(
            encode(camera, "MPO", save_all=True, append_images=[camera.rotate(90)]), "image/jpeg", "jpeg", 640, 480
        ),
        "bomb.png": Served(png_claiming(30_000, 30_000), "image/png", "png", 30_000, 30_000),
        "large.png": Served(png_claiming(10_000, 10_000), "image/png", "png", 10_000, 10_000),
    }
    assert 550 * KB < len(images["600kb.jpg"].data) < 650 * KB
    assert 2.4 * MB < len(images["2.5mb.png"].data) < 2.6 * MB
    assert len(images["photo.webp"].data) > HEADER_BYTES > len(images["small.webp"].data)
    return images


IMAGES = make_images()
NOTES = b"these are not the pixels you are looking for\n" * 40


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    files = {name: (served.data, served.content_type) for name, served in IMAGES.items()}
    files["notes.txt"] = (NOTES, "text/plain; charset=utf-8")
    with ImageServer(files) as running:
        yield running


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server is local: a developer's proxy settings must not route the probes elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prober() -> Iterator[MediaProber]:
    with MediaProber() as fresh:
        yield fresh


def expected(url: str, name: str) -> MediaInfo:
    served = IMAGES[name]
    return MediaInfo(url, served.format, served.width, served.height, len(served.data), False, served.content_type)


def unreachable(prober: MediaProber, url: str) -> str:
    with pytest.raises(MediaUnreachable) as caught:
        prober.probe(url)
    return caught.value.reason


def timed_unreachable(prober: MediaProber, url: str) -> tuple[str, float]:
    """Why the probe failed, and how many seconds it took to give up."""
    started = time.monotonic()
    reason = unreachable(prober, url)
    return reason, time.monotonic() - started


# What it learns.


@pytest.mark.parametrize("route", ["range", "plain", "chunked"])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_format_dimensions_and_exact_size_whatever_the_server_does(
    server: ImageServer, prober: MediaProber, route: str, name: str
) -> None:
    url = server.url(f"/{route}/{name}")
    assert prober.probe(url) == expected(url, name)


def test_a_text_file_is_not_an_image(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/range/notes.txt")
    assert prober.probe(url) == MediaInfo(url, None, None, None, len(NOTES), False, "text/plain")


# How little it reads.


def test_a_server_honouring_range_sends_only_the_header_bytes(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/range/2.5mb.png?case=range")
    assert prober.probe(url) == expected(url, "2.5mb.png")
    [hit] = server.requests_to(url)
    assert hit.range == f"bytes=0-{HEADER_BYTES - 1}"
    assert hit.done.wait(5)
    assert hit.body_bytes == HEADER_BYTES


def test_a_range_too_short_to_identify_is_followed_by_a_whole_get(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/range/photo.webp?case=webp")
    assert prober.probe(url) == expected(url, "photo.webp")
    assert [hit.range for hit in server.requests_to(url)] == [f"bytes=0-{HEADER_BYTES - 1}", None]


def test_an_unknown_total_in_content_range_falls_back_to_the_whole_resource(
    server: ImageServer, prober: MediaProber
) -> None:
    url = server.url("/unknown-total/photo.jpg")
    assert prober.probe(url) == expected(url, "photo.jpg")
    assert [hit.range for hit in server.requests_to(url)] == [f"bytes=0-{HEADER_BYTES - 1}", None]


def test_a_server_ignoring_range_is_read_only_as_far_as_needed(server: ImageServer) -> None:
    url = server.url("/plain/2.5mb.png?case=ignores-range")
    with MediaProber(max_bytes=MB) as prober:  # the body is larger than what the prober may hold
        assert prober.probe(url) == expected(url, "2.5mb.png")  # the size is Content-Length's
    assert server.count(url) == 1


def test_a_huge_body_without_length_is_read_to_max_bytes_and_its_size_is_a_lower_bound(
    server: ImageServer, prober: MediaProber
) -> None:
    url = server.url("/huge/photo.png")
    max_bytes = 5 * MB + 1
    info = prober.probe(url)
    assert (info.format, info.width, info.height, info.content_type) == ("png", 800, 600, "image/png")
    assert info.size_is_lower_bound
    assert info.size_bytes is not None
    assert max_bytes <= info.size_bytes < max_bytes + 64 * KB  # one network read past the cap at most
    [hit] = server.requests_to(url)
    assert hit.done.wait(5)
    assert hit.body_bytes < HUGE_BYTES / 2


def test_a_huge_body_that_is_no_image_holds_at_most_max_bytes(server: ImageServer) -> None:
    url = server.url("/huge/notes.txt")
    max_bytes = 2 * MB
    with MediaProber(max_bytes=max_bytes) as prober:
        prober.probe(server.url("/range/notes.txt?case=warm-up"))  # Pillow imports its plugins on first use
        tracemalloc.start()
        try:
            info = prober.probe(url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (info.format, info.width, info.height) == (None, None, None)
    assert info.size_is_lower_bound
    assert info.size_bytes is not None and info.size_bytes >= max_bytes
    assert peak < 1.5 * max_bytes


# When it gives up.


@pytest.mark.parametrize("status", [404, 500])
def test_an_http_error_status_is_unreachable(server: ImageServer, prober: MediaProber, status: int) -> None:
    assert unreachable(prober, server.url(f"/status/{status}")) == f"HTTP {status}"


def test_a_trickling_body_is_cut_off_by_the_deadline(server: ImageServer) -> None:
    with MediaProber(timeout=1.0) as prober:
        reason, elapsed = timed_unreachable(prober, server.url("/trickle"))
    assert reason == "timed out after 1.0 s"
    assert 1.0 <= elapsed < 1.5


def test_a_silent_server_is_cut_off_at_the_deadline_not_at_a_read_timeout(server: ImageServer) -> None:
    # Headers come after 0.9 s, then nothing: a read timeout alone would give up at 1.9 s.
    with MediaProber(timeout=1.0) as prober:
        reason, elapsed = timed_unreachable(prober, server.url("/stall"))
    assert reason == "timed out after 1.0 s"
    assert 1.0 <= elapsed < 1.5


def test_trickling_headers_are_cut_off_by_the_deadline(server: ImageServer) -> None:
    with MediaProber(timeout=1.0) as prober:
        reason, elapsed = timed_unreachable(prober, server.url("/slow-headers"))
    assert reason == "timed out after 1.0 s"
    assert 1.0 <= elapsed < 1.5


def test_redirects_are_followed_up_to_the_limit(server: ImageServer, prober: MediaProber) -> None:
    url = server.url(f"/redirect/{MAX_REDIRECTS}/range/photo.png")
    assert prober.probe(url) == expected(url, "photo.png")
    too_many = server.url(f"/redirect/{MAX_REDIRECTS + 1}/range/photo.png")
    assert unreachable(prober, too_many) == f"more than {MAX_REDIRECTS} redirects"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "redirected to a URL that is not http(s)"),
        ("http://127.0.0.1:99999/banner.png", "redirected to an invalid URL"),
    ],
)
def test_a_redirect_to_a_url_that_cannot_be_fetched_is_refused(
    server: ImageServer, prober: MediaProber, location: str, reason: str
) -> None:
    assert unreachable(prober, server.url(f"/redirect-to?location={location}")) == reason


def test_a_closed_port_is_connection_refused(prober: MediaProber) -> None:
    assert unreachable(prober, f"http://127.0.0.1:{closed_port()}/banner.png") == "connection refused"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/banner.png", "not an http(s) URL"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("data:image/png;base64,iVBORw0KGgo=", "not an http(s) URL"),
        ("banner.png", "not an http(s) URL"),
        ("http://", "invalid URL"),
        ("http://[::1/banner.png", "invalid URL"),
        ("http://example.com:99999/banner.png", "invalid URL"),
    ],
)
def test_urls_that_cannot_be_fetched_are_refused_before_any_request(url: str, reason: str) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: pytest.fail(f"requested {request.url}")))
    with client, MediaProber(client) as prober:
        assert unreachable(prober, url) == reason


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    assert shutil.which("openssl"), "the HTTPS probe tests make their certificate with the openssl command"
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1"
    subprocess.run(
        [*command.split(), "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def test_https_is_probed_and_cut_off_at_the_deadline_too(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    files = {"photo.png": (IMAGES["photo.png"].data, "image/png")}
    with (
        ImageServer(files, tls=server_side) as server,
        httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client,
        MediaProber(client, timeout=1.0) as prober,
    ):
        url = server.url("/range/photo.png")
        assert url.startswith("https://")
        assert prober.probe(url) == expected(url, "photo.png")
        for path in ("/stall", "/slow-headers"):
            reason, elapsed = timed_unreachable(prober, server.url(path))
            assert reason == "timed out after 1.0 s"
            assert 1.0 <= elapsed < 1.5


# The cache.


def test_a_second_probe_of_a_url_makes_no_request(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/range/photo.jpg?case=cache")
    assert prober.probe(url) == prober.probe(url) == expected(url, "photo.jpg")
    assert server.count(url) == 1


def test_a_cached_answer_expires_after_the_ttl(server: ImageServer) -> None:
    now = [0.0]
    url = server.url("/range/photo.jpg?case=ttl")
    with MediaProber(cache_ttl=600, clock=lambda: now[0]) as prober:
        prober.probe(url)
        now[0] = 599.0
        prober.probe(url)
        assert server.count(url) == 1
        now[0] = 600.0
        prober.probe(url)
        assert server.count(url) == 2


def test_a_failure_is_remembered_for_a_shorter_time(server: ImageServer) -> None:
    now = [0.0]
    url = server.url("/flaky/photo.png?case=failure-ttl")  # 503 the first time, then the image
    with MediaProber(clock=lambda: now[0]) as prober:
        assert unreachable(prober, url) == "HTTP 503"
        now[0] = 29.0
        assert unreachable(prober, url) == "HTTP 503"
        assert server.count(url) == 1
        now[0] = 30.0
        assert prober.probe(url) == expected(url, "photo.png")
        assert server.count(url) == 2


def test_the_cache_keeps_the_most_recently_used_urls(server: ImageServer) -> None:
    first, second, third = (server.url(f"/range/small.webp?case=lru-{n}") for n in range(3))
    with MediaProber(cache_size=2) as prober:
        for url in (first, second, third, first):
            prober.probe(url)
        assert [server.count(url) for url in (first, second, third)] == [2, 1, 1]
        prober.probe(third)
        assert server.count(third) == 1


# Threads.


def run_in_threads(count: int, probe: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = probe(index)
        except MediaUnreachable as error:
            results[index] = error.reason

    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_threads_probing_one_url_share_one_request(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/delay/0.3/range/photo.png?case=threads")
    results = run_in_threads(8, lambda _: prober.probe(url))
    assert results == [expected(url, "photo.png")] * 8
    assert server.count(url) == 1


def test_threads_probing_one_failing_url_share_one_failure(server: ImageServer, prober: MediaProber) -> None:
    url = server.url("/delay/0.3/status/500?case=threads")
    assert run_in_threads(8, lambda _: prober.probe(url)) == ["HTTP 500"] * 8
    assert server.count(url) == 1


def test_threads_probing_different_urls_each_get_their_own(server: ImageServer, prober: MediaProber) -> None:
    names = sorted(IMAGES)
    urls = [server.url(f"/{('range', 'plain', 'chunked')[n % 3]}/{name}?case=many") for n, name in enumerate(names)]
    results = run_in_threads(len(urls), lambda index: prober.probe(urls[index]))
    assert results == [expected(url, name) for url, name in zip(urls, names, strict=True)]


# The object.


def test_a_client_given_to_the_prober_is_left_open(server: ImageServer) -> None:
    with httpx.Client() as client:
        with MediaProber(client) as prober:
            url = server.url("/range/tall-3to4.jpg?case=own-client")
            assert prober.probe(url) == expected(url, "tall-3to4.jpg")
        assert not client.is_closed
        with pytest.raises(RuntimeError, match="closed"):
            prober.probe(url)


@pytest.mark.parametrize(
    "settings",
    [{"timeout": 0}, {"header_bytes": 0}, {"header_bytes": 2 * MB, "max_bytes": MB}, {"cache_size": -1}],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MediaProber(**settings)  # type: ignore[arg-type]


def test_probe_media_uses_a_default_prober(server: ImageServer) -> None:
    url = server.url("/range/wide-2to1.png?case=default")
    assert probe_media(url) == expected(url, "wide-2to1.png")
