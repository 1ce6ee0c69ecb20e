"""Operator commands: send one message, import a campaign, follow jobs, manage the template registry.

`send`, `import`, `status`, `cancel` and `jobs tail` go through the Python producer and the job store
in Redis, exactly as a service does (DESIGN §6): the same rules, the same idempotency keys, the same
job records. `templates list` and `templates check` read only the template registry file. Times are
shown in KST (Asia/Seoul), the zone KakaoTalk's sending rules are written in.

Exit codes: 0 done; 1 rejected, not found, refused, or Redis unreachable; 2 bad input (flags,
files, CSV columns). Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import redis
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from producers.producer import Enqueued, Producer, RequestRejected
from worker import keys
from worker.jobs import Job
from worker.recipients import mask_msisdn
from worker.sending_window import KST
from worker.settings import Settings
from worker.templates import Template, TemplateRegistry, TemplateRegistryError, authentication_keyword
from worker.violations import RuleWarning, Violation

__all__ = [
    "CampaignColumns",
    "campaign_request",
    "derived_idempotency_key",
    "register",
    "rejects_path",
]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
REDIS_CONNECT_TIMEOUT_S = 5.0
REDIS_TIMEOUT_S = 10.0
TAIL_BLOCK_MS = 2000  # below the socket timeout, so a quiet stream never looks like a dead server
MAX_TEXT_LENGTH = 1000  # the longest text KakaoTalk takes (DESIGN §1)
PLAIN_PROGRESS_EVERY_S = 1.0
SEND_MODES = ("--alimtalk", "--friendtalk", "--reply", "--auto", "--file")
IMPORT_TYPES = ("alimtalk", "friendtalk", "consultation", "auto")

jobs_app = typer.Typer(name="jobs", help="Follow jobs as they change status.", no_args_is_help=True)
templates_app = typer.Typer(
    name="templates", help="List and check the AlimTalk template registry file.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add `send`, `import`, `status`, `cancel` and the `jobs` and `templates` groups to a typer application."""
    app.command("send")(send)
    app.command("import")(import_campaign)
    app.command("status")(status)
    app.command("cancel")(cancel)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(templates_app, name="templates")


# --- shared plumbing ---------------------------------------------------------------------------

# producers.cli imports this module to register its commands: its helpers are imported when used.


def _fail(message: object, code: int = EXIT_FAILURE) -> NoReturn:
    from producers.cli import fail

    fail(" ".join(str(message).split()), code)


def _load_settings() -> Settings:
    from producers.cli import load_settings

    return load_settings()


def _redis_client(settings: Settings) -> redis.Redis:
    try:
        return redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
        )
    except ValueError as error:
        _fail(f"bad environment setting KAKAO_DISPATCH_REDIS_URL: {error}", EXIT_BAD_INPUT)


def _producer(settings: Settings) -> Producer:
    from producers.cli import load_templates

    templates = load_templates(settings.templates_path)
    return Producer(_redis_client(settings), settings=settings, templates=templates)


@contextmanager
def _store_errors(settings: Settings, done: str = "") -> Iterator[None]:
    """Redis (the job store) or the Celery broker unreachable, as one line and exit 1."""
    from kombu.exceptions import OperationalError  # Celery's "broker unreachable"

    from producers.cli import redis_errors, redis_location

    with redis_errors(settings.redis_url, done):
        try:
            yield
        except OperationalError as error:
            _fail(f"Celery broker at {redis_location(settings.broker_url)} unreachable: {error}")


def _console() -> Console:
    """Rich output on stdout; wide enough off a terminal that tables are not folded into narrow columns."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _kst(moment: datetime | None, *, milliseconds: bool = False) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(KST)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if milliseconds:
        text += f".{local.microsecond // 1000:03d}"
    return text + " KST"


def _parameters(values: Sequence[str], option: str = "--param") -> dict[str, str]:
    """`k=v` pairs; the value may contain `=`, the name may not be empty or given twice."""
    parameters: dict[str, str] = {}
    for item in values:
        name, separator, value = item.partition("=")
        name = name.strip()
        if not separator or not name:
            _fail(f"{option} {item!r} is not of the form name=value", EXIT_BAD_INPUT)
        if name in parameters:
            _fail(f"{option} {name} is given twice", EXIT_BAD_INPUT)
        parameters[name] = value
    return parameters


def _recipient(job: Job) -> str:
    if job.msisdn:
        return mask_msisdn(job.msisdn)
    return f"contact {job.contact_id}" if job.contact_id else "-"


def _violation_line(violation: Violation) -> str:
    return f"{violation.rule} at {violation.path or 'request'}: {violation.message}"


def _warning_line(warning: RuleWarning) -> str:
    return f"warning: {warning.rule} at {warning.path or 'request'}: {warning.message}"


# --- send --------------------------------------------------------------------------------------


def send(
    alimtalk: Annotated[
        str | None, typer.Option("--alimtalk", metavar="TEMPLATE_ID", help="AlimTalk with this registered template.")
    ] = None,
    friendtalk: Annotated[
        bool, typer.Option("--friendtalk", help="FriendTalk, inside the FriendTalk window (KST).")
    ] = False,
    reply: Annotated[
        str | None,
        typer.Option("--reply", metavar="CONTACT_ID", help="ConsultationTalk reply to this KAKAOTALKCHAT contact."),
    ] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Let the worker choose the channel (DESIGN §4).")] = False,
    file: Annotated[
        str | None, typer.Option("--file", metavar="REQUEST.json", help="A whole send request; - for stdin.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="MSISDN", help="Recipient phone number.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="NAME=VALUE", help="Template parameter (repeatable).")
    ] = None,
    auth: Annotated[bool, typer.Option("--auth", help="An authentication AlimTalk (needs a keyword).")] = False,
    language: Annotated[str | None, typer.Option("--language", help="Template language, e.g. ko.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Message text (at most 1000 characters).")] = None,
    media_url: Annotated[str | None, typer.Option("--media-url", metavar="URL", help="Image to send.")] = None,
    send_at: Annotated[str | None, typer.Option("--send-at", metavar="ISO", help="Not before this instant.")] = None,
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", metavar="ISO", help="Give up after this instant.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", metavar="KEY", help="The same key never sends twice.")
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", metavar="URL", help="POST every status change here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job record as JSON.")] = False,
) -> None:
    """Enqueue one message and print its job id, status and when it will go (KST).

    With --file, the options --send-at, --expires-at, --idempotency-key and --callback-url replace the document's.

    Exit 0 enqueued (or already enqueued with this idempotency key), 1 rejected by a rule, 2 bad flags.
    """
    modes = [alimtalk is not None, friendtalk, reply is not None, auto, file is not None]
    if sum(modes) != 1:
        _fail(f"choose exactly one of {', '.join(SEND_MODES)}", EXIT_BAD_INPUT)
    common = {
        "send_at": _instant(send_at, "--send-at"),
        "expires_at": _instant(expires_at, "--expires-at"),
        "idempotency_key": idempotency_key,
        "callback_url": callback_url,
    }
    content = _SendFlags(to, _parameters(param or []), auth, language, text, media_url)
    if file is not None:
        content.refuse(("--to", "--param", "--auth", "--language", "--text", "--media-url"), "--file")
        from producers.cli import read_json_document

        request = read_json_document(file)
        if not isinstance(request, dict):
            _fail(f"{file}: a send request is a JSON object", EXIT_BAD_INPUT)
    elif alimtalk is not None:
        request = content.alimtalk(alimtalk)
    elif reply is not None:
        request = content.generic("consultation", "--reply", contact_id=reply)
    else:
        request = content.generic("friendtalk" if friendtalk else "auto", "--friendtalk" if friendtalk else "--auto")
    request.update({name: value for name, value in common.items() if value is not None})

    settings = _load_settings()
    producer = _producer(settings)
    try:
        with _store_errors(settings):
            verdict = producer.check(request)
            for warning in verdict.warnings:
                typer.echo(_warning_line(warning), err=True)
            if not verdict.accepted:
                _print_rejection(verdict.violations, verdict.warnings, as_json)
            [result] = producer.send_many([request])
            if isinstance(result, RequestRejected):  # the rules changed their mind in between (a session closed)
                _print_rejection(result.violations, (), as_json)
            job = producer.get(result.id)
    finally:
        producer.close()
    if job is None:
        _fail(f"job {result.id} vanished right after it was enqueued")
    if as_json:
        typer.echo(json.dumps(job.as_dict(), ensure_ascii=False, indent=2))
        return
    _print_enqueued(job, result)


@dataclass(frozen=True)
class _SendFlags:
    """The content flags of `send`, turned into a send request for each form."""

    to: str | None
    parameters: dict[str, str]
    auth: bool
    language: str | None
    text: str | None
    media_url: str | None

    def given(self) -> dict[str, bool]:
        return {
            "--to": self.to is not None,
            "--param": bool(self.parameters),
            "--auth": self.auth,
            "--language": self.language is not None,
            "--text": self.text is not None,
            "--media-url": self.media_url is not None,
        }

    def refuse(self, names: Sequence[str], mode: str) -> None:
        given = [name for name in names if self.given()[name]]
        if given:
            _fail(f"{mode} does not take {', '.join(given)}", EXIT_BAD_INPUT)

    def alimtalk(self, template_id: str) -> dict[str, Any]:
        self.refuse(("--text", "--media-url"), "--alimtalk")
        template: dict[str, Any] = {"id": template_id, "parameters": self.parameters}
        if self.language is not None:
            template["language"] = self.language
        return {
            "type": "alimtalk",
            "to": {"msisdn": self._msisdn("--alimtalk")},
            "template": template,
            "authentication": self.auth,
        }

    def generic(self, kind: str, mode: str, *, contact_id: str | None = None) -> dict[str, Any]:
        self.refuse(("--param", "--auth", "--language"), mode)
        if contact_id is not None:
            self.refuse(("--to",), mode)
        to = {"contact_id": contact_id} if contact_id is not None else {"msisdn": self._msisdn(mode)}
        if (self.text is None) == (self.media_url is None):
            _fail(f"{mode} needs exactly one of --text or --media-url", EXIT_BAD_INPUT)
        message = (
            {"text_message": {"text": self.text}}
            if self.text is not None
            else {"media_message": {"url": self.media_url}}
        )
        return {"type": kind, "to": to, "message": message}

    def _msisdn(self, mode: str) -> str:
        if not self.to:
            _fail(f"{mode} needs --to MSISDN", EXIT_BAD_INPUT)
        return self.to


def _instant(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    from producers.cli import parse_instant

    return parse_instant(text, option).isoformat()


def _print_rejection(violations: Sequence[Violation], warnings: Sequence[RuleWarning], as_json: bool) -> NoReturn:
    if as_json:
        document = {
            "verdict": "rejected",
            "violations": [violation.as_dict() for violation in violations],
            "warnings": [warning.as_dict() for warning in warnings],
        }
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"Rejected: {len(violations)} violation{'s' if len(violations) != 1 else ''}; nothing was enqueued.")
        for violation in violations:
            typer.echo(f"  {_violation_line(violation)}")
    raise typer.Exit(EXIT_FAILURE)


def _print_enqueued(job: Job, result: Enqueued) -> None:
    what = "Enqueued" if result.created else "Already enqueued (same idempotency key):"
    typer.echo(f"{what} {job.id}: {job.status} ({job.type}, {job.channel}, to {_recipient(job)}).")
    if job.status == "scheduled" and job.not_before is not None:
        typer.echo(f"  goes at {_kst(job.not_before)}")
    elif job.status == "queued":
        typer.echo("  goes now (as soon as a worker takes it)")


# --- import ------------------------------------------------------------------------------------

#: Columns with a fixed meaning; `param.<name>` and `metadata.<name>` columns besides them.
CAMPAIGN_COLUMNS = (
    "msisdn",
    "contact_id",
    "type",
    "template_id",
    "text",
    "media_url",
    "send_at",
    "expires_at",
    "idempotency_key",
    "callback_url",
)
#: What the rejects file adds to a row: ignored on import, so a corrected rejects file imports as it is.
REJECT_COLUMNS = ("row", "violations")


class _BadCampaign(ValueError):
    """The campaign file cannot be imported at all (unreadable, not UTF-8 CSV, bad columns)."""


@dataclass(frozen=True)
class CampaignColumns:
    """The header of a campaign CSV: where each known column is, and the template and metadata columns."""

    names: tuple[str, ...]
    index: dict[str, int]
    parameters: tuple[tuple[str, int], ...]
    metadata: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, header: Sequence[str]) -> CampaignColumns:
        names = tuple(name.strip() for name in header)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise _BadCampaign(f"duplicate columns {', '.join(duplicates)}")
        index: dict[str, int] = {}
        parameters: list[tuple[str, int]] = []
        metadata: list[tuple[str, int]] = []
        unknown = []
        for position, name in enumerate(names):
            prefix, dot, rest = name.partition(".")
            if name in CAMPAIGN_COLUMNS:
                index[name] = position
            elif dot and prefix in ("param", "metadata"):
                if not rest:
                    raise _BadCampaign(f"column {name!r} needs a name after the dot")
                (parameters if prefix == "param" else metadata).append((rest, position))
            elif name not in REJECT_COLUMNS:
                unknown.append(name or f"(empty, column {position + 1})")
        if "msisdn" not in index and "contact_id" not in index:
            raise _BadCampaign(f"no msisdn or contact_id column (the header has: {', '.join(names)})")
        if unknown:
            raise _BadCampaign(
                f"unknown columns {', '.join(unknown)}; known: {', '.join(CAMPAIGN_COLUMNS)}, param.<name>, "
                "metadata.<name>"
            )
        return cls(names, index, tuple(parameters), tuple(metadata))

    def value(self, row: Sequence[str], name: str) -> str:
        position = self.index.get(name)
        return row[position].strip() if position is not None else ""


@dataclass(frozen=True)
class ImportDefaults:
    """`--type` and `--template`: used for rows that do not say."""

    type: str | None = None
    template_id: str | None = None


def derived_idempotency_key(file_digest: str, row: int) -> str:
    """The key of a row that has none: the same file imported again enqueues nothing twice."""
    return f"import:{file_digest[:16]}:{row}"


def rejects_path(campaign: Path) -> Path:
    """`campaign.csv` -> `campaign.rejects.csv` beside it."""
    stem = campaign.name[: -len(".csv")] if campaign.name.lower().endswith(".csv") else campaign.name
    return campaign.with_name(stem + ".rejects.csv")


def campaign_request(
    columns: CampaignColumns, row: Sequence[str], defaults: ImportDefaults, default_key: str
) -> dict[str, Any]:
    """The send request of one CSV row; the rules judge it (an empty cell is a missing value)."""
    value = columns.value
    to = {name: value(row, name) for name in ("msisdn", "contact_id") if value(row, name)}
    text_position = columns.index.get("text")
    text = row[text_position] if text_position is not None and row[text_position].strip() else None
    media_url = value(row, "media_url")
    has_message = text is not None or bool(media_url)
    template_id = value(row, "template_id") or (defaults.template_id if not has_message else None)
    kind = value(row, "type") or defaults.type
    if not kind:
        kind = (
            "alimtalk" if template_id else "consultation" if "contact_id" in to and "msisdn" not in to else "friendtalk"
        )
    request: dict[str, Any] = {"type": kind, "to": to}
    if template_id:
        parameters = {name: row[position] for name, position in columns.parameters if row[position].strip()}
        request["template"] = {"id": template_id, "parameters": parameters}
    message: dict[str, Any] = {}
    if text is not None:
        message["text_message"] = {"text": text}
    if media_url:
        message["media_message"] = {"url": media_url}
    if message:
        request["message"] = message
    for name in ("send_at", "expires_at", "callback_url"):
        if value(row, name):
            request[name] = value(row, name)
    request["idempotency_key"] = value(row, "idempotency_key") or default_key
    metadata = {name: row[position].strip() for name, position in columns.metadata if row[position].strip()}
    if metadata:
        request["metadata"] = metadata
    return request


@dataclass(frozen=True)
class _CampaignFile:
    path: Path
    digest: str
    columns: CampaignColumns
    rows: int  # data rows that are not blank
    bom: bool


def _scan_campaign(path: Path) -> _CampaignFile:
    """Hash the file and read it through once, so that nothing is enqueued from a file that is not whole."""
    try:
        with path.open("rb") as raw:
            bom = raw.read(3) == b"\xef\xbb\xbf"
            raw.seek(0)
            digest = hashlib.file_digest(raw, "sha256").hexdigest()
    except FileNotFoundError:
        raise _BadCampaign("no such file") from None
    except IsADirectoryError:
        raise _BadCampaign("is a directory, not a CSV file") from None
    except OSError as error:
        raise _BadCampaign(f"cannot read: {error.strerror}") from None
    rows = 0
    columns: CampaignColumns | None = None
    with _csv_rows(path) as reader:
        for row in reader:
            if columns is None:
                columns = CampaignColumns.parse(row)
            elif any(cell.strip() for cell in row):
                rows += 1
    if columns is None:
        raise _BadCampaign("is empty: a campaign CSV starts with a header row")
    return _CampaignFile(path, digest, columns, rows, bom)


@contextmanager
def _csv_rows(path: Path) -> Iterator[Iterator[list[str]]]:
    """The file's CSV records (UTF-8, with or without a BOM); decoding and CSV errors as _BadCampaign."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text)
            try:
                yield reader
            except UnicodeDecodeError:
                raise _BadCampaign(_decoding_problem(path)) from None
            except csv.Error as error:
                raise _BadCampaign(f"is not valid CSV (line {reader.line_num}: {error})") from None
    except OSError as error:
        raise _BadCampaign(f"cannot read: {error.strerror}") from None


def _decoding_problem(path: Path) -> str:
    """Where the file stops being UTF-8 (read again whole: this is the error path only)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return f"is not UTF-8 text (line {line}, byte {error.start}: {error.reason}); save it as UTF-8 CSV"
    return "is not UTF-8 text"


@dataclass
class ImportTally:
    """What became of the rows whose outcome is known (an interrupted batch is not counted)."""

    created: int = 0
    repeated: int = 0
    rejected: int = 0
    scheduled: int = 0
    blank: int = 0

    @property
    def rows(self) -> int:
        return self.created + self.repeated + self.rejected


class _RejectsFile:
    """The rejected rows: the original cells, then `row` and `violations`. Removed again when nothing was rejected."""

    def __init__(self, path: Path, columns: CampaignColumns, bom: bool) -> None:
        self.path = path
        self.count = 0
        self._kept = [position for position, name in enumerate(columns.names) if name not in REJECT_COLUMNS]
        try:
            self._file: IO[str] = path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="")
        except OSError as error:
            _fail(f"cannot write the rejects file {path}: {error.strerror}", EXIT_BAD_INPUT)
        self._writer = csv.writer(self._file)
        self._writer.writerow([columns.names[position] for position in self._kept] + list(REJECT_COLUMNS))

    def write(self, row: Sequence[str], number: int, violations: Sequence[Violation]) -> None:
        cells = [row[position] if position < len(row) else "" for position in self._kept]
        reasons = "; ".join(f"{violation.rule}: {violation.message}" for violation in violations)
        self._writer.writerow([*cells, str(number), reasons])
        self.count += 1

    def close(self) -> None:
        self._file.close()
        if self.count == 0:
            self.path.unlink(missing_ok=True)


class _RowsPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- rows/s" if speed is None else f"{speed:,.0f} rows/s")


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal; otherwise a plain line at most every second."""
    console = Console()
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RowsPerSecondColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda rows: bar.advance(task, rows)
        return
    started = time.monotonic()
    state = {"done": 0, "shown": started}

    def advance(rows: int) -> None:
        state["done"] += rows
        now = time.monotonic()
        if now - state["shown"] < PLAIN_PROGRESS_EVERY_S and state["done"] < total:
            return
        state["shown"] = now
        rate = state["done"] / max(now - started, 1e-9)
        eta = (total - state["done"]) / rate if rate else 0.0
        typer.echo(f"{label}: {state['done']:,}/{total:,} rows, {rate:,.0f} rows/s, ETA {eta:.0f} s")

    yield advance


@dataclass(frozen=True)
class _Row:
    """One CSV row on its way: its send request, or the reason it could not become one."""

    number: int
    cells: list[str]
    request: dict[str, Any] | None
    problems: tuple[Violation, ...] = ()


class _Importer:
    """Turns rows into requests and hands them to the producer a batch at a time."""

    def __init__(
        self,
        producer: Producer,
        campaign: _CampaignFile,
        defaults: ImportDefaults,
        rejects: _RejectsFile,
        dry_run: bool,
    ) -> None:
        self.producer = producer
        self.campaign = campaign
        self.defaults = defaults
        self.rejects = rejects
        self.dry_run = dry_run
        self.tally = ImportTally()
        self._seen_keys: set[str] = set()  # dry run: repeats of a key within the file

    def run(self, advance: Callable[[int], None], batch_size: int) -> None:
        batch: list[_Row] = []
        with _csv_rows(self.campaign.path) as reader:
            for number, cells in enumerate(reader, start=1):
                if number == 1:
                    continue  # the header is row 1, as a spreadsheet shows it
                if not any(cell.strip() for cell in cells):
                    self.tally.blank += 1
                    continue
                batch.append(self._row(number, cells))
                if len(batch) >= batch_size:
                    self._flush(batch)
                    advance(len(batch))
                    batch = []
        if batch:
            self._flush(batch)
            advance(len(batch))

    def _row(self, number: int, cells: list[str]) -> _Row:
        columns = self.campaign.columns
        if len(cells) != len(columns.names):
            problem = f"the row has {len(cells)} fields, the header has {len(columns.names)}"
            return _Row(number, cells, None, (Violation("csv.fields", "", len(columns.names), len(cells), problem),))
        key = derived_idempotency_key(self.campaign.digest, number)
        return _Row(number, cells, campaign_request(columns, cells, self.defaults, key))

    def _flush(self, batch: Sequence[_Row]) -> None:
        """One `send_many` for the batch; outcomes (and rejects-file lines) in row order."""
        requests = [row.request for row in batch if row.request is not None]
        answers = iter(self._check(requests) if self.dry_run else self.producer.send_many(requests))
        for row in batch:
            result = next(answers) if row.request is not None else RequestRejected(row.problems)
            if isinstance(result, RequestRejected):
                self.rejects.write(row.cells, row.number, result.violations)
                self.tally.rejected += 1
            elif result.created:
                self.tally.created += 1
                self.tally.scheduled += result.status == "scheduled"
            else:
                self.tally.repeated += 1

    def _check(self, requests: Sequence[dict[str, Any]]) -> list[Enqueued | RequestRejected]:
        """What `send_many` would answer, without writing anything."""
        verdicts = [self.producer.check(request) for request in requests]
        wanted = [str(request["idempotency_key"]) for request in requests]
        existing = self.producer.store.redis.mget([keys.idempotency(key) for key in wanted]) if wanted else []
        results: list[Enqueued | RequestRejected] = []
        for index, (verdict, key, job_id) in enumerate(zip(verdicts, wanted, existing, strict=True)):
            if not verdict.accepted:
                results.append(RequestRejected(verdict.violations, index))
                continue
            repeat = job_id is not None or key in self._seen_keys
            self._seen_keys.add(key)
            status = "scheduled" if verdict.not_before is not None else "queued"
            results.append(Enqueued(str(job_id or ""), status, verdict.not_before, not repeat))
        return results


def import_campaign(
    campaign: Annotated[Path, typer.Argument(metavar="CAMPAIGN.csv", help="UTF-8 CSV, one message per row.")],
    message_type: Annotated[
        str | None,
        typer.Option(
            "--type", metavar="TYPE", help="alimtalk, friendtalk, consultation or auto: for rows without a type."
        ),
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", metavar="ID", help="Template of rows without template_id or text.")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", metavar="FILE", help="Where rejected rows go (default: CAMPAIGN.rejects.csv)."),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Rows per send_many call.")] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; enqueue nothing.")] = False,
) -> None:
    """Enqueue a campaign from a CSV file, with a progress bar; rejected rows go to a rejects file.

    Columns: msisdn or contact_id; optional type, template_id, param.NAME, text, media_url, send_at, expires_at,
    idempotency_key, metadata.NAME, callback_url.

    Resumable: a row without idempotency_key gets the key import:FILE-SHA256(16 hex):ROW, so importing the same
    file again (after a crash or Ctrl-C) enqueues nothing twice. Rows are numbered as in a spreadsheet (header = 1).

    Exit 0 when the file was processed (even with rejected rows), 1 when every row was rejected, 2 for an
    unreadable file or bad columns.
    """
    if message_type is not None and message_type not in IMPORT_TYPES:
        _fail(f"--type {message_type!r} is not one of {', '.join(IMPORT_TYPES)}", EXIT_BAD_INPUT)
    if batch < 1:
        _fail("--batch must be at least 1", EXIT_BAD_INPUT)
    started = time.monotonic()
    try:
        scanned = _scan_campaign(campaign)
    except _BadCampaign as error:
        _fail(f"{campaign}: {error}", EXIT_BAD_INPUT)
    rejects = rejects or rejects_path(campaign)
    if rejects.resolve() == campaign.resolve():
        _fail(f"--rejects {rejects} is the campaign file itself", EXIT_BAD_INPUT)
    settings = _load_settings()
    producer = _producer(settings)
    rejects_file = _RejectsFile(rejects, scanned.columns, scanned.bom)
    importer = _Importer(producer, scanned, ImportDefaults(message_type, template), rejects_file, dry_run)
    interrupted = False
    try:
        with (
            _store_errors(settings, "run the same command again to resume"),
            _progress(scanned.rows, campaign.name) as advance,
        ):
            importer.run(advance, batch)
    except KeyboardInterrupt:
        interrupted = True
    except _BadCampaign as error:  # the file changed since it was scanned
        _fail(f"{campaign}: {error}", EXIT_BAD_INPUT)
    finally:
        rejects_file.close()
        producer.close()
    tally = importer.tally
    _print_summary(campaign, tally, rejects_file, time.monotonic() - started, dry_run=dry_run, interrupted=interrupted)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if tally.rows and tally.rejected == tally.rows:
        _fail(f"every row of {campaign} was rejected (see {rejects_file.path})")


def _print_summary(
    campaign: Path, tally: ImportTally, rejects: _RejectsFile, elapsed: float, *, dry_run: bool, interrupted: bool
) -> None:
    rate = tally.rows / elapsed if elapsed > 0 else 0.0
    done = "Interrupted" if interrupted else "Checked (dry run, nothing enqueued)" if dry_run else "Imported"
    would = "would be " if dry_run else ""
    rows = f"{tally.rows:,} row{'s' if tally.rows != 1 else ''}"
    typer.echo(f"{done} {campaign.name}: {rows} in {elapsed:.1f} s ({rate:,.0f} rows/s)")
    lines = [
        ("rows read", tally.rows, ""),
        (f"{would}accepted (new)", tally.created, ""),
        ("  of which scheduled", tally.scheduled, "waiting for send_at or the FriendTalk window"),
        ("already enqueued", tally.repeated, "idempotent repeats: not enqueued again"),
        ("rejected", tally.rejected, f"see {rejects.path}" if tally.rejected else ""),
    ]
    if tally.blank:
        lines.append(("blank rows skipped", tally.blank, ""))
    for label, number, note in lines:
        typer.echo(f"  {label + ':':<26}{number:>9,}" + (f"  ({note})" if note else ""))
    if interrupted:
        typer.echo("Run the same command again to resume: rows already enqueued are not enqueued twice.")


# --- status and cancel -------------------------------------------------------------------------


def status(
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job id send or the producer returned.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job record as JSON.")] = False,
) -> None:
    """Show a job: what, to whom, its status, Sinch's answer and every status change (times in KST)."""
    settings = _load_settings()
    client = _redis_client(settings)
    try:
        with _store_errors(settings):
            job = Producer(client, settings=settings).get(job_id)
    finally:
        client.close()
    if job is None:
        _fail(f"no job {job_id}")
    if as_json:
        typer.echo(json.dumps(job.as_dict(), ensure_ascii=False, indent=2))
        return
    console = _console()
    console.print(_job_summary(job))
    events = Table(title="Events", title_justify="left", show_lines=False)
    for column in ("time (KST)", "from", "to", "reason"):
        events.add_column(column, no_wrap=column != "reason")
    for event in job.events:
        events.add_row(
            Text(_kst(event.at, milliseconds=True)),
            Text(event.from_status or "(new)"),
            Text(event.to_status),
            Text(event.reason),
        )
    console.print(events)


def _job_summary(job: Job) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    template = job.request.get("template")
    message = job.request.get("message")
    content = f"template {template.get('id')}" if isinstance(template, dict) else ", ".join(message) if message else "-"
    delivery = job.delivery
    rows = [
        ("job", job.id),
        ("type", job.type),
        ("channel", job.channel),
        ("recipient", _recipient(job)),
        ("content", content),
        ("status", job.status),
        ("not before", _kst(job.not_before)),
        ("expires at", _kst(job.expires_at)),
        ("message id", job.message_id or "-"),
        ("attempts", str(job.attempts)),
        ("delivery", _delivery_text(delivery)),
        ("idempotency key", job.idempotency_key or "-"),
        ("created", _kst(job.created_at)),
        ("updated", _kst(job.updated_at)),
    ]
    for label, value in rows:
        grid.add_row(Text(label), Text(value))
    return grid


def _delivery_text(delivery: Mapping[str, str]) -> str:
    if not delivery:
        return "-"
    parts = [delivery.get("status", "")]
    codes = "/".join(part for part in (delivery.get("code"), delivery.get("sub_code")) if part)
    if codes:
        parts.append(codes)
    if delivery.get("description"):
        parts.append(delivery["description"])
    for moment in ("delivered_at", "read_at"):
        if delivery.get(moment):
            parts.append(f"{moment.removesuffix('_at')} {_kst(datetime.fromisoformat(delivery[moment]))}")
    if delivery.get("choice_response"):
        parts.append(f"choice response {delivery['choice_response']}")
    return "; ".join(part for part in parts if part)


def cancel(job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job to cancel.")]) -> None:
    """Cancel a job that is still queued or scheduled; once it is being sent it can no longer be stopped."""
    settings = _load_settings()
    client = _redis_client(settings)
    try:
        with _store_errors(settings):
            outcome = Producer(client, settings=settings).cancel(job_id)
    finally:
        client.close()
    if outcome.ok:
        typer.echo(f"Cancelled {job_id} (it was {outcome.previous}).")
        return
    if not outcome.previous:
        _fail(f"no job {job_id}")
    _fail(f"job {job_id} is {outcome.previous}: only queued or scheduled jobs can be cancelled")


# --- jobs tail ---------------------------------------------------------------------------------


@jobs_app.command("tail")
def tail(
    job: Annotated[str | None, typer.Option("--job", metavar="ID", help="Only this job's events.")] = None,
    since: Annotated[
        str, typer.Option("--since", metavar="now|start", help="New events only, or the whole stream first.")
    ] = "now",
    count: Annotated[int | None, typer.Option("--count", metavar="N", help="Stop after N events.")] = None,
) -> None:
    """Follow the job events stream (kd:events): one line per status change. Ctrl-C stops."""
    if since not in ("now", "start"):
        _fail(f"--since {since!r} is neither now nor start", EXIT_BAD_INPUT)
    if count is not None and count < 1:
        _fail("--count must be at least 1", EXIT_BAD_INPUT)
    settings = _load_settings()
    client = _redis_client(settings)
    try:
        with _store_errors(settings):
            _follow(client, job, since, count)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following
    finally:
        client.close()


def _follow(client: redis.Redis, job: str | None, since: str, count: int | None) -> None:
    # "Now" is the stream's last id read before announcing: an event written after the line below is never missed.
    last = "0-0"
    if since == "now":
        newest: Any = client.xrevrange(keys.JOB_EVENTS_STREAM, count=1)
        last = str(newest[0][0]) if newest else "0-0"
    which = f"job {job}" if job else "all jobs"
    typer.echo(f"Following {keys.JOB_EVENTS_STREAM} ({which}, from {since}); Ctrl-C to stop.", err=True)
    shown = 0
    while count is None or shown < count:
        reply: Any = client.xread({keys.JOB_EVENTS_STREAM: last}, count=500, block=TAIL_BLOCK_MS)
        for entry_id, fields in _stream_entries(reply):
            last = entry_id
            if job is not None and fields.get("job_id") != job:
                continue
            typer.echo(_event_line(fields))
            shown += 1
            if count is not None and shown >= count:
                return


def _stream_entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """XREAD's entries, whichever protocol answered (RESP2: [[stream, entries]]; RESP3: {stream: [entries]})."""
    if not reply:
        return []
    if isinstance(reply, dict):
        groups = [value[0] if value and isinstance(value[0], list) else value for value in reply.values()]
    else:
        groups = [entries for _, entries in reply]
    return [
        (str(entry_id), {str(name): str(value) for name, value in dict(fields).items()})
        for entries in groups
        for entry_id, fields in entries
    ]


def _event_line(fields: Mapping[str, str]) -> str:
    at_ms = fields.get("at", "")
    at = datetime.fromtimestamp(int(at_ms) / 1000, tz=KST) if at_ms.isdigit() else None
    previous = fields.get("from") or "(new)"
    reason = fields.get("reason", "")
    return f"{_kst(at, milliseconds=True)}  {fields.get('job_id', '?')}  {previous} → {fields.get('to', '?')}" + (
        f"  {reason}" if reason else ""
    )


# --- templates ---------------------------------------------------------------------------------

TemplatesOption = Annotated[
    Path | None,
    typer.Option("--templates", metavar="FILE", help="Template registry JSON (default: $KAKAO_DISPATCH_TEMPLATES)."),
]


def _registry_path(option: Path | None) -> Path:
    path = option or _load_settings().templates_path
    if path is None:
        _fail("no template registry: pass --templates FILE or set KAKAO_DISPATCH_TEMPLATES", EXIT_BAD_INPUT)
    return path


def _read_registry(path: Path, invalid_code: int) -> TemplateRegistry:
    """The registry; a missing or unreadable file is bad input (2), a malformed one `invalid_code`."""
    try:
        return TemplateRegistry.from_file(path)
    except TemplateRegistryError as error:
        _fail(error, EXIT_BAD_INPUT if isinstance(error.__cause__, OSError) else invalid_code)


def _fixed_text(template: Template) -> str:
    """The template's own words, parameters left out (a parameter named `auth_code` is not a keyword)."""
    return template.render(dict.fromkeys(template.parameters, ""))


@templates_app.command("list")
def list_templates(templates: TemplatesOption = None) -> None:
    """List the registered templates: id, language, parameters, whether they qualify as authentication text."""
    path = _registry_path(templates)
    registry = _read_registry(path, EXIT_BAD_INPUT)
    table = Table(title=f"{len(registry)} template{'s' if len(registry) != 1 else ''} in {path}", title_justify="left")
    for column in ("id", "language", "parameters", "authentication"):
        table.add_column(column)
    for template_id, template in sorted(registry.items()):
        keyword = authentication_keyword(_fixed_text(template))
        table.add_row(
            Text(template_id),
            Text(template.language or "-"),
            Text(", ".join(template.parameters) or "-"),
            Text(f"yes ({keyword})" if keyword else "no"),
        )
    _console().print(table)


@templates_app.command("check")
def check_templates(
    template_id: Annotated[
        str | None, typer.Argument(metavar="[TEMPLATE_ID]", help="Render this template with --param values.")
    ] = None,
    templates: TemplatesOption = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", metavar="NAME=VALUE", help="Template parameter (repeatable).")
    ] = None,
    auth: Annotated[
        bool, typer.Option("--auth", help="Fail unless it qualifies as an authentication AlimTalk.")
    ] = False,
) -> None:
    """Validate the registry file; with TEMPLATE_ID, render it and report missing parameters and the keyword.

    Exit 0 valid; 1 a problem (malformed registry, unknown template, missing parameter, text too long, no
    authentication keyword with --auth); 2 no registry file given, or it cannot be read.
    """
    parameters = _parameters(param or [])
    if template_id is None and (parameters or auth):
        _fail("--param and --auth need a TEMPLATE_ID", EXIT_BAD_INPUT)
    path = _registry_path(templates)
    registry = _read_registry(path, EXIT_FAILURE)
    if template_id is None:
        _check_registry(path, registry)
        return
    template = registry.get(template_id)
    if template is None:
        _fail(f"template {template_id!r} is not in {path} (it has: {', '.join(sorted(registry)) or 'none'})")
    _check_rendering(template, parameters, auth)


def _check_registry(path: Path, registry: TemplateRegistry) -> None:
    problems = []
    for template_id, template in sorted(registry.items()):
        if not template.text.strip():
            problems.append(f"{template_id}: the text is empty")
        fixed = len(_fixed_text(template))
        if fixed > MAX_TEXT_LENGTH:
            problems.append(f"{template_id}: {fixed} characters before parameters, the limit is {MAX_TEXT_LENGTH}")
    if problems:
        typer.echo(f"Template registry {path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        for problem in problems:
            typer.echo(f"  {problem}")
        raise typer.Exit(EXIT_FAILURE)
    count = len(registry)
    typer.echo(f"Template registry {path}: {count} template{'s' if count != 1 else ''}, valid.")


def _check_rendering(template: Template, parameters: Mapping[str, str], auth: bool) -> None:
    rendered = template.render(parameters)
    missing = [name for name in template.parameters if name not in parameters]
    unused = sorted(set(parameters) - set(template.parameters))
    keyword = authentication_keyword(rendered)
    typer.echo(f"Template {template.id} ({template.language or 'no language'})")
    typer.echo(f"  parameters:      {', '.join(template.parameters) or 'none'}")
    typer.echo(f"  rendered ({len(rendered)} characters):")
    for line in rendered.splitlines() or [""]:
        typer.echo(f"    {line}")
    typer.echo(f"  missing:         {', '.join(missing) or 'none'}")
    if unused:
        typer.echo(f"  unused:          {', '.join(unused)} (not in the template; ignored)")
    typer.echo(
        f"  authentication:  keyword {keyword!r} found: may be sent as an authentication AlimTalk"
        if keyword
        else "  authentication:  no keyword (auth, password, verif, 인증, 비밀번호, 認証, にんしょう): "
        "cannot be sent as an authentication AlimTalk"
    )
    failed = bool(missing) or len(rendered) > MAX_TEXT_LENGTH or (auth and keyword is None)
    if len(rendered) > MAX_TEXT_LENGTH:
        typer.echo(f"  too long:        {len(rendered)} characters, the limit is {MAX_TEXT_LENGTH}")
    if failed:
        raise typer.Exit(EXIT_FAILURE)
