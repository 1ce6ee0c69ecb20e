"""What a broken KakaoTalk rule looks like: a named violation, or a warning that does not stop a send."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    """A rule the request breaks; the message is never sent (DESIGN §1: each one named)."""

    rule: str
    path: str
    limit: int | float | str | None
    actual: int | float | str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RuleWarning:
    """Something worth knowing that does not stop the send (e.g. a template the registry does not know)."""

    rule: str
    path: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
