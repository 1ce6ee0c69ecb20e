"""The AlimTalk template registry file (`{"<id>": {"text": "... #{param} ...", "language": "ko"}}`) and rendering."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PARAMETER = re.compile(r"#\{([^{}]+)\}")


class TemplateRegistryError(ValueError):
    """The registry file is missing, not JSON, or not shaped as documented."""


@dataclass(frozen=True)
class Template:
    template_id: str
    text: str
    language: str | None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The `#{name}` markers in order of first appearance."""
        return tuple(dict.fromkeys(PARAMETER.findall(self.text)))

    def missing_parameters(self, supplied: Mapping[str, str]) -> list[str]:
        return [name for name in self.parameter_names if name not in supplied]

    def render(self, parameters: Mapping[str, str]) -> str:
        """The text as the user sees it; an unknown marker stays as written."""
        return PARAMETER.sub(lambda match: parameters.get(match.group(1), match.group(0)), self.text)


class TemplateRegistry:
    """Approved AlimTalk templates by id, as KakaoTalk knows them."""

    def __init__(self, templates: Mapping[str, Template]) -> None:
        self._templates = dict(templates)

    def get(self, template_id: str) -> Template | None:
        return self._templates.get(template_id)

    def __len__(self) -> int:
        return len(self._templates)

    @classmethod
    def from_mapping(cls, document: object, source: str = "templates") -> TemplateRegistry:
        if not isinstance(document, dict):
            raise TemplateRegistryError(f"{source}: expected an object of template id → {{text, language}}")
        templates: dict[str, Template] = {}
        for template_id, entry in document.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise TemplateRegistryError(f"{source}: template {template_id!r} needs a string 'text'")
            language = entry.get("language")
            if language is not None and not isinstance(language, str):
                raise TemplateRegistryError(f"{source}: template {template_id!r}: 'language' must be a string")
            templates[str(template_id)] = Template(str(template_id), entry["text"], language)
        return cls(templates)

    @classmethod
    def from_file(cls, path: Path) -> TemplateRegistry:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise TemplateRegistryError(f"{path}: no such file") from error
        except (OSError, UnicodeDecodeError) as error:
            raise TemplateRegistryError(f"{path}: cannot read: {error}") from error
        except json.JSONDecodeError as error:
            raise TemplateRegistryError(f"{path}: not valid JSON: {error.msg} at line {error.lineno}") from error
        return cls.from_mapping(document, str(path))
