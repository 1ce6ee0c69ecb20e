"""Worker liveness: a consumer bootstep touches a file while the worker consumes, and the probe that checks it.

With `KAKAO_DISPATCH_HEARTBEAT_FILE` set, the `Heartbeat` bootstep touches that file as soon as the
worker's consumer is connected and consuming, then every `KAKAO_DISPATCH_HEARTBEAT_INTERVAL` seconds
from the consumer's event loop. Celery stops consumer bootsteps when the broker connection is lost
and starts them again once it is back, so the file goes stale when the event loop hangs or the
worker cannot consume; it is removed at shutdown. Without the setting the bootstep is not loaded.

    python -m worker.heartbeat --max-age 60      # the liveness probe: exit 0 fresh, 1 with one line otherwise

Why not `celery inspect ping` (reference/celery-redis.md §8): each ping imports the app and opens a
broker connection, its one-second reply timeout is easily missed, and it fails during a broker
outage, when restarting the worker cannot help. Reading one file's modification time costs nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from celery import bootsteps
from pydantic import ValidationError

from worker.settings import get_settings

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 60.0


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Consumer bootstep: touches the heartbeat file from the event loop while the consumer runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)  # start once the task consumer is consuming

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        settings = get_settings()
        self.path: Path | None = settings.heartbeat_file
        self.interval = settings.heartbeat_interval
        self.timer_entry: Any = None
        self._failing = False

    def include_if(self, parent: Any) -> bool:
        return self.path is not None

    def start(self, consumer: Any) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.touch()
        self.timer_entry = consumer.timer.call_repeatedly(self.interval, self.touch, priority=10)
        logger.info("heartbeat: touching %s every %g s", self.path, self.interval)

    def stop(self, consumer: Any) -> None:
        """The consumer stops (connection lost, or shutdown): no more touches until it starts again."""
        if self.timer_entry is not None:
            consumer.timer.cancel(self.timer_entry)
            self.timer_entry = None

    def shutdown(self, consumer: Any) -> None:
        self.stop(consumer)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def touch(self) -> None:
        assert self.path is not None
        try:
            self.path.touch()
        except OSError as error:  # the probe will fail; say why once, not every interval
            if not self._failing:
                logger.error("heartbeat: cannot touch %s: %s", self.path, error)
            self._failing = True
        else:
            self._failing = False


def check(path: Path, max_age: float, now: float | None = None) -> str | None:
    """None when `path` was modified within `max_age` seconds, else the one-line reason it is not."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return f"heartbeat file {path} does not exist: the worker is not consuming"
    except OSError as error:
        return f"heartbeat file {path} cannot be read: {error.strerror or error}"
    age = (time.time() if now is None else now) - modified
    if age > max_age:
        return f"heartbeat file {path} is {age:.0f} s old (limit {max_age:g} s): the worker's event loop is stuck"
    return None


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.heartbeat",
        description="Exit 0 when the worker touched its heartbeat file recently, else 1 with the reason.",
    )
    parser.add_argument(
        "--max-age", type=float, default=DEFAULT_MAX_AGE_SECONDS, help="seconds the file may be old (default 60)"
    )
    parser.add_argument("--file", type=Path, help="the heartbeat file (default $KAKAO_DISPATCH_HEARTBEAT_FILE)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The probe: 0 when the heartbeat file is fresh, else 1 and one line on stderr."""
    arguments = argument_parser().parse_args(argv)
    path: Path | None = arguments.file
    if path is None:
        try:
            path = get_settings().heartbeat_file
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            name = str(first["loc"][0]) if first["loc"] else "setting"
            print(f"bad environment setting {name}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
            return 1
    if path is None:
        print("no heartbeat file: set KAKAO_DISPATCH_HEARTBEAT_FILE or give --file", file=sys.stderr)
        return 1
    reason = check(path, arguments.max_age)
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
