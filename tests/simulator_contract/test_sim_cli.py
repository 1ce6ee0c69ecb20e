"""The `simulator` command: its options, refusals of bad values, and a real start-up on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from simulator.cli import register


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:
        """A second command, so that `simulator` is addressed by name as under kakao-dispatch."""

    return app


def test_the_command_offers_every_documented_option() -> None:
    result = CliRunner().invoke(cli(), ["simulator", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--templates", "--webhook-url", "--webhook-secret", "--rate-limit", "--key-id",
        "--key-secret", "--receipt-delay-ms", "--project-id", "--app-id", "--friendtalk-window", "--token-ttl",
    ):  # fmt: skip
        assert option in result.output, option


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--receipt-delay-ms", "1000-100"], "upper bound"),
        (["--receipt-delay-ms", "soon"], "range of milliseconds"),
        (["--friendtalk-window", "8-21"], "window"),
        (["--key-id", "only-the-id"], "--key-secret"),
        (["--templates", "/no/such/templates.json"], "no such file"),
        (["--webhook-url", "hooks.example.com"], "http"),
        (["--webhook-secret", "s"], "--webhook-url"),
    ],
)
def test_bad_values_exit_2_with_a_message(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli(), ["simulator", *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_started_from_the_command_line_it_prints_its_settings_and_serves(tmp_path: Path) -> None:
    templates = tmp_path / "templates.json"
    templates.write_text('{"hello": {"text": "안녕 #{name}", "language": "ko"}}', encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "simulator", "--port", str(port), "--templates", str(templates),
               "--project-id", "p1", "--app-id", "a1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                token = httpx.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                                   auth=("sim-key", "sim-secret"))  # fmt: skip
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None, "the simulator did not start"
                time.sleep(0.05)
        assert token.status_code == 200
        app = httpx.get(f"{url}/v1/projects/p1/apps/a1", auth=("sim-key", "sim-secret"))
        assert app.status_code == 200 and app.json()["id"] == "a1"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "SINCH_KEY_ID=sim-key  SINCH_KEY_SECRET=sim-secret" in output
    assert "SINCH_PROJECT_ID=p1  SINCH_APP_ID=a1" in output
    assert "templates: 1 loaded" in output
    assert "+82 10-9999-0000" in output
