"""Core-memory history: every change of a block kept as a version, and how one is undone.

A version is one block's change: its text before and after (None where the block did not exist: created, or
deleted), what the block was like before (description, limit, read-only, its place among the blocks; after, for a
block created), when, and what did it (``Cause``: a function the model called, with the id of the stored call, or
a command such as ``/undo``, with the version it reverted). ``History.save`` records them in the transaction that
writes the edit, so an edit never exists without its version, nor the other way round.

Undoing a version puts its block back as it was before (``restore``): the text, or the block recreated at its
place, or the created block removed. The undo is itself a change, recorded like any other, so undoing twice
applies the change again. It is the user's: it may touch any block, read-only ones included (that flag stops the
model, not the person at the keyboard), and it is not held to the block's limit or the number of blocks, since it
only returns to a state memory has been in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from memagent.memory import schema
from memagent.memory.core import DEFAULT_SECTION_LIMIT, CoreMemory, Section

UNDO = "/undo"


@dataclass(frozen=True, slots=True)
class Cause:
    """What changed core memory: a function's name and its stored call, or a command (``/undo``) and the version
    it reverted."""

    source: str
    message_id: int | None = None
    reverts: int | None = None

    def describe(self) -> str:
        if self.reverts is not None:
            return f"{self.source} of #{self.reverts}"
        if self.message_id is not None:
            return f"{self.source} (call {self.message_id})"
        return self.source


UNKNOWN = Cause("memagent")
"""The cause of a change saved without one (no code path does that today; the version is kept regardless)."""


@dataclass(frozen=True, slots=True)
class BlockChange:
    """One block before and after a change (None: the block did not exist), with its place before (after, if it
    is new) among the blocks."""

    block: str
    old: Section | None
    new: Section | None
    position: int

    @property
    def old_text(self) -> str | None:
        return None if self.old is None else self.old.content

    @property
    def new_text(self) -> str | None:
        return None if self.new is None else self.new.content

    @property
    def settings(self) -> dict[str, Any]:
        """What is kept of the block besides its text: its shape before the change (after, if it is new)."""
        shape = self.old if self.old is not None else self.new
        assert shape is not None
        settings: dict[str, Any] = {"max_length": shape.max_length, "position": self.position}
        if shape.description:
            settings["description"] = shape.description
        if shape.read_only:
            settings["read_only"] = True
        return settings


def changed_blocks(before: Mapping[str, Section], after: Mapping[str, Section]) -> list[BlockChange]:
    """Every block that differs between two states of core memory, in block order (deleted ones first)."""
    places = {name: i for i, name in enumerate(before)}
    changes = [BlockChange(name, section, None, places[name]) for name, section in before.items() if name not in after]
    for position, (name, section) in enumerate(after.items()):
        old = before.get(name)
        if old != section:
            changes.append(BlockChange(name, old, section, places.get(name, position)))
    return changes


@dataclass(frozen=True, slots=True)
class MemoryVersion:
    """One recorded change of a core-memory block (a row of ``memory_versions``)."""

    id: int
    agent_id: int
    block: str
    old_text: str | None
    new_text: str | None
    settings: dict[str, Any]
    cause: Cause
    created_at: datetime

    @property
    def kind(self) -> Literal["created", "deleted", "changed"]:
        if self.old_text is None:
            return "created"
        return "deleted" if self.new_text is None else "changed"

    def section_before(self) -> Section | None:
        """The block as it was before this change (None: it did not exist)."""
        if self.old_text is None:
            return None
        settings = self.settings
        return Section(
            self.old_text,
            int(settings.get("max_length") or DEFAULT_SECTION_LIMIT),
            str(settings.get("description") or ""),
            bool(settings.get("read_only", False)),
        )

    @property
    def position(self) -> int:
        return int(self.settings.get("position", -1))


@dataclass(frozen=True, slots=True)
class Undone:
    """What an undo did: the change it undid, and the change it made (None: memory already was that way)."""

    change: MemoryVersion
    result: MemoryVersion | None


def restore(core: CoreMemory, version: MemoryVersion) -> None:
    """Put ``version``'s block back as it was before that change (see the module's docstring)."""
    before = version.section_before()
    sections = core.sections
    if before is None:
        sections.pop(version.block, None)
        return
    if version.block in sections:
        sections[version.block] = before
        return
    items = list(sections.items())
    at = len(items) if version.position < 0 else min(version.position, len(items))
    items.insert(at, (version.block, before))
    core.sections = dict(items)


# ------------------------------------------------------------------------------------------ the table

VERSION_COLUMNS = tuple(schema.memory_versions.c)
INSERT_VERSION = sa.insert(schema.memory_versions).returning(schema.memory_versions.c.id)


def select_versions(
    agent_id: int, block: str | None = None, newest_first: bool = True, version_id: int | None = None
) -> sa.Select[Any]:
    """The agent's versions (of one block, or the one numbered ``version_id``, if given), newest first (or in the
    order they were made)."""
    v = schema.memory_versions
    statement = sa.select(*VERSION_COLUMNS).where(v.c.agent_id == agent_id)
    if block is not None:
        statement = statement.where(v.c.block == block)
    if version_id is not None:
        statement = statement.where(v.c.id == version_id)
    return statement.order_by(v.c.id.desc() if newest_first else v.c.id)


def version_from_row(row: sa.Row[Any]) -> MemoryVersion:
    cause = Cause(row.source, row.message_id, row.reverts)
    return MemoryVersion(
        row.id, row.agent_id, row.block, row.old_text, row.new_text, dict(row.settings or {}), cause, row.created_at
    )
