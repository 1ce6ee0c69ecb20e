"""`kakao-dispatch send|import|status|cancel|jobs tail|templates` as an operator runs them, against a private Redis.

No worker runs: jobs stay `queued` (or `scheduled`), which is all these commands need to show.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO

import pytest
import redis

from worker import keys
from worker.jobs import JobStore
from worker.redis_server import RedisServer, free_port
from worker.sending_window import KST

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [str(Path(sys.executable).parent / "kakao-dispatch")]
PACKAGE_PARAMETERS = (
    "--param",
    "customer=홍길동",
    "--param",
    "package_id=CJ-1234",
    "--param",
    "expected_delivery=내일",
)


def window_around_now() -> str:
    """A FriendTalk window open for the next two hours, so FriendTalk jobs are `queued` whatever the time of day."""
    now = datetime.now(KST)
    return f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=2):%H:%M}"


@pytest.fixture
def env(redis_server: RedisServer, redis_client: redis.Redis) -> dict[str, str]:
    """The CLI's environment: the private Redis, the example registry; nothing inherited from SINCH_/KAKAO_."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    environment.update(
        KAKAO_DISPATCH_REDIS_URL=redis_server.url,
        KAKAO_DISPATCH_TEMPLATES="examples/templates.json",
        KAKAO_DISPATCH_FRIENDTALK_WINDOW=window_around_now(),
    )
    return environment


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, **changes: str | None
) -> subprocess.CompletedProcess[str]:
    environment = dict(env)
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=60, env=environment, cwd=ROOT
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def job_id_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"\b(job_[0-9A-Z]{26})\b", result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(1)


def send_alimtalk(env: dict[str, str], *extra: str) -> str:
    result = run(env, "send", "--alimtalk", "package_template", "--to", "010-1234-5678", *PACKAGE_PARAMETERS, *extra)
    assert result.returncode == 0, result.stderr
    return job_id_of(result)


# --- send --------------------------------------------------------------------------------------


def test_send_alimtalk_prints_the_job_id_and_that_it_goes_now(env: dict[str, str], redis_client: redis.Redis) -> None:
    result = run(env, "send", "--alimtalk", "package_template", "--to", "010-1234-5678", *PACKAGE_PARAMETERS)

    assert result.returncode == 0, result.stderr
    job_id = job_id_of(result)
    assert f"Enqueued {job_id}: queued (alimtalk, KAKAOTALK, to +82******5678)." in result.stdout
    assert "goes now" in result.stdout and "010-1234-5678" not in result.stdout
    job = JobStore(redis_client).get(job_id)
    assert job is not None and (job.status, job.type, job.msisdn) == ("queued", "alimtalk", "+821012345678")
    assert job.request["template"] == {
        "id": "package_template",
        "parameters": {"customer": "홍길동", "package_id": "CJ-1234", "expected_delivery": "내일"},
    }


def test_send_authentication_alimtalk_prints_the_job_as_json(env: dict[str, str]) -> None:
    result = run(
        env, "send", "--alimtalk", "sinch_template_example", "--to", "+82 10-2345-6789", "--param", "code=482913",
        "--auth", "--language", "ko", "--json",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert (job["status"], job["type"], job["channel"]) == ("queued", "alimtalk", "KAKAOTALK")
    assert job["request"]["authentication"] is True
    assert job["request"]["template"]["language"] == "ko"
    assert [event["to"] for event in job["events"]] == ["queued"]


@pytest.mark.parametrize(
    "content",
    [("--text", "주문하신 상품이 발송되었습니다."), ("--media-url", "https://cdn.example.com/banner-800x600.jpg")],
    ids=["text", "media"],
)
def test_send_friendtalk_with_text_or_media(
    env: dict[str, str], redis_client: redis.Redis, content: tuple[str, str]
) -> None:
    result = run(env, "send", "--friendtalk", "--to", "010-3456-7890", *content)

    assert result.returncode == 0, result.stderr
    job = JobStore(redis_client).get(job_id_of(result))
    assert job is not None and (job.type, job.channel, job.status) == ("friendtalk", "KAKAOTALK", "queued")
    kind = "text_message" if content[0] == "--text" else "media_message"
    assert list(job.request["message"]) == [kind]


def test_send_reply_is_a_consultation_to_the_contact(env: dict[str, str], redis_client: redis.Redis) -> None:
    result = run(env, "send", "--reply", "chat-contact-7", "--text", "문의 주셔서 감사합니다.")

    assert result.returncode == 0, result.stderr
    assert "(consultation, KAKAOTALKCHAT, to contact chat-contact-7)" in result.stdout
    job = JobStore(redis_client).get(job_id_of(result))
    assert job is not None and (job.contact_id, job.status) == ("chat-contact-7", "queued")


def test_send_auto_with_send_at_is_scheduled_and_says_when_in_kst(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    tomorrow = (datetime.now(KST) + timedelta(days=1)).replace(second=0, microsecond=0)  # inside the FriendTalk window
    result = run(
        env, "send", "--auto", "--to", "010-3456-7890", "--text", "새해 복 많이 받으세요",
        "--send-at", tomorrow.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--expires-at", (tomorrow + timedelta(days=1)).isoformat(), "--callback-url", "https://producer.example/events",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert ": scheduled (friendtalk, KAKAOTALK" in result.stdout  # auto without an open session: FriendTalk
    assert f"goes at {tomorrow:%Y-%m-%d %H:%M:%S} KST" in result.stdout
    job = JobStore(redis_client).get(job_id_of(result))
    assert job is not None and job.status == "scheduled" and job.callback_url == "https://producer.example/events"


def test_send_file_from_stdin_and_the_same_idempotency_key_twice(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    document = json.dumps(
        {"type": "friendtalk", "to": {"msisdn": "010-3456-7890"},
         "message": {"choice_message": {"text_message": {"text": "배송 방법을 골라 주세요"},
                                        "choices": [{"text_message": {"text": "문 앞"}}]}},
         "metadata": {"order": 1001}}
    )  # fmt: skip

    first = run(env, "send", "--file", "-", "--idempotency-key", "order-1001", stdin=document)
    again = run(env, "send", "--file", "-", "--idempotency-key", "order-1001", stdin=document)

    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert job_id_of(first) == job_id_of(again)
    assert first.stdout.startswith("Enqueued ")
    assert again.stdout.startswith("Already enqueued (same idempotency key): ")
    job = JobStore(redis_client).get(job_id_of(first))
    assert job is not None and job.idempotency_key == "order-1001" and job.metadata == {"order": 1001}


def test_rejected_send_lists_each_violation_and_exits_1(env: dict[str, str], redis_client: redis.Redis) -> None:
    result = run(env, "send", "--alimtalk", "package_template", "--to", "010-12", "--param", "customer=홍길동")

    assert result.returncode == 1
    assert result.stdout.startswith("Rejected: 2 violations; nothing was enqueued.")
    assert "recipient.msisdn_invalid at to.msisdn: '010-12' is not a valid phone number" in result.stdout
    assert "template.parameters_missing at template.parameters:" in result.stdout
    assert "package_id, expected_delivery" in result.stdout
    assert not redis_client.keys(keys.JOB + "*")


def test_rejected_send_as_json(env: dict[str, str]) -> None:
    result = run(env, "send", "--friendtalk", "--to", "010-3456-7890", "--text", "가" * 1001, "--json")
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "rejected"
    assert [violation["rule"] for violation in verdict["violations"]] == ["text.length"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "choose exactly one of --alimtalk, --friendtalk, --reply, --auto, --file"),
        (("--friendtalk", "--auto", "--to", "010-1234-5678", "--text", "x"), "choose exactly one of"),
        (
            ("--friendtalk", "--to", "010-1234-5678", "--text", "x", "--param", "a=b"),
            "--friendtalk does not take --param",
        ),
        (("--alimtalk", "package_template"), "--alimtalk needs --to MSISDN"),
        (("--alimtalk", "package_template", "--to", "010-1234-5678", "--text", "x"), "--alimtalk does not take --text"),
        (("--friendtalk", "--to", "010-1234-5678"), "--friendtalk needs exactly one of --text or --media-url"),
        (("--reply", "c1", "--to", "010-1234-5678", "--text", "x"), "--reply does not take --to"),
        (("--alimtalk", "t", "--to", "010-1234-5678", "--param", "code"), "--param 'code' is not of the form"),
        (("--auto", "--to", "010-1234-5678", "--text", "x", "--send-at", "tomorrow"), "--send-at 'tomorrow'"),
        (("--auto", "--to", "010-1234-5678", "--text", "x", "--send-at", "2030-01-01T10:00"), "needs a UTC offset"),
        (("--file", "missing.json"), "missing.json: no such file"),
        (("--file", "examples/requests/friendtalk-text.json", "--text", "x"), "--file does not take --text"),
    ],
)
def test_bad_send_flags_are_one_line_and_exit_2(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    result = run(env, "send", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in one_error_line(result)


def test_send_says_when_redis_is_unreachable_without_the_password(env: dict[str, str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run(env, "send", "--reply", "c1", "--text", "x", KAKAO_DISPATCH_REDIS_URL=url)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "unreachable" in line and "hunter2" not in line and ":***@" in line


# --- status and cancel -------------------------------------------------------------------------


def test_status_shows_the_job_and_its_timeline_in_kst(env: dict[str, str]) -> None:
    job_id = send_alimtalk(env, "--idempotency-key", "order-77")
    assert run(env, "cancel", job_id).returncode == 0

    result = run(env, "status", job_id)

    assert result.returncode == 0, result.stderr
    fields = dict(re.findall(r"^(\w[\w ]*?)\s{2,}(.+?)\s*$", result.stdout, re.MULTILINE))
    assert fields["job"] == job_id
    assert (fields["type"], fields["channel"], fields["status"]) == ("alimtalk", "KAKAOTALK", "cancelled")
    assert fields["recipient"] == "+82******5678" and "010-1234-5678" not in result.stdout
    assert (fields["content"], fields["attempts"], fields["message id"]) == ("template package_template", "0", "-")
    assert fields["idempotency key"] == "order-77"
    rows = [line for line in result.stdout.splitlines() if " KST " in line and "│" in line]
    assert len(rows) == 2
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} KST\s+│ \(new\)\s+│ queued\s+│ created", rows[0])
    assert re.search(r"│ queued\s+│ cancelled\s+│ cancelled by producer", rows[1])


def test_status_as_json_is_the_job_record(env: dict[str, str]) -> None:
    job_id = send_alimtalk(env)
    result = run(env, "status", job_id, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert (job["id"], job["status"], job["attempts"]) == (job_id, "queued", 0)
    assert [(event["from"], event["to"], event["reason"]) for event in job["events"]] == [(None, "queued", "created")]


def test_status_of_an_unknown_job_is_one_line_and_exit_1(env: dict[str, str]) -> None:
    result = run(env, "status", "job_01J000000000000000000NOPE")
    assert result.returncode == 1
    assert one_error_line(result) == "kakao-dispatch: no job job_01J000000000000000000NOPE"


def test_cancel_twice_the_second_time_says_the_status_and_exits_1(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    job_id = send_alimtalk(env)

    first = run(env, "cancel", job_id)
    second = run(env, "cancel", job_id)

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"Cancelled {job_id} (it was queued)."
    assert second.returncode == 1
    assert f"job {job_id} is cancelled: only queued or scheduled jobs can be cancelled" in one_error_line(second)
    job = JobStore(redis_client).get(job_id)
    assert job is not None and job.status == "cancelled"
    assert run(env, "cancel", "job_nope").returncode == 1


# --- jobs tail ---------------------------------------------------------------------------------


def start_tail(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`jobs tail` in the background, returned once it says it is following (no event after that is missed)."""
    process = subprocess.Popen(
        [*COMMAND, "jobs", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stderr is not None
    line = read_line(process.stderr, timeout_s=20)
    assert line.startswith("Following kd:events"), line
    return process


def read_line(stream: IO[str], timeout_s: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"nothing to read within {timeout_s} s")
    return stream.readline()


def test_jobs_tail_count_3_follows_another_process_sending(env: dict[str, str]) -> None:
    tail = start_tail(env, "--count", "3")
    try:
        sent = [send_alimtalk(env) for _ in range(3)]
        stdout, stderr = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 3
    for line, job_id in zip(lines, sent, strict=True):
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} KST  {job_id}  \(new\) → queued  created", line
        )


def test_jobs_tail_of_one_job_from_the_start(env: dict[str, str]) -> None:
    other = send_alimtalk(env)
    job_id = send_alimtalk(env)
    assert run(env, "cancel", job_id).returncode == 0
    assert other != job_id

    result = run(env, "jobs", "tail", "--job", job_id, "--since", "start", "--count", "2")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == [
        "(new) → queued  created",
        "queued → cancelled  cancelled by producer",
    ]
    assert all(job_id in line for line in lines)


def test_jobs_tail_ends_cleanly_on_ctrl_c(env: dict[str, str]) -> None:
    tail = start_tail(env)
    tail.send_signal(signal.SIGINT)
    stdout, stderr = tail.communicate(timeout=15)
    assert tail.returncode == 0
    assert "Traceback" not in stderr and stdout == ""


def test_jobs_tail_refuses_a_bad_since(env: dict[str, str]) -> None:
    result = run(env, "jobs", "tail", "--since", "yesterday")
    assert result.returncode == 2
    assert "--since 'yesterday' is neither now nor start" in one_error_line(result)


# --- templates ---------------------------------------------------------------------------------


def test_templates_list_shows_parameters_and_authentication(env: dict[str, str]) -> None:
    result = run(env, "templates", "list")

    assert result.returncode == 0, result.stderr
    rows = {cells[0]: cells[1:] for cells in table_rows(result.stdout)}
    assert rows["package_template"] == ["ko", "customer, package_id, expected_delivery", "no"]
    assert rows["sinch_template_example"] == ["ko", "code", "yes (인증)"]
    assert rows["login_code_en"] == ["en", "code", "yes (verif)"]
    assert "4 templates in examples/templates.json" in result.stdout


def table_rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("│ ").split("│")] for line in output.splitlines() if "│" in line]


def test_templates_check_validates_the_registry(env: dict[str, str], tmp_path: Path) -> None:
    valid = run(env, "templates", "check")
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.strip() == "Template registry examples/templates.json: 4 templates, valid."

    malformed = tmp_path / "templates.json"
    malformed.write_text(json.dumps({"welcome": {"text": "hi", "lang": "ko"}}), encoding="utf-8")
    result = run(env, "templates", "check", "--templates", str(malformed))
    assert result.returncode == 1
    assert "template 'welcome' has unknown keys ['lang']" in one_error_line(result)

    too_long = tmp_path / "long.json"
    too_long.write_text(json.dumps({"long": {"text": "가" * 1001 + "#{name}"}}), encoding="utf-8")
    result = run(env, "templates", "check", "--templates", str(too_long))
    assert result.returncode == 1
    assert "long: 1001 characters before parameters, the limit is 1000" in result.stdout


def test_templates_check_reports_missing_parameters(env: dict[str, str]) -> None:
    result = run(env, "templates", "check", "package_template", "--param", "customer=홍길동", "--param", "coupon=1")

    assert result.returncode == 1
    assert "홍길동님, 주문하신 상품이 발송되었습니다. 송장번호: #{package_id}" in result.stdout
    assert re.search(r"missing:\s+package_id, expected_delivery", result.stdout)
    assert re.search(r"unused:\s+coupon", result.stdout)


def test_templates_check_reports_the_authentication_keyword(env: dict[str, str]) -> None:
    found = run(env, "templates", "check", "sinch_template_example", "--param", "code=482913", "--auth")
    assert found.returncode == 0, found.stdout + found.stderr
    assert "인증번호는 [482913] 입니다." in found.stdout
    assert "keyword '인증' found: may be sent as an authentication AlimTalk" in found.stdout

    none = run(env, "templates", "check", "order_shipped", "--param", "customer=A", "--param", "order_id=1", "--auth")
    assert none.returncode == 1
    assert "no keyword" in none.stdout and "cannot be sent as an authentication AlimTalk" in none.stdout


def test_templates_commands_need_a_registry(env: dict[str, str]) -> None:
    for command in (("templates", "list"), ("templates", "check")):
        result = run(env, *command, KAKAO_DISPATCH_TEMPLATES=None)
        assert result.returncode == 2
        assert "no template registry: pass --templates FILE or set KAKAO_DISPATCH_TEMPLATES" in one_error_line(result)
    unknown = run(env, "templates", "check", "nope")
    assert unknown.returncode == 1 and "template 'nope' is not in examples/templates.json" in one_error_line(unknown)


# --- import ------------------------------------------------------------------------------------

CAMPAIGN_HEADER = [
    "msisdn", "contact_id", "type", "template_id", "param.customer", "param.package_id", "param.expected_delivery",
    "text", "send_at", "idempotency_key", "metadata.campaign",
]  # fmt: skip
BAD_MSISDN, MISSING_PARAMETER, TEXT_TOO_LONG = 7, 27, 48  # row index modulo 60: 5 % of the rows are bad


@dataclass
class Campaign:
    path: Path
    rows: int = 0
    bad: dict[int, str] = field(default_factory=dict)  # row number -> the rule it breaks
    scheduled: set[int] = field(default_factory=set)
    own_keys: dict[int, str] = field(default_factory=dict)

    @property
    def good(self) -> list[int]:
        return [row for row in range(2, self.rows + 2) if row not in self.bad]

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def key(self, row: int) -> str:
        return self.own_keys.get(row) or f"import:{self.digest}:{row}"


def write_campaign(path: Path, rows: int) -> Campaign:
    """AlimTalk and FriendTalk rows (and ConsultationTalk replies), a few scheduled, 5 % breaking a rule; with a BOM."""
    campaign = Campaign(path, rows)
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CAMPAIGN_HEADER)
        for index in range(rows):
            number = index + 2  # the header is row 1
            msisdn = f"010-{5000 + index // 10000:04d}-{index % 10000:04d}"
            if index % 2:
                row = [msisdn, "", "alimtalk", "package_template", f"고객{index}", f"CJ-{index}", "내일", "", "", "",
                       "winter-sale"]  # fmt: skip
            elif index % 10 == 4:  # a reply to a user who wrote in: the type follows from contact_id
                row = ["", f"chat-{index}", "", "", "", "", "", f"답변 {index}", "", "", "winter-sale"]
            else:
                row = [msisdn, "", "friendtalk", "", "", "", "", f"겨울 세일 {index}", "", "", "winter-sale"]
            if index % 60 == BAD_MSISDN:
                row[0], campaign.bad[number] = "010-12", "recipient.msisdn_invalid"
            elif index % 60 == MISSING_PARAMETER:
                row[6], campaign.bad[number] = "", "template.parameters_missing"
            elif index % 60 == TEXT_TOO_LONG:
                row[7], campaign.bad[number] = "가" * 1001, "text.length"
            elif index % 100 == 3:
                row[8] = "2030-01-01T10:00:00+09:00"
                campaign.scheduled.add(number)
            if index % 50 == 5:
                row[9] = campaign.own_keys[number] = f"winter-sale-{index}"
            writer.writerow(row)
    return campaign


def summary(output: str) -> dict[str, int]:
    found = re.findall(r"^\s+([a-z ()]+):\s+([\d,]+)", output, re.MULTILINE)
    return {label.strip(): int(number.replace(",", "")) for label, number in found}


def test_import_of_10000_rows_enqueues_the_good_ones_and_writes_the_bad_ones_to_the_rejects_file(
    env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path / "winter.csv", 10_000)
    assert len(campaign.bad) == 500 and len(campaign.scheduled) > 50

    started = time.monotonic()
    result = run(env, "import", str(campaign.path))
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    headline = next(line for line in result.stdout.splitlines() if line.startswith("Imported "))
    print(f"\nimport of 10,000 rows: {elapsed:.1f} s wall clock; {headline}")
    assert summary(result.stdout) == {
        "rows read": 10_000,
        "accepted (new)": 9_500,
        "of which scheduled": len(campaign.scheduled),
        "already enqueued": 0,
        "rejected": 500,
    }
    assert f"see {tmp_path / 'winter.rejects.csv'}" in result.stdout

    with (tmp_path / "winter.rejects.csv").open(encoding="utf-8-sig", newline="") as file:
        rejected = list(csv.DictReader(file))
    assert [int(row["row"]) for row in rejected] == sorted(campaign.bad)
    for row in rejected:
        rule = campaign.bad[int(row["row"])]
        assert row["violations"].startswith(rule + ": "), row["violations"]
        assert list(row)[: len(CAMPAIGN_HEADER)] == CAMPAIGN_HEADER
    assert rejected[0]["msisdn"] == "010-12" and rejected[0]["metadata.campaign"] == "winter-sale"

    counts = {name: int(value) for name, value in redis_client.hgetall(keys.STATUS_COUNTS).items()}
    assert counts == {"queued": 9_500 - len(campaign.scheduled), "scheduled": len(campaign.scheduled)}
    stored = store_ids(redis_client, campaign, range(2, 10_002))
    assert [row for row, job_id in stored.items() if job_id is not None] == campaign.good
    assert redis_client.llen("dispatch") == 9_500 - len(campaign.scheduled)  # published: the Celery queue

    store = JobStore(redis_client)
    alimtalk, reply = store.get(str(stored[3])), store.get(str(stored[6]))  # rows 3 (index 1) and 6 (index 4)
    assert alimtalk is not None and alimtalk.request["template"]["parameters"]["customer"] == "고객1"
    assert alimtalk.metadata == {"campaign": "winter-sale"}
    assert reply is not None and (reply.type, reply.contact_id) == ("consultation", "chat-4")
    assert store.get(str(stored[7]))
    assert stored[7] == store.job_for_idempotency_key("winter-sale-5")

    again = run(env, "import", str(campaign.path))

    assert again.returncode == 0, again.stderr
    assert summary(again.stdout) == {
        "rows read": 10_000,
        "accepted (new)": 0,
        "of which scheduled": 0,
        "already enqueued": 9_500,
        "rejected": 500,
    }
    counts_after = {name: int(value) for name, value in redis_client.hgetall(keys.STATUS_COUNTS).items()}
    assert counts_after == counts and store_ids(redis_client, campaign, range(2, 10_002)) == stored


def store_ids(client: redis.Redis, campaign: Campaign, rows: range) -> dict[int, str | None]:
    """Each row's job id through its idempotency key (None: nothing was enqueued for it)."""
    found = client.mget([keys.idempotency(campaign.key(row)) for row in rows])
    return {row: None if job_id is None else str(job_id) for row, job_id in zip(rows, found, strict=True)}


def test_import_resumes_after_ctrl_c_without_enqueuing_twice(
    env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path / "resume.csv", 30_000)  # ~5 s of work: Ctrl-C comes after the first batch
    process = subprocess.Popen(
        [*COMMAND, "import", str(campaign.path), "--batch", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not redis_client.exists(keys.STATUS_COUNTS) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    first = summary(stdout)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stdout.startswith("Interrupted") or "Interrupted resume.csv" in stdout
    assert "Run the same command again to resume" in stdout

    result = run(env, "import", str(campaign.path))

    assert result.returncode == 0, result.stderr
    second = summary(result.stdout)
    good = len(campaign.good)
    assert second["rows read"] == 30_000 and second["rejected"] == len(campaign.bad)
    assert second["accepted (new)"] + second["already enqueued"] == good
    assert second["already enqueued"] >= first.get("accepted (new)", 0)
    counts = {name: int(value) for name, value in redis_client.hgetall(keys.STATUS_COUNTS).items()}
    assert sum(counts.values()) == good


def test_import_dry_run_checks_every_row_and_enqueues_nothing(
    env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path / "small.csv", 120)

    result = run(env, "import", str(campaign.path), "--dry-run", "--rejects", str(tmp_path / "bad-rows.csv"))

    assert result.returncode == 0, result.stderr
    assert "Checked (dry run, nothing enqueued) small.csv: 120 rows in" in result.stdout
    assert summary(result.stdout)["would be accepted (new)"] == 120 - len(campaign.bad)
    assert summary(result.stdout)["rejected"] == len(campaign.bad) == 6
    assert len((tmp_path / "bad-rows.csv").read_text(encoding="utf-8-sig").splitlines()) == 1 + 6
    assert not redis_client.keys(keys.PREFIX + "*")


def test_import_with_defaults_from_the_options(env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("msisdn,param.code\n010-1234-5678,111111\n010-2345-6789,222222\n,\n", encoding="utf-8")

    result = run(env, "import", str(path), "--template", "sinch_template_example", "--type", "alimtalk")

    assert result.returncode == 0, result.stderr
    assert summary(result.stdout) == {
        "rows read": 2, "accepted (new)": 2, "of which scheduled": 0, "already enqueued": 0, "rejected": 0,
        "blank rows skipped": 1,
    }  # fmt: skip
    assert not (tmp_path / "codes.rejects.csv").exists()
    job_id = JobStore(redis_client).job_for_idempotency_key(
        f"import:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}:3"
    )
    job = JobStore(redis_client).get(str(job_id))
    assert job is not None and job.request["template"] == {
        "id": "sinch_template_example",
        "parameters": {"code": "222222"},
    }


def test_import_where_every_row_is_rejected_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "all-bad.csv"
    path.write_text("msisdn,text\n12,hello\n010-1234-5678,hello,extra\n", encoding="utf-8")

    result = run(env, "import", str(path))

    assert result.returncode == 1
    assert summary(result.stdout)["rejected"] == 2
    assert "every row of" in one_error_line(result)
    rejected = (tmp_path / "all-bad.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rejected[0] == "msisdn,text,row,violations"
    assert rejected[2] == '010-1234-5678,hello,3,"csv.fields: the row has 3 fields, the header has 2"'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"phone,text\n010-1234-5678,hi\n", "no msisdn or contact_id column (the header has: phone, text)"),
        (b"msisdn,text,colour\n010-1234-5678,hi,red\n", "unknown columns colour"),
        (b"msisdn,param.\n010-1234-5678,1\n", "column 'param.' needs a name after the dot"),
        (b"msisdn,msisdn\n1,2\n", "duplicate columns msisdn"),
        (b"msisdn,text\n010-1234-5678,\xb0\xa1\n", "is not UTF-8 text (line 2"),
    ],
    ids=["missing", "empty", "no-recipient-column", "unknown-column", "empty-parameter", "duplicate", "not-utf8"],
)
def test_import_of_an_unreadable_file_or_bad_columns_is_one_line_and_exit_2(
    env: dict[str, str], redis_client: redis.Redis, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "campaign.csv"
    if content is not None:
        path.write_bytes(content)

    result = run(env, "import", str(path))

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in one_error_line(result)
    assert not redis_client.keys(keys.PREFIX + "*")
    assert not (tmp_path / "campaign.rejects.csv").exists()


def test_import_refuses_bad_options(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("msisdn,text\n010-1234-5678,hi\n", encoding="utf-8")
    for args, message in (
        (("--type", "sms"), "--type 'sms' is not one of"),
        (("--batch", "0"), "--batch must be at least 1"),
        (("--rejects", str(path)), "is the campaign file itself"),
    ):
        result = run(env, "import", str(path), *args)
        assert result.returncode == 2
        assert message in one_error_line(result)
    assert path.read_text(encoding="utf-8") == "msisdn,text\n010-1234-5678,hi\n"
