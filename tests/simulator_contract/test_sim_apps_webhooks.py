"""Apps (GET, PATCH with update_mask) and webhooks (create, list, get, delete, duplicates, the limit of 5)."""

from __future__ import annotations

from typing import Any

import pytest
from sim_client import APP, SimClient, friendtalk

TEXT = {"text_message": {"text": "안녕하세요"}}
SMS = {"channel": "SMS", "static_bearer": {"claimed_identity": "12345", "token": "t"}}


def channels(app: dict[str, Any]) -> list[str]:
    return [item["channel"] for item in app["channel_credentials"]]


def test_default_app_has_kakaotalk_and_kakaotalkchat_configured(sim: SimClient) -> None:
    app = sim.api("GET", f"/apps/{APP}").json()
    assert app["id"] == APP and channels(app) == ["KAKAOTALK", "KAKAOTALKCHAT"]
    kakaotalk = app["channel_credentials"][0]
    assert set(kakaotalk["kakaotalk_credentials"]) == {"kakaotalk_plus_friend_id", "kakaotalk_sender_key"}
    assert kakaotalk["state"]["status"] == "ACTIVE"
    assert app["processing_mode"] == "CONVERSATION"
    assert sim.api("GET", "/apps/other-app").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"update_mask": "channel_credentials"},
        {"update_mask.paths": "channel_credentials"},
        {"update_mask": ["channel_credentials", "display_name"]},
    ],
)
def test_patch_with_update_mask_replaces_the_listed_fields(sim: SimClient, params: dict[str, Any]) -> None:
    current = sim.api("GET", f"/apps/{APP}").json()
    body = {"channel_credentials": [current["channel_credentials"][0], SMS], "display_name": "Renamed"}
    patched = sim.api("PATCH", f"/apps/{APP}", params=params, json=body).json()
    assert channels(patched) == ["KAKAOTALK", "SMS"]
    renamed = isinstance(params.get("update_mask"), list)
    assert (patched["display_name"] == "Renamed") is renamed
    # KAKAOTALKCHAT is no longer configured: a send that asks for it is refused.
    response = sim.send(friendtalk(TEXT, channel_priority_order=["KAKAOTALKCHAT"]))
    assert response.status_code == 400 and "not configured" in response.json()["error"]["message"]


def test_patch_accepts_a_comma_separated_mask_and_clears_a_masked_field_absent_from_the_body(sim: SimClient) -> None:
    patched = sim.api("PATCH", f"/apps/{APP}", params={"update_mask": "display_name,conversation_metadata_report_view"},
                      json={"conversation_metadata_report_view": "FULL"}).json()  # fmt: skip
    assert patched["display_name"] == "" and patched["conversation_metadata_report_view"] == "FULL"


def test_patch_without_mask_replaces_the_fields_present(sim: SimClient) -> None:
    patched = sim.api("PATCH", f"/apps/{APP}", json={"display_name": "Only name"}).json()
    assert patched["display_name"] == "Only name" and channels(patched) == ["KAKAOTALK", "KAKAOTALKCHAT"]


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"update_mask": "rate_limits"}, {}),
        ({"update_mask": "nonsense"}, {}),
        ({}, {"unknown_field": 1}),
        ({"update_mask": "channel_credentials"}, {"channel_credentials": []}),
        (
            {"update_mask": "channel_credentials"},
            {"channel_credentials": [{"channel": "KAKAOTALK", "kakaotalk_credentials": {}}]},
        ),
        ({"update_mask": "channel_credentials"}, {"channel_credentials": [SMS, SMS]}),
        ({"update_mask": "processing_mode"}, {"processing_mode": "DISPATCH"}),
    ],
)
def test_invalid_patches_are_refused(sim: SimClient, params: dict[str, Any], body: dict[str, Any]) -> None:
    response = sim.api("PATCH", f"/apps/{APP}", params=params, json=body)
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_reset_restores_the_app(sim: SimClient) -> None:
    sim.api("PATCH", f"/apps/{APP}", json={"display_name": "changed"})
    sim.http.post("/_sim/reset")
    assert sim.api("GET", f"/apps/{APP}").json()["display_name"] != "changed"


# Webhooks ---------------------------------------------------------------------------------------


def create(sim: SimClient, target: str, **extra: Any) -> Any:
    return sim.api(
        "POST", "/webhooks", json={"app_id": APP, "target": target, "triggers": ["MESSAGE_DELIVERY"], **extra}
    )


def test_webhook_create_list_get_delete(sim: SimClient) -> None:
    created = create(sim, "https://hooks.example.com/a", secret="s3cret")
    assert created.status_code == 200
    webhook = created.json()
    assert (
        webhook["target_type"] == "HTTP"
        and webhook["triggers"] == ["MESSAGE_DELIVERY"]
        and webhook["secret"] == "s3cret"
    )
    listed = sim.api("GET", f"/apps/{APP}/webhooks").json()["webhooks"]
    assert [item["id"] for item in listed] == ["cli-webhook", webhook["id"]]  # the --webhook-url one first
    assert sim.api("GET", f"/webhooks/{webhook['id']}").json() == webhook
    assert sim.api("DELETE", f"/webhooks/{webhook['id']}").status_code == 200
    assert sim.api("GET", f"/webhooks/{webhook['id']}").status_code == 404
    assert sim.api("DELETE", f"/webhooks/{webhook['id']}").status_code == 404


def test_duplicate_target_for_the_same_app_is_400(sim: SimClient) -> None:
    assert create(sim, "https://hooks.example.com/dup").status_code == 200
    response = create(sim, "https://hooks.example.com/dup", triggers=["MESSAGE_INBOUND"])
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_at_most_five_webhooks_per_app(sim: SimClient) -> None:
    statuses = [create(sim, f"https://hooks.example.com/{index}").status_code for index in range(5)]
    assert statuses == [200, 200, 200, 200, 400]  # the command-line webhook is the first of five


@pytest.mark.parametrize(
    "body",
    [
        {"app_id": APP, "target": "ftp://x", "triggers": ["MESSAGE_DELIVERY"]},
        {"app_id": APP, "target": "https://x", "triggers": ["UNSPECIFIED_TRIGGER"]},
        {"app_id": APP, "target": "https://x", "triggers": ["MESSAGE_DELIVERY"], "target_type": "GRPC"},
        {"target": "https://x", "triggers": ["MESSAGE_DELIVERY"]},
        {"app_id": APP, "target": "https://x", "client_credentials": {}},
    ],
)
def test_invalid_webhooks_are_refused(sim: SimClient, body: dict[str, Any]) -> None:
    assert sim.api("POST", "/webhooks", json=body).status_code == 400


def test_webhook_for_an_unknown_app_is_404(sim: SimClient) -> None:
    response = sim.api("POST", "/webhooks", json={"app_id": "other", "target": "https://x", "triggers": []})
    assert response.status_code == 404


def test_reset_keeps_only_the_command_line_webhook(sim: SimClient) -> None:
    create(sim, "https://hooks.example.com/temporary")
    sim.api("DELETE", "/webhooks/cli-webhook")
    sim.http.post("/_sim/reset")
    listed = sim.api("GET", f"/apps/{APP}/webhooks").json()["webhooks"]
    assert [item["id"] for item in listed] == ["cli-webhook"]
