"""Core memory: named blocks (persona, human, or a preset's own) that always sit in the system message.

A block has a label (its name), its text, a character limit, an optional description (what belongs in it, shown to
the model) and a read-only flag. Every edit either applies whole or raises CoreMemoryEditError, whose message goes
back to the model so it can correct itself: a read-only block, a limit overrun, text that isn't there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memagent.text import is_valid_name

# The one place the default block limit is defined (characters), as MemGPT's 2000-character blocks.
DEFAULT_SECTION_LIMIT = 2000
MAX_BLOCKS = 16  # blocks the model may have in all (creating more fails): each one costs prompt on every turn


class CoreMemoryEditError(ValueError):
    """An edit the model asked for that can't be done; the message is sent back to the model."""


@dataclass
class Section:
    """One block of core memory (named a section in MemGPT's terms)."""

    content: str
    max_length: int = DEFAULT_SECTION_LIMIT
    description: str = ""
    read_only: bool = False


class CoreMemory:
    """Ordered named blocks with character limits."""

    def __init__(self, sections: dict[str, Section]) -> None:
        self.sections = dict(sections)

    # -- edits the model makes -------------------------------------------------------------------
    def append(self, name: str, content: str) -> str:
        section = self._writable(name)
        return self._set(name, section, f"{section.content}\n{content}" if section.content else content)

    def replace(self, name: str, old_content: str, new_content: str) -> str:
        """Every occurrence of ``old_content`` (MemGPT's core_memory_replace)."""
        section = self._writable(name)
        self._find(name, section, old_content)
        return self._set(name, section, section.content.replace(old_content, new_content))

    def replace_exactly(self, name: str, old_content: str, new_content: str) -> str:
        """The one occurrence of ``old_content``; text found twice is ambiguous and changes nothing."""
        section = self._writable(name)
        count = self._find(name, section, old_content)
        if count > 1:
            raise CoreMemoryEditError(
                f"{old_content!r} appears {count} times in block {name!r}: include more of the surrounding text so "
                "it appears once."
            )
        return self._set(name, section, section.content.replace(old_content, new_content, 1))

    def insert(self, name: str, content: str, line: int = -1) -> str:
        """``content`` as new lines before line ``line`` (0 is the first; -1, the default, is after the last)."""
        section = self._writable(name)
        lines = section.content.split("\n") if section.content else []
        if line < -1 or line > len(lines):
            raise CoreMemoryEditError(
                f"Line {line} is outside block {name!r}, which has {len(lines)} lines: use 0 to {len(lines)}, or -1 "
                "for the end."
            )
        at = len(lines) if line == -1 else line
        return self._set(name, section, "\n".join([*lines[:at], content, *lines[at:]]))

    def rewrite(self, name: str, content: str) -> str:
        """The whole block replaced by ``content`` (to reorganize or condense it)."""
        return self._set(name, self._writable(name), content)

    def create(
        self, name: str, content: str = "", description: str = "", max_length: int = DEFAULT_SECTION_LIMIT
    ) -> None:
        if name in self.sections:
            raise CoreMemoryEditError(f"Block {name!r} already exists: edit it, or choose another label.")
        if not is_valid_name(name):
            raise CoreMemoryEditError(
                f"{name!r} can't be a block label: use 1-64 letters, digits, '-', '_' or '.', starting with a letter "
                "or digit."
            )
        if len(self.sections) >= MAX_BLOCKS:
            raise CoreMemoryEditError(f"Core memory already has {MAX_BLOCKS} blocks: delete or merge one first.")
        if not 1 <= max_length <= 20 * DEFAULT_SECTION_LIMIT:
            raise CoreMemoryEditError(f"A block's limit must be 1 to {20 * DEFAULT_SECTION_LIMIT} characters.")
        section = Section("", max_length, description)
        self._check_limit(name, section, content)
        section.content = content
        self.sections[name] = section

    def delete(self, name: str) -> None:
        self._writable(name)
        del self.sections[name]

    # -- helpers ---------------------------------------------------------------------------------
    def _section(self, name: str) -> Section:
        if name not in self.sections:
            known = ", ".join(self.sections) or "(none)"
            raise CoreMemoryEditError(f"No core memory section named {name!r}. Sections: {known}.")
        return self.sections[name]

    def _writable(self, name: str) -> Section:
        section = self._section(name)
        if section.read_only:
            raise CoreMemoryEditError(
                f"Block {name!r} is read-only: it can't be changed. Keep new information in another block or in "
                "archival memory (archival_memory_insert)."
            )
        return section

    @staticmethod
    def _find(name: str, section: Section, old_content: str) -> int:
        if not old_content:
            raise CoreMemoryEditError("old_content must not be empty: give the exact text to replace.")
        count = section.content.count(old_content)
        if count == 0:
            raise CoreMemoryEditError(
                f"Old content {old_content!r} not found in section {name!r}. Use the exact text as it appears in core "
                "memory."
            )
        return count

    def _set(self, name: str, section: Section, new: str) -> str:
        self._check_limit(name, section, new)
        section.content = new
        return new

    @staticmethod
    def _check_limit(name: str, section: Section, new: str) -> None:
        if len(new) > section.max_length:
            raise CoreMemoryEditError(
                f"Edit failed: section {name!r} would have {len(new)} characters, over its limit of "
                f"{section.max_length}. Summarize it (memory_rethink if you have it), or move details to archival "
                "memory with archival_memory_insert."
            )

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Description and read-only are written only when set, so older state stays byte-identical."""
        data: dict[str, dict[str, Any]] = {}
        for key, s in self.sections.items():
            entry: dict[str, Any] = {"content": s.content, "max_length": s.max_length}
            if s.description:
                entry["description"] = s.description
            if s.read_only:
                entry["read_only"] = True
            data[key] = entry
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreMemory:
        sections: dict[str, Section] = {}
        for name, value in data.items():
            if isinstance(value, dict):
                limit = value.get("max_length") or DEFAULT_SECTION_LIMIT
                sections[str(name)] = Section(
                    str(value.get("content", "")),
                    int(limit),
                    str(value.get("description") or ""),
                    bool(value.get("read_only", False)),
                )
            else:
                sections[str(name)] = Section(str(value), DEFAULT_SECTION_LIMIT)
        return cls(sections)
