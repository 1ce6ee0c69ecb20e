"""The send request document (DESIGN §6): one JSON shape for the HTTP API, the producer, the CLI and `check`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.messages import AppMessage
from worker.violations import Violation

MessageType = Literal["alimtalk", "friendtalk", "consultation", "auto"]


class Recipient(BaseModel):
    """Who receives the message: an MSISDN (AlimTalk, FriendTalk) or a KAKAOTALKCHAT contact id (ConsultationTalk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    msisdn: str | None = Field(None, min_length=1, max_length=32)
    contact_id: str | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _one_address(self) -> Recipient:
        if (self.msisdn is None) == (self.contact_id is None):
            raise ValueError("`to` needs exactly one of msisdn or contact_id")
        return self


class TemplateRequest(BaseModel):
    """An AlimTalk template: its id, its `#{parameter}` values and optionally its language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    parameters: dict[str, str] = Field(default_factory=dict)
    language: str | None = Field(None, min_length=2, max_length=16)

    @field_validator("parameters", mode="before")
    @classmethod
    def _numbers_are_text(cls, value: Any) -> Any:
        # Operators write {"code": 123456}; Sinch takes strings. Booleans are a mistake, not a number.
        if isinstance(value, dict):
            return {
                key: str(item) if isinstance(item, int | float) and not isinstance(item, bool) else item
                for key, item in value.items()
            }
        return value


class SendRequest(BaseModel):
    """One message to send, as producers write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: MessageType
    to: Recipient
    template: TemplateRequest | None = None
    authentication: bool = False
    message: AppMessage | None = None
    send_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)
    callback_url: HttpUrl | None = None
    sms_fallback: bool = False


def parse_send_request(data: Any) -> SendRequest | list[Violation]:
    """The request, or `schema` violations naming each field that is missing, unknown or of the wrong type."""
    try:
        return SendRequest.model_validate(data)
    except ValidationError as error:
        return schema_violations(error)


def schema_violations(error: ValidationError) -> list[Violation]:
    violations = []
    for item in error.errors(include_url=False):
        path = _json_path(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        actual = item.get("input")
        violations.append(
            Violation(
                rule="schema",
                path=path,
                limit=None,
                actual=actual if isinstance(actual, str | int | float) and not isinstance(actual, bool) else None,
                message=f"{path or 'request'}: {message}",
            )
        )
    return violations


def _json_path(loc: tuple[int | str, ...]) -> str:
    # pydantic reports union branches and validators as extra location parts; keep only the document's path.
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "union")) or "[" in part:
            continue
        else:
            path += f".{part}" if path else part
    return path
