"""The verdict on a send request: accepted with its Sinch body and `not_before`, or rejected with named violations.

This is the one place that strings the rules together; `kakao-dispatch check`, the producers and the
worker's re-check before sending all call `check_request`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.channels import Channel, ChannelDecision, Kind, SessionLookup, choose_channel
from worker.recipients import InvalidMsisdn, mask_msisdn, parse_msisdn
from worker.rules import TEXT_MAX, Findings, MediaLookup, check_message, check_text_length
from worker.send_request import SendRequest, parse_send_request
from worker.sending_window import FRIENDTALK_HOURS, KST, SendingWindow
from worker.sinch_body import build_send_body
from worker.templates import AUTHENTICATION_KEYWORDS, TemplateRegistry, has_authentication_keyword
from worker.violations import RuleWarning, Violation

PLACEHOLDER_JOB_ID = "job_check_placeholder"
#: The instants the rules can compute with: converting to KST and UTC and the FriendTalk window add up to a day,
#: which overflows Python's datetime range within two days of year 1 or 9999 (rule `instant_range`).
EARLIEST_INSTANT = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
LATEST_INSTANT = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


@dataclass(frozen=True)
class CheckContext:
    """Everything a verdict depends on besides the request itself."""

    now: datetime
    window: SendingWindow = field(default_factory=lambda: SendingWindow.parse(FRIENDTALK_HOURS))
    templates: TemplateRegistry | None = None
    media: MediaLookup | None = None
    sessions: SessionLookup | None = None
    app_id: str = ""
    job_id: str = PLACEHOLDER_JOB_ID


@dataclass(frozen=True)
class Verdict:
    request: SendRequest | None
    type: Kind | None
    channel: Channel | None
    not_before: datetime | None
    body: dict[str, Any] | None
    violations: tuple[Violation, ...]
    warnings: tuple[RuleWarning, ...]
    decision: ChannelDecision | None = None
    msisdn: str | None = None

    @property
    def accepted(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        """The JSON verdict of DESIGN §6."""
        return {
            "verdict": "accepted" if self.accepted else "rejected",
            "type": self.type,
            "channel": self.channel,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "request": self.body,
            "violations": [violation.as_dict() for violation in self.violations],
            "warnings": [warning.as_dict() for warning in self.warnings],
        }


def check_request(data: Any, context: CheckContext) -> Verdict:
    """Apply every KakaoTalk rule to a request (a parsed `SendRequest` or its JSON document)."""
    parsed = data if isinstance(data, SendRequest) else parse_send_request(data)
    if not isinstance(parsed, SendRequest):
        requested = data.get("type") if isinstance(data, dict) else None
        kind: Any = requested if requested in ("alimtalk", "friendtalk", "consultation") else None
        return Verdict(None, kind, None, None, None, tuple(parsed), ())
    request = parsed
    findings = Findings()

    msisdn = None
    if request.to.msisdn is not None:
        try:
            number = parse_msisdn(request.to.msisdn)
        except InvalidMsisdn as error:
            findings.violate(
                "recipient.msisdn_invalid", "to.msisdn", "a valid phone number", request.to.msisdn, str(error)
            )
        else:
            msisdn = number.e164
            if not number.is_mobile:
                findings.warn(
                    "recipient.not_mobile",
                    "to.msisdn",
                    f"{mask_msisdn(number.e164)} is not a mobile number; KakaoTalk accounts use mobile numbers",
                )

    decision = choose_channel(request, msisdn, context.sessions)
    _check_kind(request, decision, findings)
    sms_text = _check_template(request, decision, context.templates, findings)
    if request.message is not None:
        check_message(request.message, decision.channel, context.media, findings)
    not_before = _schedule(request, decision, context, findings) if _instants_in_range(request, findings) else None

    body = None
    if not findings.violations:
        body = build_send_body(
            request, decision, msisdn=msisdn, app_id=context.app_id, job_id=context.job_id, sms_text=sms_text
        )
    return Verdict(
        request,
        decision.type,
        decision.channel,
        not_before,
        body,
        tuple(findings.violations),
        tuple(findings.warnings),
        decision,
        msisdn,
    )


def _check_kind(request: SendRequest, decision: ChannelDecision, findings: Findings) -> None:
    """Recipient kind, content kind and options that fit the chosen kind of message."""
    kind = decision.type
    if kind in ("alimtalk", "friendtalk") and request.to.msisdn is None:
        findings.violate(
            "recipient.msisdn_required",
            "to",
            "msisdn",
            "contact_id",
            f"{_name(kind)} is addressed to a phone number: give to.msisdn",
        )
    if kind == "consultation" and request.to.contact_id is None and decision.contact_id is None:
        findings.violate(
            "recipient.contact_id_required",
            "to",
            "contact_id",
            "msisdn",
            "ConsultationTalk replies go to the KAKAOTALKCHAT contact that wrote: give to.contact_id",
        )
    if kind == "alimtalk":
        if request.template is None:
            findings.violate(
                "template.required",
                "template",
                None,
                None,
                "AlimTalk sends an approved template: give template.id and its parameters",
            )
        if request.message is not None:
            findings.violate(
                "alimtalk.message_not_allowed",
                "message",
                None,
                request.message.kind,
                "AlimTalk sends only its approved template; use type friendtalk for a free message",
            )
        return
    if request.template is not None:
        findings.violate(
            "template.alimtalk_only",
            "template",
            None,
            kind,
            f"`template` is an AlimTalk template; {_name(kind)} takes a message "
            "(an omni-channel template goes in message.template_message.omni_template)",
        )
    if request.message is None:
        findings.violate("message.required", "message", None, None, f"{_name(kind)} needs a message")
    elif request.message.template_message is not None:
        template_message = request.message.template_message
        if kind == "consultation":
            findings.violate(
                "consultation.template_not_allowed",
                "message.template_message",
                None,
                "template_message",
                "a template is never sent as a ConsultationTalk reply",
            )
        elif template_message.channel_template is not None:
            findings.violate(
                "friendtalk.channel_template_not_allowed",
                "message.template_message.channel_template",
                None,
                "channel_template",
                "a KakaoTalk channel template is an AlimTalk: use type alimtalk with `template`",
            )
    if request.authentication:
        findings.violate(
            "authentication.alimtalk_only",
            "authentication",
            "alimtalk",
            kind,
            "only AlimTalk templates can be sent as authentication messages",
        )
    if request.sms_fallback and kind == "consultation":
        findings.violate(
            "sms_fallback.needs_msisdn",
            "sms_fallback",
            None,
            kind,
            "SMS fallback needs a phone number; a ConsultationTalk reply has only a contact id",
        )


def _check_template(
    request: SendRequest, decision: ChannelDecision, templates: TemplateRegistry | None, findings: Findings
) -> str | None:
    """Registry checks of an AlimTalk template; returns the rendered text when SMS fallback needs it."""
    template_request = request.template
    if decision.type != "alimtalk" or template_request is None:
        return None
    template = templates.get(template_request.id) if templates is not None else None
    if template is None:
        where = "the template registry" if templates is not None else "any registry (none configured)"
        findings.warn(
            "template.unknown",
            "template.id",
            f"template {template_request.id!r} is not in {where}: parameters and the authentication "
            "keyword are not checked here; Sinch's receipt will tell",
        )
        if request.sms_fallback:
            findings.violate(
                "sms_fallback.template_text_unknown",
                "sms_fallback",
                None,
                template_request.id,
                "SMS fallback of an AlimTalk sends the template's text; the registry must know it",
            )
        return None
    if template_request.language and template.language and template_request.language != template.language:
        findings.violate(
            "template.language",
            "template.language",
            template.language,
            template_request.language,
            f"template {template.id!r} is registered in {template.language!r}; each language is a "
            "separately approved template",
        )
    missing = [name for name in template.parameters if name not in template_request.parameters]
    if missing:
        findings.violate(
            "template.parameters_missing",
            "template.parameters",
            ", ".join(template.parameters),
            ", ".join(missing),
            f"template {template.id!r} needs parameter(s) {', '.join(missing)}",
        )
    extra = sorted(set(template_request.parameters) - set(template.parameters))
    if extra:
        findings.warn(
            "template.parameters_unused",
            "template.parameters",
            f"template {template.id!r} has no parameter(s) {', '.join(extra)}; they are ignored",
        )
    rendered = template.render(template_request.parameters)
    check_text_length(rendered, "template (rendered)", "template.text_length", findings, TEXT_MAX)
    if request.authentication and not has_authentication_keyword(rendered):
        keywords = ", ".join(AUTHENTICATION_KEYWORDS)
        findings.violate(
            "template.authentication_keyword",
            "template",
            f"one of {keywords}",
            rendered[:80],
            f"an authentication AlimTalk must contain one of the keywords {keywords} after substitution",
        )
    return rendered if request.sms_fallback else None


def _instants_in_range(request: SendRequest, findings: Findings) -> bool:
    """`send_at` and `expires_at` within the range the schedule can be computed in (else `instant_range`)."""
    in_range = True
    for path, moment in (("send_at", request.send_at), ("expires_at", request.expires_at)):
        if moment is not None and not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
            in_range = False
            findings.violate(
                "instant_range",
                path,
                f"{EARLIEST_INSTANT:%Y-%m-%d} to {LATEST_INSTANT:%Y-%m-%d} (UTC)",
                moment.isoformat(),
                f"{path} is too close to the end of the calendar to schedule",
            )
    return in_range


def _schedule(
    request: SendRequest, decision: ChannelDecision, context: CheckContext, findings: Findings
) -> datetime | None:
    """When the message may go: `send_at`, then the FriendTalk window; None means now.

    Cut to a whole millisecond, the unit the job store keeps, so the instant a producer is told is exactly the
    one stored; what is left of `send_at` below a millisecond does not make the worker's re-check wait again.
    """
    now = context.now.astimezone(UTC)
    earliest = max(now, request.send_at) if request.send_at is not None else now
    if decision.type == "friendtalk":
        earliest = context.window.next_opening(earliest)
    expires_at = request.expires_at
    if expires_at is not None:
        if expires_at <= now:
            findings.violate(
                "schedule.expired",
                "expires_at",
                now.astimezone(KST).isoformat(),
                expires_at.isoformat(),
                "expires_at is already past",
            )
        elif expires_at <= earliest:
            findings.violate(
                "schedule.expires_before_send",
                "expires_at",
                earliest.astimezone(KST).isoformat(),
                expires_at.isoformat(),
                f"the message cannot go before {earliest.astimezone(KST).isoformat()}"
                f"{' (FriendTalk window ' + str(context.window) + ' KST)' if decision.type == 'friendtalk' else ''}"
                ", after expires_at",
            )
    not_before = earliest.replace(microsecond=earliest.microsecond // 1000 * 1000)
    return not_before.astimezone(KST) if not_before > now else None


def _name(kind: str) -> str:
    return {"alimtalk": "AlimTalk", "friendtalk": "FriendTalk", "consultation": "ConsultationTalk"}.get(kind, kind)
