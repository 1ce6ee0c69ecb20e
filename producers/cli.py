"""The `kakao-dispatch` command line: `check` and `examples` here; the other commands register from their modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
import typer
from pydantic import ValidationError

from worker.media import MediaProber
from worker.settings import Settings
from worker.templates import TemplateRegistry, TemplateRegistryError
from worker.verdict import CheckContext, check_request

app = typer.Typer(
    name="kakao-dispatch",
    help="KakaoTalk message dispatch through the Sinch Conversation API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_FAILURE = 1  # the other commands: Redis, Sinch or configuration failed


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """One clear line on stderr and a non-zero exit: never a traceback for bad input."""
    typer.echo(f"kakao-dispatch: {message}", err=True)
    raise typer.Exit(code)


def redis_location(url: str) -> str:
    """The Redis URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def redis_errors(url: str, done: str = "") -> Iterator[None]:
    """Redis at `url` unreachable (or refusing) as one line and exit 1; `done` says what was done before."""
    try:
        yield
    except redis.RedisError as error:
        what = "unreachable" if isinstance(error, redis.ConnectionError | redis.TimeoutError) else "error"
        message = f"Redis at {redis_location(url)} {what}: {error}" + (f" ({done})" if done else "")
        fail(" ".join(message.split()), EXIT_FAILURE)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "setting"
        fail(f"bad environment setting {name}: {first['msg'].removeprefix('Value error, ')}")


def load_templates(path: Path | None) -> TemplateRegistry | None:
    if path is None:
        return None
    try:
        return TemplateRegistry.from_file(path)
    except TemplateRegistryError as error:
        fail(str(error))


def read_json_document(path: str) -> Any:
    """A JSON document from a file, or from standard input for `-`."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: cannot read: {error}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}")


def parse_instant(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO-8601 date and time, e.g. 2026-11-24T22:30:00+09:00")
    if moment.tzinfo is None:
        fail(f"{option} {text!r} needs a UTC offset, e.g. +09:00 or Z")
    return moment


@app.command()
def check(
    file: Annotated[str, typer.Argument(help="Send request JSON file (DESIGN §6), or - for standard input.")],
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate as if now were this ISO-8601 instant (with offset).")
    ] = None,
    templates: Annotated[
        Path | None,
        typer.Option("--templates", help="Template registry JSON file [default: $KAKAO_DISPATCH_TEMPLATES]."),
    ] = None,
    no_media_probe: Annotated[
        bool, typer.Option("--no-media-probe", help="Do not fetch media URLs; judge media by file name only.")
    ] = False,
) -> None:
    """Print the verdict on one send request as JSON; exit 0 accepted, 1 rejected, 2 unreadable input."""
    settings = load_settings()
    now = parse_instant(at, "--at") if at else datetime.now(UTC)
    registry = load_templates(templates or settings.templates_path)
    document = read_json_document(file)
    prober = None if no_media_probe else MediaProber()
    try:
        verdict = check_request(
            document,
            CheckContext(
                now=now,
                window=settings.friendtalk_window,
                templates=registry,
                media=prober.probe if prober else None,
                app_id=settings.sinch_app_id or "SINCH_APP_ID",
            ),
        )
    finally:
        if prober is not None:
            prober.close()
    typer.echo(json.dumps(verdict.as_dict(), ensure_ascii=False, indent=2))
    raise typer.Exit(EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED)


@app.command()
def examples() -> None:
    """Check every example request (each message type, valid and invalid) and show the verdicts in a table."""
    from producers.demo import run_examples

    raise typer.Exit(run_examples())


def _register_commands() -> None:
    """Commands that live beside the modules they drive."""
    from producers.gateway import register as register_gateway
    from producers.operator_commands import register as register_operator
    from producers.sandbox import register as register_sandbox
    from producers.setup_commands import register as register_setup
    from producers.story import register as register_demo
    from simulator.cli import register as register_simulator

    register_gateway(app)
    register_simulator(app)
    register_setup(app)
    register_operator(app)
    register_sandbox(app)
    register_demo(app)


_register_commands()


def main() -> None:
    app()
