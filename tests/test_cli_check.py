"""`kakao-dispatch check` as a user runs it: JSON verdict on stdout, exit 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CLI = str(Path(sys.executable).parent / "kakao-dispatch")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FRIENDTALK = {"type": "friendtalk", "to": {"msisdn": "010-1234-5678"}, "message": {"text_message": {"text": "hi"}}}


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    environment.update(env or {})
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, env=environment)


def write(tmp_path: Path, document: Any, name: str = "request.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_accepted_request_prints_the_verdict_and_exits_0(tmp_path: Path) -> None:
    result = run(
        "check",
        str(EXAMPLES / "requests" / "alimtalk-generic.json"),
        "--templates",
        str(EXAMPLES / "templates.json"),
        "--at",
        "2026-11-24T13:00:00+09:00",
        env={"SINCH_APP_ID": "my-app"},
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "accepted"
    assert (verdict["type"], verdict["channel"], verdict["not_before"]) == ("alimtalk", "KAKAOTALK", None)
    assert verdict["request"]["app_id"] == "my-app"
    assert verdict["violations"] == [] and verdict["warnings"] == []
    assert set(verdict) == {"verdict", "type", "channel", "not_before", "request", "violations", "warnings"}


def test_rejected_request_lists_violations_and_exits_1() -> None:
    result = run(
        "check",
        str(EXAMPLES / "requests" / "alimtalk-authentication-no-keyword.json"),
        "--templates",
        str(EXAMPLES / "templates.json"),
    )
    assert result.returncode == 1
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "rejected" and verdict["request"] is None
    assert [v["rule"] for v in verdict["violations"]] == ["template.authentication_keyword"]


def test_friendtalk_at_night_gets_the_next_opening(tmp_path: Path) -> None:
    result = run("check", write(tmp_path, FRIENDTALK), "--at", "2026-12-31T14:00:00Z")
    assert result.returncode == 0
    assert json.loads(result.stdout)["not_before"] == "2027-01-01T08:00:00+09:00"


def test_window_comes_from_the_environment(tmp_path: Path) -> None:
    result = run(
        "check",
        write(tmp_path, FRIENDTALK),
        "--at",
        "2026-11-24T08:30:00+09:00",
        env={"KAKAO_DISPATCH_FRIENDTALK_WINDOW": "09:00-20:00"},
    )
    assert json.loads(result.stdout)["not_before"] == "2026-11-24T09:00:00+09:00"


def test_request_from_stdin_and_templates_from_the_environment() -> None:
    request = {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "package_template"}}
    result = run(
        "check",
        "-",
        stdin=json.dumps(request),
        env={"KAKAO_DISPATCH_TEMPLATES": str(EXAMPLES / "templates.json")},
    )
    assert result.returncode == 1
    assert [v["rule"] for v in json.loads(result.stdout)["violations"]] == ["template.parameters_missing"]


def test_no_media_probe_judges_by_name(tmp_path: Path) -> None:
    request = {
        "type": "friendtalk",
        "to": {"msisdn": "010-1234-5678"},
        "message": {"media_message": {"url": "http://127.0.0.1:9/banner.png"}},
    }
    result = run("check", write(tmp_path, request), "--no-media-probe")
    assert result.returncode == 0
    assert [w["rule"] for w in json.loads(result.stdout)["warnings"]] == ["media.not_probed"]
    probed = run("check", write(tmp_path, request))  # port 9 is closed: unreachable is a violation
    assert probed.returncode == 1
    assert [v["rule"] for v in json.loads(probed.stdout)["violations"]] == ["media.unreachable"]


@pytest.mark.parametrize(
    ("setup", "args", "fragment"),
    [
        (None, ["check", "/nonexistent/request.json"], "no such file"),
        ("{not json", ["check", "{file}"], "not valid JSON"),
        ('{"type": "alimtalk"}', ["check", "{file}", "--at", "yesterday"], "ISO-8601"),
        ('{"type": "alimtalk"}', ["check", "{file}", "--at", "2026-11-24T10:00:00"], "UTC offset"),
        (
            '{"type": "alimtalk"}',
            ["check", "{file}", "--templates", "/nonexistent.json"],
            "cannot read template",
        ),
    ],
)
def test_unreadable_input_is_one_line_and_exit_2(
    tmp_path: Path, setup: str | None, args: list[str], fragment: str
) -> None:
    path = tmp_path / "input.json"
    if setup is not None:
        path.write_text(setup, encoding="utf-8")
    result = run(*[arg.replace("{file}", str(path)) for arg in args])
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_bad_environment_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("check", write(tmp_path, {}), env={"KAKAO_DISPATCH_FRIENDTALK_WINDOW": "all day"})
    assert result.returncode == 2
    assert "KAKAO_DISPATCH_FRIENDTALK_WINDOW" in result.stderr or "friendtalk_window" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_examples_checks_every_example_and_exits_0() -> None:
    result = run("examples")
    assert result.returncode == 0, result.stdout + result.stderr
    cases = json.loads((EXAMPLES / "demo_cases.json").read_text(encoding="utf-8"))
    assert f"{len(cases)} of {len(cases)} verdicts as expected" in result.stdout
