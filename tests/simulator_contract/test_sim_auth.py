"""OAuth2 client credentials, Bearer and Basic on the API, 401 with `expired` for an expired token."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sim_client import PROJECT, SimClient, friendtalk

TEXT = {"text_message": {"text": "안녕하세요"}}


def token(client: SimClient, auth: tuple[str, str] = ("sim-key", "sim-secret"), **form: str) -> httpx.Response:
    return httpx.post(f"{client.base_url}/oauth2/token", data=form or {"grant_type": "client_credentials"}, auth=auth)


def send_with(client: SimClient, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{client.base_url}/v1/projects/{PROJECT}/messages:send", json=friendtalk(TEXT), headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_client_credentials_give_a_bearer_token_that_the_api_accepts(sim: SimClient) -> None:
    response = token(sim)
    assert response.status_code == 200
    document = response.json()
    assert document["token_type"] == "Bearer" and document["scope"] == "" and document["expires_in"] == 3600
    answer = send_with(sim, {"Authorization": f"Bearer {document['access_token']}"})
    assert answer.status_code == 200 and len(answer.json()["message_id"]) == 26


def test_wrong_credentials_get_401_with_sinch_error_body(sim: SimClient) -> None:
    response = token(sim, auth=("sim-key", "wrong"))
    assert response.status_code == 401
    assert error_of(response)["status"] == "UNAUTHENTICATED" and error_of(response)["code"] == 401


def test_a_grant_type_other_than_client_credentials_is_refused(sim: SimClient) -> None:
    response = token(sim, grant_type="password")
    assert response.status_code == 400 and error_of(response)["status"] == "INVALID_ARGUMENT"


def test_basic_key_credentials_are_accepted_on_the_api(sim: SimClient) -> None:
    assert sim.send(friendtalk(TEXT)).status_code == 200


def test_missing_or_unknown_credentials_get_401_without_expired(sim: SimClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic c2ltLWtleTp4"}):
        response = send_with(sim, headers)
        assert response.status_code == 401, headers
        assert error_of(response)["status"] == "UNAUTHENTICATED"
        assert "expired" not in response.headers.get("www-authenticate", "")
    refused = [record for record in sim.messages() if record["http_status"] == 401]
    assert len(refused) == 3 and all(record["message_id"] is None for record in refused)


def test_an_expired_token_gets_401_with_expired_in_www_authenticate(start_simulator: Any) -> None:
    client: SimClient = start_simulator(token_ttl_s=0.3)
    document = token(client).json()
    assert document["expires_in"] == 1  # whole seconds, rounded up
    bearer = {"Authorization": f"Bearer {document['access_token']}"}
    assert send_with(client, bearer).status_code == 200
    time.sleep(0.35)
    response = send_with(client, bearer)
    assert response.status_code == 401
    assert "expired" in response.headers["www-authenticate"]
    fresh = token(client).json()["access_token"]
    assert send_with(client, {"Authorization": f"Bearer {fresh}"}).status_code == 200
