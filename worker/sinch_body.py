"""The exact `messages:send` body for a checked request (reference/sinch-conversation-api.md §3)."""

from __future__ import annotations

from typing import Any

from worker.channels import ChannelDecision
from worker.send_request import SendRequest


def build_send_body(
    request: SendRequest,
    decision: ChannelDecision,
    *,
    msisdn: str | None,
    app_id: str,
    job_id: str,
    sms_text: str | None = None,
) -> dict[str, Any]:
    """`app_id`, recipient, message, channel order, channel properties; the job id rides in the metadata.

    The job id in `message_metadata` and `correlation_id` is how a receipt finds its job even when
    the send's answer (and so the message id) was lost.
    """
    channels: list[str] = [decision.channel]
    if decision.channel == "KAKAOTALKCHAT":
        contact_id = decision.contact_id or request.to.contact_id
        recipient: dict[str, Any] = {"contact_id": contact_id}
    else:
        identities = [{"channel": "KAKAOTALK", "identity": msisdn}]
        if request.sms_fallback:
            identities.append({"channel": "SMS", "identity": msisdn})
            channels.append("SMS")
        recipient = {"identified_by": {"channel_identities": identities}}

    body: dict[str, Any] = {
        "app_id": app_id,
        "recipient": recipient,
        "message": _message(request, decision, sms_text),
        "channel_priority_order": channels,
    }
    if decision.type == "alimtalk" and request.authentication:
        body["channel_properties"] = {"KAKAOTALK_AUTHENTICATION": "true"}
    body["message_metadata"] = job_id
    body["correlation_id"] = job_id
    return body


def _message(request: SendRequest, decision: ChannelDecision, sms_text: str | None) -> dict[str, Any]:
    if decision.type == "alimtalk":
        template = request.template
        assert template is not None, "an AlimTalk decision always carries a template"
        reference: dict[str, Any] = {"template_id": template.id, "parameters": dict(template.parameters)}
        if template.language:
            reference["language_code"] = template.language
        message: dict[str, Any] = {"template_message": {"channel_template": {"KAKAOTALK": reference}}}
        if sms_text is not None:
            message["explicit_channel_message"] = {"SMS": sms_text}
        return message
    assert request.message is not None, "FriendTalk and ConsultationTalk decisions always carry a message"
    return request.message.to_sinch()
