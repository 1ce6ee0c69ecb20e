"""The template registry file: approved AlimTalk template texts, their `#{parameters}` and rendering."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PARAMETER = re.compile(r"#\{([^{}]+)\}")  # as KakaoTalk (and the simulator) read a template

#: Words one of which an authentication AlimTalk must contain after substitution (channel document).
AUTHENTICATION_KEYWORDS = ("auth", "password", "verif", "にんしょう", "認証", "비밀번호", "인증")


class TemplateRegistryError(ValueError):
    """The registry file cannot be read or is not of the documented shape."""


@dataclass(frozen=True)
class Template:
    id: str
    text: str
    language: str | None = None

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in order of first appearance."""
        return tuple(dict.fromkeys(PARAMETER.findall(self.text)))

    def render(self, values: Mapping[str, str]) -> str:
        """The text with every supplied `#{name}` replaced; missing ones stay as they are."""
        return PARAMETER.sub(lambda match: values.get(match.group(1), match.group(0)), self.text)


def authentication_keyword(text: str) -> str | None:
    """The first keyword that makes a rendered text an authentication message (case-insensitive for the latin
    words), or None."""
    folded = text.casefold()
    return next((keyword for keyword in AUTHENTICATION_KEYWORDS if keyword in folded), None)


def has_authentication_keyword(text: str) -> bool:
    """Whether a rendered text qualifies as an authentication message."""
    return authentication_keyword(text) is not None


class TemplateRegistry(Mapping[str, Template]):
    """Templates by id, from a JSON file `{"<id>": {"text": "... #{param} ...", "language": "ko"}}`."""

    def __init__(self, templates: Mapping[str, Template] | None = None) -> None:
        self._templates = dict(templates or {})

    @classmethod
    def from_file(cls, path: str | Path) -> TemplateRegistry:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise TemplateRegistryError(f"cannot read template registry {path}: {error.strerror}") from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TemplateRegistryError(f"template registry {path} is not valid JSON: {error}") from error
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: object, source: str = "template registry") -> TemplateRegistry:
        if not isinstance(data, dict):
            raise TemplateRegistryError(f"{source}: expected a JSON object of template id -> template")
        templates = {}
        for template_id, entry in data.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise TemplateRegistryError(f'{source}: template {template_id!r} needs a "text" string')
            language = entry.get("language")
            if language is not None and not isinstance(language, str):
                raise TemplateRegistryError(f"{source}: template {template_id!r} has a non-string language")
            unknown = sorted(set(entry) - {"text", "language"})
            if unknown:
                raise TemplateRegistryError(f"{source}: template {template_id!r} has unknown keys {unknown}")
            templates[template_id] = Template(template_id, entry["text"], language)
        return cls(templates)

    def __getitem__(self, template_id: str) -> Template:
        return self._templates[template_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)
