"""The template registry: rendering, missing parameters and the authentication keyword check."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from worker.sending_window import KST
from worker.templates import (
    AUTHENTICATION_KEYWORDS,
    Template,
    TemplateRegistry,
    TemplateRegistryError,
    has_authentication_keyword,
)
from worker.verdict import CheckContext, check_request

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=KST)
REGISTRY = TemplateRegistry.from_mapping(
    {
        "package_template": {"text": "#{package_id} 도착 예정: #{expected_delivery}", "language": "ko"},
        "otp": {"text": "#{word}: #{code}", "language": "ko"},
        "plain": {"text": "배송이 시작되었습니다", "language": "ko"},
    }
)


def alimtalk(template: dict[str, Any], authentication: bool = False) -> dict[str, Any]:
    return {
        "type": "alimtalk",
        "to": {"msisdn": "010-1234-5678"},
        "template": template,
        "authentication": authentication,
    }


def rules(request: dict[str, Any], registry: TemplateRegistry | None = REGISTRY) -> list[str]:
    verdict = check_request(request, CheckContext(now=NOON, templates=registry))
    return [violation.rule for violation in verdict.violations]


def test_render_replaces_every_parameter_and_lists_them_in_order() -> None:
    template = Template("t", "#{a}-#{b}-#{a}")
    assert template.parameters == ("a", "b")
    assert template.render({"a": "1", "b": "2"}) == "1-2-1"
    assert template.render({"a": "1"}) == "1-#{b}-1"


def test_a_parameter_name_may_hold_spaces_as_kakaotalk_reads_it() -> None:
    template = Template("t", "Hi #{first name}, #{code}")
    assert template.parameters == ("first name", "code")
    assert template.render({"first name": "민수", "code": "1"}) == "Hi 민수, 1"


@pytest.mark.parametrize("keyword", AUTHENTICATION_KEYWORDS)
def test_every_keyword_makes_an_authentication_message(keyword: str) -> None:
    assert rules(alimtalk({"id": "otp", "parameters": {"word": keyword, "code": "1234"}}, True)) == []


@pytest.mark.parametrize(
    "text",
    [
        "본인 인증번호는 1234",
        "비밀번호 재설정 코드 1234",
        "認証コード: 1234",
        "にんしょうコード 1234",
        "Your Verification code",
        "AUTH code",
        "your PASSWORD reset",
    ],
)
def test_keywords_in_korean_japanese_and_any_case(text: str) -> None:
    assert has_authentication_keyword(text)


@pytest.mark.parametrize("text", ["주문 번호 1234", "コード 1234", "your code is 1234", "veri fication"])
def test_text_without_keyword_is_not_authentication(text: str) -> None:
    assert not has_authentication_keyword(text)


def test_keyword_is_checked_after_substitution() -> None:
    assert rules(alimtalk({"id": "otp", "parameters": {"word": "코드", "code": "1234"}}, True)) == [
        "template.authentication_keyword"
    ]
    # the same template as a generic AlimTalk needs no keyword
    assert rules(alimtalk({"id": "otp", "parameters": {"word": "코드", "code": "1234"}})) == []


def test_missing_parameters_are_named() -> None:
    verdict = check_request(
        alimtalk({"id": "package_template", "parameters": {"package_id": "1"}}),
        CheckContext(now=NOON, templates=REGISTRY),
    )
    [violation] = verdict.violations
    assert violation.rule == "template.parameters_missing"
    assert violation.actual == "expected_delivery"
    assert violation.limit == "package_id, expected_delivery"


def test_unknown_template_is_accepted_with_a_warning() -> None:
    verdict = check_request(
        alimtalk({"id": "nobody_knows", "parameters": {}}, True), CheckContext(now=NOON, templates=REGISTRY)
    )
    assert verdict.accepted
    assert [warning.rule for warning in verdict.warnings] == ["template.unknown"]
    without_registry = check_request(alimtalk({"id": "x"}), CheckContext(now=NOON))
    assert without_registry.accepted and "none configured" in without_registry.warnings[0].message


def test_extra_parameters_warn_and_language_must_match() -> None:
    verdict = check_request(
        alimtalk({"id": "plain", "parameters": {"unused": "1"}}), CheckContext(now=NOON, templates=REGISTRY)
    )
    assert verdict.accepted and [w.rule for w in verdict.warnings] == ["template.parameters_unused"]
    assert rules(alimtalk({"id": "plain", "language": "en"})) == ["template.language"]
    assert rules(alimtalk({"id": "plain", "language": "ko"})) == []


def test_rendered_template_longer_than_1000_characters_is_refused() -> None:
    assert rules(alimtalk({"id": "otp", "parameters": {"word": "a" * 990, "code": "12345678"}})) == []
    assert rules(alimtalk({"id": "otp", "parameters": {"word": "a" * 990, "code": "123456789"}})) == [
        "template.text_length"
    ]


def test_registry_file_errors_are_one_clear_sentence(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": {"text": "#{x}", "language": "ko"}}), encoding="utf-8")
    assert TemplateRegistry.from_file(good)["a"].parameters == ("x",)
    cases = {
        "missing.json": None,
        "notjson.json": "{nope",
        "list.json": "[]",
        "notext.json": json.dumps({"a": {"language": "ko"}}),
        "extra.json": json.dumps({"a": {"text": "t", "body": "b"}}),
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content, encoding="utf-8")
        with pytest.raises(TemplateRegistryError) as error:
            TemplateRegistry.from_file(path)
        assert "\n" not in str(error.value)
