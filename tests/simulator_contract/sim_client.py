"""The simulator tests' client: constants, request builders and an HTTP client with control helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from simulator import TemplateRegistry

PROJECT = "sim-project"
APP = "sim-app"
SECRET = "receiver-secret"
NOON_KST = "2026-11-24T12:00:00+09:00"
TEMPLATES = TemplateRegistry.from_mapping(
    {
        "package_template": {
            "text": "#{customer}님, 주문하신 상품이 발송되었습니다. "
            "송장번호: #{package_id}, 도착 예정일: #{expected_delivery}",
            "language": "ko",
        },
        "sinch_template_example": {"text": "인증번호는 [#{code}] 입니다.", "language": "ko"},
        "login_code_en": {"text": "Your VERIFICATION code is #{code}.", "language": "en"},
        "plain_notice": {"text": "#{name}님, 공지사항이 있습니다: #{notice}", "language": "ko"},
        "password_reset": {"text": "Reset your Password with #{code}", "language": "en"},
        "japanese_auth": {"text": "認証コード #{code}", "language": "ja"},
    }
)


def kakaotalk_recipient(msisdn: str = "+821012345678") -> dict[str, Any]:
    return {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": msisdn}]}}


def alimtalk(template_id: str, parameters: dict[str, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_id": APP,
        "recipient": kakaotalk_recipient(),
        "message": {
            "template_message": {
                "channel_template": {"KAKAOTALK": {"template_id": template_id, "parameters": parameters}}
            }
        },
    }
    body.update(extra)
    return body


def friendtalk(message: dict[str, Any], msisdn: str = "+821012345678", **extra: Any) -> dict[str, Any]:
    return {"app_id": APP, "recipient": kakaotalk_recipient(msisdn), "message": message, **extra}


class SimClient:
    """An HTTP client of one simulator, authenticated with Basic credentials, plus control helpers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, auth=("sim-key", "sim-secret"), timeout=10)

    def send(self, body: Any, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/v1/projects/{PROJECT}/messages:send", json=body, **kwargs)

    def accepted(self, body: Any) -> str:
        response = self.send(body)
        assert response.status_code == 200, response.text
        message_id: str = response.json()["message_id"]
        return message_id

    def messages(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.http.get("/_sim/messages").json()
        return records

    def record(self, message_id: str) -> dict[str, Any]:
        return next(record for record in self.messages() if record["message_id"] == message_id)

    def outcome(self, body: Any) -> tuple[str, dict[str, Any] | None]:
        """(outcome, reason) of an accepted message, as recorded at acceptance."""
        record = self.record(self.accepted(body))
        return record["outcome"], record["reason"]

    def faults(self, **faults: Any) -> None:
        response = self.http.put("/_sim/faults", json=faults)
        assert response.status_code == 200, response.text

    def clock(self, now: str) -> None:
        assert self.http.put("/_sim/clock", json={"now": now}).status_code == 200

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/_sim/stats").json()
        return stats

    def stats_when(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The stats once `condition` holds: callbacks are counted after the receiver's answer arrives."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if condition(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"stats never met the condition: {stats}")
            time.sleep(0.01)

    def inbound(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/_sim/inbound", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/v1/projects/{PROJECT}{path}", **kwargs)

    def close(self) -> None:
        self.http.close()
