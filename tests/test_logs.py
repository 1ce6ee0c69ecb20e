"""Log lines: JSON with the job id, numbers masked, secrets redacted; in real worker, beat and gateway processes."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from system import Pipeline

from worker import logs
from worker.redis_server import RedisServer, free_port

SECRETS = {
    "SINCH_KEY_SECRET": "sinch-secret-9f8e7d",
    "SINCH_WEBHOOK_SECRET": "whsec-0a1b2c3d",
    "KAKAO_DISPATCH_CALLBACK_SECRET": "cbsec-4e5f6a",
    "KAKAO_DISPATCH_API_KEYS": "api-key-one, api-key-two",
}


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """configure_logging into a buffer (JSON, secrets from SECRETS); the root logger is restored afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    handler = logs.configure_logging("json", level="DEBUG", stream=buffer, environ=SECRETS)
    yield buffer, logging.getLogger("kakao.test")
    root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_line_is_one_json_object_with_utc_time_level_logger_and_message(capture: Any) -> None:
    buffer, log = capture
    log.info("안녕 %s\nsecond line", "세계", extra={"attempt": 2, "detail": {"k": "v"}})
    [line] = lines(buffer)
    assert line["level"] == "INFO" and line["logger"] == "kakao.test"
    assert line["message"] == "안녕 세계\nsecond line"
    assert line["attempt"] == 2 and line["detail"] == {"k": "v"}
    assert line["time"].endswith("Z")
    assert abs(datetime.fromisoformat(line["time"]).timestamp() - time.time()) < 5
    assert "job_id" not in line


def test_every_line_inside_a_job_carries_its_id(capture: Any) -> None:
    buffer, log = capture
    with logs.job_context("job_01JOBCONTEXT"):
        log.info("claimed")
        logging.getLogger("httpx").warning("from another library")
    log.info("after", extra={"job_id": "job_01EXPLICIT"})
    log.info("outside")
    found = lines(buffer)
    assert [line.get("job_id") for line in found] == ["job_01JOBCONTEXT", "job_01JOBCONTEXT", "job_01EXPLICIT", None]


def test_exceptions_are_one_line_of_json_with_the_traceback(capture: Any) -> None:
    buffer, log = capture
    try:
        raise ValueError("token for 010-1234-5678 is api-key-one")
    except ValueError:
        log.exception("send failed")
    [line] = lines(buffer)
    assert line["level"] == "ERROR"
    assert "Traceback" in line["exception"] and "ValueError" in line["exception"]
    assert "1234-5678" not in line["exception"] and "api-key-one" not in line["exception"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("to +82 10-1234-5678 now", "to +82*********5678 now"),
        ("to +821012345678.", "to +82******5678."),
        ("identity 821012345678", "identity 821*****5678"),
        ("김민수님 010-1234-5678 확인", "김민수님 010******5678 확인"),
        ("call 01012345678", "call 010****5678"),
        ("seoul +82 2-123-4567", "seoul +82*******4567"),
    ],
)
def test_phone_numbers_are_masked_in_free_text(text: str, masked: str) -> None:
    assert logs.mask_phone_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    ["job_01HZX0101234567ABCDEFGHJK", "at 1764010123456 ms", "2026-11-24T10:00:00+09:00", "order 12010123456789",
     "uuid 65b83ed4-3265-45b2-a40c-fdb92d5a7d71", "attempt 3 of 8, retry in 2.0 s"],
)  # fmt: skip
def test_ids_times_and_other_numbers_are_left_alone(text: str) -> None:
    assert logs.mask_phone_numbers(text) == text


def test_configured_secrets_bearer_tokens_and_authorization_headers_are_redacted(capture: Any) -> None:
    buffer, log = capture
    log.warning("key %s secret %s", "api-key-two", "sinch-secret-9f8e7d")
    log.warning("webhook whsec-0a1b2c3d, callback cbsec-4e5f6a")
    log.info("headers %s", {"Authorization": "Basic c2ltLWtleTpzaW0tc2VjcmV0", "Accept": "application/json"})
    log.info("sent with Authorization: Bearer eyJhbGciOi.payload.sig to Sinch")
    log.debug('token answer {"access_token": "tok-123456", "expires_in": 3600}')
    log.info("fields", extra={"request": {"auth": "Bearer abcdef123456", "to": "010-1234-5678"}})
    text = buffer.getvalue()
    for secret in ("api-key-two", "sinch-secret-9f8e7d", "whsec-0a1b2c3d", "cbsec-4e5f6a", "c2ltLWtleTpzaW0tc2VjcmV0",
                   "eyJhbGciOi", "tok-123456", "abcdef123456", "1234-5678"):  # fmt: skip
        assert secret not in text
    found = lines(buffer)
    assert found[0]["message"] == "key *** secret ***"
    assert found[2]["message"] == "headers {'Authorization': '***', 'Accept': 'application/json'}"
    assert found[3]["message"] == "sent with Authorization: ***"  # a header value in free text: to the line end
    assert found[4]["message"] == 'token answer {"access_token": "***", "expires_in": 3600}'
    assert found[5]["request"] == {"auth": "Bearer ***", "to": "010******5678"}


def test_short_secrets_are_not_looked_for() -> None:
    assert logs.RedactingFilter(["ab"]).clean("about a tab") == "about a tab"


def test_text_format_and_level_from_the_environment() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    environ = {"KAKAO_DISPATCH_LOG_FORMAT": "text", "KAKAO_DISPATCH_LOG_LEVEL": "warning", **SECRETS}
    handler = logs.configure_logging("json", level="DEBUG", stream=buffer, environ=environ)
    try:
        log = logging.getLogger("kakao.test")
        with logs.job_context("job_01TEXT"):
            log.info("not shown at WARNING")
            log.warning("to 010-1234-5678 with api-key-one")
    finally:
        root.removeHandler(handler)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    [line] = buffer.getvalue().splitlines()
    assert line.endswith(" WARNING kakao.test: to 010******5678 with *** [job_01TEXT]")
    assert datetime.fromisoformat(line.split(" ")[0]).utcoffset() is not None


def test_an_unknown_format_falls_back_and_says_so() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    handler = logs.configure_logging("json", stream=buffer, environ={"KAKAO_DISPATCH_LOG_FORMAT": "yaml"})
    root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    [line] = lines(buffer)
    assert line["level"] == "WARNING" and "KAKAO_DISPATCH_LOG_FORMAT='yaml' is not json or text" in line["message"]


@pytest.mark.slow
def test_worker_and_beat_write_json_lines_with_the_job_id(pipeline: Pipeline) -> None:
    pipeline.start_gateway()
    worker = pipeline.start_worker()
    beat = pipeline.start_beat()
    template = {"id": "package_template", "parameters": {"package_id": "P-1"}}
    job = pipeline.producer.send({"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": template})
    pipeline.wait_for_status([job.id], {"delivered"}, timeout=30)
    receipt_logged, sent_logged = f"receipt DELIVERED for {job.id}", f"dispatch {job.id}: sent"
    pipeline.wait_for(lambda: receipt_logged in worker.log() and sent_logged in worker.log(), 10, "the log lines")

    worker_lines = json_lines(worker.log())
    mine = [line for line in worker_lines if line.get("job_id") == job.id]
    messages = {line["message"] for line in mine}
    assert f"dispatch {job.id}: sent" in messages
    assert any(
        message.startswith("Task kakao_dispatch.dispatch_job[") and "succeeded" in message for message in messages
    )
    assert any(message.startswith("HTTP Request: POST") and "messages:send" in message for message in messages)
    assert any(message.startswith("receipt DELIVERED") for message in messages)
    assert all(line["time"].endswith("Z") and line["level"] for line in worker_lines)
    assert pipeline.env_values["SINCH_KEY_SECRET"] not in worker.log()
    assert pipeline.env_values["SINCH_WEBHOOK_SECRET"] not in worker.log()
    assert any(line["message"] == "beat: Starting..." for line in json_lines(beat.log()))


@pytest.mark.slow
def test_gateway_process_logs_json_with_numbers_masked_and_keys_redacted(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    env |= SECRETS | {"KAKAO_DISPATCH_REDIS_URL": redis_server.url, "PYTHONUNBUFFERED": "1"}
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    command = [str(Path(sys.executable).with_name("kakao-dispatch")), "gateway", "--port", str(port)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, stderr.read_text()
                time.sleep(0.1)
        assert httpx.get(url + "/healthz", params={"key": "api-key-two", "to": "010-1234-5678"}).status_code == 200
        refused = httpx.post(url + "/webhooks/sinch", content=b"{}", headers={"Content-Type": "application/json"})
        assert refused.status_code == 401
        assert httpx.get(url + "/metrics").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    assert stdout.read_text().startswith(f"kakao-dispatch gateway on http://127.0.0.1:{port} ")  # the CLI's own line
    text = stderr.read_text()
    found = [json.loads(line) for line in text.splitlines()]  # every line on stderr is JSON
    access = [line["message"] for line in found if line["logger"] == "uvicorn.access"]
    assert any("/healthz?key=***&to=010******5678" in message for message in access)
    assert any(line["logger"] == "producers.gateway" and "missing_headers" in line["message"] for line in found)
    assert any(
        line["logger"] == "uvicorn.error" and "Application startup complete" in line["message"] for line in found
    )
    assert "api-key-two" not in text and "1234-5678" not in text
