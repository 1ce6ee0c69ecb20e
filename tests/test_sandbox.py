"""`kakao-dispatch sandbox` and `kakao-dispatch demo` run as a user runs them: subprocesses, real ports, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from producers.story import demo_window, free_ports
from worker.redis_server import port_is_free
from worker.sending_window import KST, SendingWindow

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "producers"]


def clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}


def leftovers(directory: str) -> list[str]:
    """Processes still running whose command line names the sandbox's private directory."""
    found = subprocess.run(["pgrep", "-af", directory], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("minute", range(0, 24 * 60, 5))
def test_the_demo_window_is_open_now_and_parks_until_the_opening(minute: int) -> None:
    now = datetime(2026, 11, 24, tzinfo=KST) + timedelta(minutes=minute, seconds=17)
    text, parked = demo_window(now)
    window = SendingWindow.parse(text)
    for later in (0, 60, 300):  # open for the whole story
        assert window.contains(now + timedelta(seconds=later)), (text, later)
    assert parked > now and not window.contains(parked)
    opening = window.next_opening(parked)
    early_slot = 7 * 60 + 45 <= minute < 8 * 60
    assert (opening.hour, opening.minute) == ((7, 30) if early_slot else (8, 0))
    assert opening - now < timedelta(hours=25)


def test_demo_runs_the_whole_story_and_exits_0() -> None:
    result = subprocess.run([*CLI, "demo"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    assert "19 of 19 messages as the story expects" in out
    assert "delivered after 3 attempts" in out or "delivered after 2 attempts" in out
    assert re.search(r"scheduled, goes \d{4}-\d\d-\d\d 0[78]:[03]0 KST", out)
    directory = re.search(r"logs\s+(\S+)", out)
    assert directory and not Path(directory.group(1)).exists()
    assert leftovers(directory.group(1)) == []
    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", out)]
    assert ports and all(port_is_free(port) for port in set(ports))


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{''.join(seen)}")


def test_sandbox_serves_the_system_and_ctrl_c_leaves_nothing_behind() -> None:
    api, sim, redis_port, flower = free_ports(4)
    options = ["--api-port", str(api), "--sim-port", str(sim), "--redis-port", str(redis_port),
               "--flower-port", str(flower), "--friendtalk-window", "00:00-23:59"]  # fmt: skip
    process = subprocess.Popen([*CLI, "sandbox", *options], cwd=ROOT, env=clean_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        banner = wait_for_line(process, "Ctrl-C stops everything.", 90)
        directory = re.search(r"logs\s+(\S+)", banner)
        assert directory and Path(directory.group(1)).is_dir()
        base = f"http://127.0.0.1:{api}"
        request = {"type": "friendtalk", "to": {"msisdn": "010-3456-7890"},
                   "message": {"text_message": {"text": "샌드박스에서 보냅니다"}}}  # fmt: skip
        answer = httpx.post(base + "/v1/messages", json=request, timeout=10)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 30
        while (job := httpx.get(f"{base}/v1/jobs/{job_id}", timeout=10).json())["status"] != "delivered":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        sent = httpx.get(f"http://127.0.0.1:{sim}/_sim/messages", timeout=10).json()
        assert [item["request"]["correlation_id"] for item in sent] == [job_id]
        assert httpx.get(f"http://127.0.0.1:{flower}/healthcheck", timeout=10).text == "OK"
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "stopped; nothing left behind" in output
    assert not Path(directory.group(1)).exists()
    assert leftovers(directory.group(1)) == []
    assert all(port_is_free(port) for port in (api, sim, redis_port, flower))


def test_sandbox_with_a_taken_port_fails_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        others = free_ports(3)
        result = subprocess.run(
            [*CLI, "sandbox", "--api-port", str(port), "--sim-port", str(others[0]), "--redis-port", str(others[1]),
             "--flower-port", str(others[2])],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"kakao-dispatch: sandbox: port {port} (--api-port) is already in use"
    ]
