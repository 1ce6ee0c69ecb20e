"""Contacts: created on the first send to an MSISDN, looked up, merged with Sinch's MERGE strategy."""

from __future__ import annotations

from sim_client import APP, SimClient, friendtalk

TEXT = {"text_message": {"text": "안녕하세요"}}


def test_sending_to_a_new_msisdn_creates_a_kakaotalk_contact_once(sim: SimClient) -> None:
    first = sim.record(sim.accepted(friendtalk(TEXT, msisdn="+821055556666")))["contact_id"]
    second = sim.record(sim.accepted(friendtalk(TEXT, msisdn="821055556666")))["contact_id"]  # same user, no +
    assert first == second
    contact = sim.api("GET", f"/contacts/{first}").json()
    assert contact["channel_identities"] == [{"channel": "KAKAOTALK", "identity": "+821055556666", "app_id": ""}]
    assert contact["channel_priority"] == ["KAKAOTALK"] and contact["language"] == "UNSPECIFIED"


def test_unknown_contact_is_404(sim: SimClient) -> None:
    response = sim.api("GET", "/contacts/nobody")
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"


def test_merge_moves_the_chat_identity_and_retires_the_source(sim: SimClient) -> None:
    destination = sim.record(sim.accepted(friendtalk(TEXT, msisdn="+821077778888")))["contact_id"]
    written = sim.inbound(text="제 번호는 010-7777-8888 입니다")
    response = sim.api(
        "POST", f"/contacts/{destination}:merge", json={"source_id": written["contact_id"], "strategy": "MERGE"}
    )
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["id"] == destination
    assert merged["channel_identities"] == [
        {"channel": "KAKAOTALK", "identity": "+821077778888", "app_id": ""},
        {"channel": "KAKAOTALKCHAT", "identity": written["identity"], "app_id": ""},
    ]
    assert merged["channel_priority"] == ["KAKAOTALK", "KAKAOTALKCHAT"]
    assert sim.api("GET", f"/contacts/{written['contact_id']}").status_code == 404
    assert sim.api("GET", f"/contacts/{destination}").json() == merged


def test_after_a_merge_the_user_is_reached_by_channel_priority(sim: SimClient) -> None:
    destination = sim.record(sim.accepted(friendtalk(TEXT, msisdn="+821011112222")))["contact_id"]
    written = sim.inbound(text="상담 원해요")
    sim.api("POST", f"/contacts/{destination}:merge", json={"source_id": written["contact_id"]})
    reply = {"app_id": APP, "recipient": {"contact_id": destination}, "message": TEXT}
    assert sim.record(sim.accepted(reply))["channel"] == "KAKAOTALKCHAT"  # the channel the user wrote from
    forced = {**reply, "channel_priority_order": ["KAKAOTALK"]}
    assert sim.record(sim.accepted(forced))["kind"] == "friendtalk"
    # The merged-away id is gone: replies through it are refused at once.
    old = {"app_id": APP, "recipient": {"contact_id": written["contact_id"]}, "message": TEXT}
    assert sim.send(old).status_code == 404


def test_merge_keeps_the_destination_identity_of_a_shared_channel(sim: SimClient) -> None:
    first = sim.record(sim.accepted(friendtalk(TEXT, msisdn="+821033334444")))["contact_id"]
    second = sim.record(sim.accepted(friendtalk(TEXT, msisdn="+821033335555")))["contact_id"]
    merged = sim.api("POST", f"/contacts/{first}:merge", json={"source_id": second}).json()
    assert [identity["identity"] for identity in merged["channel_identities"]] == ["+821033334444"]


def test_merge_refuses_bad_requests(sim: SimClient) -> None:
    contact = sim.record(sim.accepted(friendtalk(TEXT)))["contact_id"]
    assert sim.api("POST", f"/contacts/{contact}:merge", json={"source_id": contact}).status_code == 400
    assert sim.api("POST", f"/contacts/{contact}:merge", json={}).status_code == 400
    assert (
        sim.api("POST", f"/contacts/{contact}:merge", json={"source_id": "x", "strategy": "UNION"}).status_code == 400
    )
    assert sim.api("POST", f"/contacts/{contact}:merge", json={"source_id": "nobody"}).status_code == 404
    assert sim.api("POST", "/contacts/nobody:merge", json={"source_id": contact}).status_code == 404
