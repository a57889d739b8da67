"""Core memory: named sections (persona, human, or a preset's own) that always sit in the system message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The one place the default section limit is defined (characters), as MemGPT's 2000-character blocks.
DEFAULT_SECTION_LIMIT = 2000


class CoreMemoryEditError(ValueError):
    """An edit the model asked for that can't be done; the message is sent back to the model."""


@dataclass
class Section:
    content: str
    max_length: int = DEFAULT_SECTION_LIMIT


class CoreMemory:
    """Ordered named sections with character limits. Edits either apply whole or raise CoreMemoryEditError."""

    def __init__(self, sections: dict[str, Section]) -> None:
        self.sections = dict(sections)

    # -- edits the model makes -------------------------------------------------------------------
    def append(self, name: str, content: str) -> str:
        section = self._section(name)
        new = f"{section.content}\n{content}" if section.content else content
        self._check_limit(name, section, new)
        section.content = new
        return new

    def replace(self, name: str, old_content: str, new_content: str) -> str:
        section = self._section(name)
        if not old_content:
            raise CoreMemoryEditError("old_content must not be empty: give the exact text to replace.")
        if old_content not in section.content:
            raise CoreMemoryEditError(
                f"Old content {old_content!r} not found in section {name!r}. "
                "Use the exact text as it appears in core memory."
            )
        new = section.content.replace(old_content, new_content)
        self._check_limit(name, section, new)
        section.content = new
        return new

    # -- helpers ---------------------------------------------------------------------------------
    def _section(self, name: str) -> Section:
        if name not in self.sections:
            known = ", ".join(self.sections) or "(none)"
            raise CoreMemoryEditError(f"No core memory section named {name!r}. Sections: {known}.")
        return self.sections[name]

    @staticmethod
    def _check_limit(name: str, section: Section, new: str) -> None:
        if len(new) > section.max_length:
            raise CoreMemoryEditError(
                f"Edit failed: section {name!r} would have {len(new)} characters, over its limit of "
                f"{section.max_length}. Summarize it, or move details to archival memory "
                "with archival_memory_insert."
            )

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {k: {"content": s.content, "max_length": s.max_length} for k, s in self.sections.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreMemory:
        sections: dict[str, Section] = {}
        for name, value in data.items():
            if isinstance(value, dict):
                limit = value.get("max_length") or DEFAULT_SECTION_LIMIT
                sections[str(name)] = Section(str(value.get("content", "")), int(limit))
            else:
                sections[str(name)] = Section(str(value), DEFAULT_SECTION_LIMIT)
        return cls(sections)
