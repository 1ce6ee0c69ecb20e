"""`kakao-dispatch examples`: the verdict on every example request, served media included, in one table."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console
from rich.table import Table

from worker.media import MediaProber
from worker.sending_window import FRIENDTALK_HOURS, SendingWindow
from worker.templates import TemplateRegistry
from worker.verdict import CheckContext, check_request

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_IMAGE_NAME = re.compile(r"^/[\w.-]*?-(\d+)x(\d+)\.(png|jpg|gif)$")
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF"}


class _ImageHandler(BaseHTTPRequestHandler):
    """Serves `/<name>-<W>x<H>.<png|jpg|gif>` as a generated image of that size and format."""

    def do_GET(self) -> None:
        match = _IMAGE_NAME.match(self.path)
        if not match:
            self.send_error(404)
            return
        width, height, extension = int(match.group(1)), int(match.group(2)), match.group(3)
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (250, 200, 40)).save(buffer, _PIL_FORMATS[extension])
        body = buffer.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", f"image/{'jpeg' if extension == 'jpg' else extension}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class MediaServer:
    """A local image server so the media rules run on real downloads without leaving the machine."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve_demo_media() -> Iterator[str]:
    server = MediaServer().start()
    try:
        yield server.url
    finally:
        server.stop()


def _outcome_matches(case: dict[str, Any], verdict: dict[str, Any]) -> bool:
    if verdict["verdict"] != case["expect"]:
        return False
    if "type" in case and verdict["type"] != case["type"]:
        return False
    if "not_before" in case and verdict["not_before"] != case["not_before"]:
        return False
    found = {violation["rule"] for violation in verdict["violations"]}
    return set(case.get("rules", [])) <= found


def run_examples(console: Console | None = None) -> int:
    """Check each example; 0 when every verdict is the expected one."""
    console = console or Console()
    cases = json.loads((EXAMPLES / "demo_cases.json").read_text(encoding="utf-8"))
    registry = TemplateRegistry.from_file(EXAMPLES / "templates.json")
    table = Table(title="kakao-dispatch check: example requests", show_lines=False)
    for column in (
        "request",
        "verdict",
        "type",
        "channel",
        "not before (KST)",
        "violations / warnings",
        "ok",
    ):
        table.add_column(column)
    failures = 0
    with serve_demo_media() as media_base, MediaProber() as prober:
        for case in cases:
            text = (EXAMPLES / "requests" / case["file"]).read_text(encoding="utf-8")
            document = json.loads(text.replace("$MEDIA", media_base))
            context = CheckContext(
                now=datetime.fromisoformat(case["at"]),
                window=SendingWindow.parse(FRIENDTALK_HOURS),
                templates=registry,
                media=prober.probe,
                app_id="demo-app",
            )
            verdict = check_request(document, context).as_dict()
            ok = _outcome_matches(case, verdict)
            failures += not ok
            notes = [f"[red]{v['rule']}[/red]: {v['message']}" for v in verdict["violations"]]
            notes += [f"[yellow]{w['rule']}[/yellow]" for w in verdict["warnings"]]
            table.add_row(
                case["file"].removesuffix(".json"),
                "[green]accepted[/green]" if verdict["verdict"] == "accepted" else "[red]rejected[/red]",
                verdict["type"] or "-",
                verdict["channel"] or "-",
                verdict["not_before"] or "now",
                "\n".join(notes) or "-",
                "✔" if ok else "[bold red]✘[/bold red]",
            )
    console.print(table)
    console.print(
        f"{len(cases) - failures} of {len(cases)} verdicts as expected."
        + ("" if not failures else " [bold red]Some verdicts differ from the expected ones.[/bold red]")
    )
    return 0 if failures == 0 else 1
