"""Log lines of the gateway, the workers and beat: one JSON object per line, MSISDNs masked, secrets redacted.

A line is `{"time", "level", "logger", "message", ...}`; while a Celery task handles a job (dispatch,
job events) every line also carries `job_id`, and `task`/`task_id` name the task. Fields a caller
passes with `extra=` are kept. `KAKAO_DISPATCH_LOG_FORMAT=text` gives plain lines instead, and
`KAKAO_DISPATCH_LOG_LEVEL` sets the level. Whatever the format, a filter on the handler masks phone
numbers (+82 …, 010-…) and blanks the configured secrets (Sinch key secret, webhook and callback
secrets, API keys) and any `Bearer …` token or `Authorization` header value before a line is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

from celery.signals import setup_logging, task_postrun, task_prerun

from worker.recipients import mask_msisdn

FORMAT_VARIABLE = "KAKAO_DISPATCH_LOG_FORMAT"
LEVEL_VARIABLE = "KAKAO_DISPATCH_LOG_LEVEL"
FORMATS = ("json", "text")
#: Settings whose values never appear in a log line (KAKAO_DISPATCH_API_KEYS is a comma-separated list).
SECRET_VARIABLES = (
    "SINCH_KEY_SECRET",
    "SINCH_WEBHOOK_SECRET",
    "KAKAO_DISPATCH_CALLBACK_SECRET",
    "KAKAO_DISPATCH_API_KEYS",
)
#: Tasks whose first argument is the job they handle.
JOB_TASKS = frozenset({"kakao_dispatch.dispatch_job", "kakao_dispatch.deliver_job_event"})
REDACTED = "***"

log = logging.getLogger(__name__)

_job_id: ContextVar[str | None] = ContextVar("kakao_dispatch_job_id", default=None)
_task: ContextVar[tuple[str, str] | None] = ContextVar("kakao_dispatch_task", default=None)

#: +82 numbers (with or without the +, e.g. Sinch's identities) and Korean mobile numbers (010 …),
#: with spaces, dots or dashes; never inside a longer run of digits or letters (ids, timestamps).
_PHONE = re.compile(
    r"(?<![0-9A-Za-z_+])(?:\+82[-. ]?0?\d{1,2}|82[-. ]?0?1[016789]|01[016789])[-. ]?\d{3,4}[-. ]?\d{4}(?![0-9A-Za-z_])"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_AUTHORIZATION = re.compile(r"""(?i)\b((?:proxy-)?authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]+""")
_TOKEN_FIELD = re.compile(r"""(?i)(["']?(?:access_token|client_secret|secret)["']?\s*[:=]\s*["']?)[^"'\s,}&]+""")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"}
)


# --- the job a line belongs to ---------------------------------------------------------------------


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Every line logged inside the block carries `job_id`."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


_task_tokens: dict[str, tuple[Token[str | None], Token[tuple[str, str] | None]]] = {}


def _enter_task(task_id: str = "", task: Any = None, args: Any = None, **_: object) -> None:
    name = str(getattr(task, "name", ""))
    first = args[0] if isinstance(args, list | tuple) and args else None
    job_id = first if name in JOB_TASKS and isinstance(first, str) else None
    _task_tokens[task_id] = (_job_id.set(job_id), _task.set((name, task_id)))


def _leave_task(task_id: str = "", **_: object) -> None:
    tokens = _task_tokens.pop(task_id, None)
    if tokens is not None:
        _job_id.reset(tokens[0])
        _task.reset(tokens[1])


task_prerun.connect(_enter_task)
task_postrun.connect(_leave_task)


# --- masking and redaction -------------------------------------------------------------------------


def mask_phone_numbers(text: str) -> str:
    """Every phone number in free text masked as `recipients.mask_msisdn` masks one (`010******5678`)."""
    return _PHONE.sub(lambda match: mask_msisdn(match.group(0)), text)


def configured_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values set in the environment (upper- or lower-case names, as the settings read them)."""
    environ = os.environ if environ is None else environ
    values: list[str] = []
    for name in SECRET_VARIABLES:
        raw = environ.get(name) or environ.get(name.lower()) or ""
        parts = raw.split(",") if name == "KAKAO_DISPATCH_API_KEYS" else [raw]
        values.extend(part.strip() for part in parts if part.strip())
    return values


class RedactingFilter(logging.Filter):
    """Masks phone numbers and blanks secrets in a record's message, exception text and extra fields.

    Put on a handler, it cleans every record the handler writes, from any logger. Secrets shorter
    than 4 characters are not looked for (they would blank unrelated text, and are no secret).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({secret for secret in secrets if len(secret) >= 4}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _BEARER.sub(r"\1 " + REDACTED, text)
        text = _AUTHORIZATION.sub(r"\g<1>" + REDACTED, text)
        text = _TOKEN_FIELD.sub(r"\g<1>" + REDACTED, text)
        return mask_phone_numbers(text)

    def clean_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, Mapping):
            return {key: self.clean_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean_value(item) for item in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.clean(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not turn into an exception at the call site
            message = f"{record.msg!r} (log arguments that do not fit: {record.args!r})"
        record.msg, record.args = self.clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        for name in extra_fields(record):
            setattr(record, name, self.clean_value(getattr(record, name)))
        return True


def extra_fields(record: logging.LogRecord) -> list[str]:
    return [name for name in record.__dict__ if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")]


# --- formats ---------------------------------------------------------------------------------------


def _context(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    job_id = getattr(record, "job_id", None) or _job_id.get()
    if job_id:
        fields["job_id"] = job_id
    task = _task.get()
    if task is not None:
        fields["task"], fields["task_id"] = task
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, job_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        for name in extra_fields(record):
            document.setdefault(name, getattr(record, name))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = record.stack_info
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-11-24T01:02:03.456Z INFO worker.tasks: message [job_…]` for terminals and one-liners."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = _context(record).get("job_id")
        return f"{line} [{job_id}]" if job_id else line


# --- configuration ---------------------------------------------------------------------------------


def chosen_format(default: str, environ: Mapping[str, str] | None = None) -> str:
    """KAKAO_DISPATCH_LOG_FORMAT (json or text), else `default`."""
    environ = os.environ if environ is None else environ
    value = environ.get(FORMAT_VARIABLE, "").strip().lower()
    return value if value in FORMATS else default


def _parse_level(value: str) -> int | None:
    name = value.strip().upper()
    if name.isdigit():
        return int(name)
    return logging.getLevelNamesMapping().get(name)


def chosen_level(default: int | str, environ: Mapping[str, str] | None = None) -> int:
    """KAKAO_DISPATCH_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR, or a number), else `default`."""
    environ = os.environ if environ is None else environ
    found = _parse_level(environ.get(LEVEL_VARIABLE, ""))
    if found is not None:
        return found
    return default if isinstance(default, int) else (_parse_level(default) or logging.INFO)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs (so a second call replaces it and leaves others alone).

    Without a stream of its own it writes to whatever `sys.stderr` is at the time, as logging's last-resort
    handler does, so a stderr swapped and closed meanwhile (test runners, CLI runners) never breaks logging.
    """

    def __init__(self, stream: TextIO | None, *, owns_stream: bool = False) -> None:
        super().__init__(stream or sys.stderr)
        self._own_stream = stream
        self.owns_stream = owns_stream

    @property
    def stream(self) -> TextIO:
        return self._own_stream or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        if value is not sys.stderr:
            self._own_stream = value

    def close(self) -> None:
        super().close()
        if self.owns_stream and self._own_stream is not None:
            self._own_stream.close()


def configure_logging(
    default_format: str = "json",
    *,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    logfile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send the root logger's lines to stderr (or `logfile`) in the chosen format, cleaned; returns the handler.

    The environment (KAKAO_DISPATCH_LOG_FORMAT, KAKAO_DISPATCH_LOG_LEVEL) overrides the defaults given
    here. An unknown format or level falls back to the default and says so in one warning line.
    """
    environ = os.environ if environ is None else environ
    owned = open(logfile, "a", encoding="utf-8") if logfile else None  # noqa: SIM115 (the handler closes it)
    handler = _Handler(owned or stream, owns_stream=owned is not None)
    log_format = chosen_format(default_format, environ)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(configured_secrets(environ)))
    root = logging.getLogger()
    for old in [existing for existing in root.handlers if isinstance(existing, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(chosen_level(level, environ))
    logging.captureWarnings(True)
    requested_format = environ.get(FORMAT_VARIABLE, "").strip()
    if requested_format and requested_format.lower() not in FORMATS:
        log.warning("%s=%r is not json or text; using %s", FORMAT_VARIABLE, requested_format, log_format)
    requested_level = environ.get(LEVEL_VARIABLE, "").strip()
    if requested_level and _parse_level(requested_level) is None:
        log.warning("%s=%r is not a log level; using %s", LEVEL_VARIABLE, requested_level,
                    logging.getLevelName(root.level))  # fmt: skip
    return handler


def _celery_logging(loglevel: int | str | None = None, logfile: str | None = None, **_: object) -> None:
    """Celery's `setup_logging` signal: worker and beat log through `configure_logging` (JSON by default)."""
    configure_logging("json", level=loglevel or logging.WARNING, logfile=logfile or None)


setup_logging.connect(_celery_logging)
