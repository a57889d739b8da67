"""An agent as one versioned JSON document, and back: how an agent moves between databases and machines.

The format (``FORMAT``, ``VERSION`` 3)::

    {"format": "memagent-agent", "version": 3, "exported_at": "2026-...+00:00",
     "agent": {"name": ..., "created_at": ..., "state": {...}},      # state: preset, core memory, template
                                                                     # fields, in_context (message ids), stats
     "messages": [{"id", "role", "text", "payload", "created_at"}, ...],   # recall memory, oldest first
     "passages": [{"text", "created_at", "tags"}, ...],          # archival memory, oldest first; tags (v3):
                                                                 # a list of strings, normalised on import
     "memory_versions": [{"id", "block", "old_text", "new_text", "settings", "source", "message_id",
                          "reverts", "created_at"}, ...]}            # core-memory history, oldest first (v2)

Times are ISO-8601 UTC. Message and version ids are the source database's; an import gives every message and
version a new id and rewrites ``state["in_context"]``, a version's ``message_id`` (null when that call is no longer
in the file) and ``reverts`` to match. Version 1 files (no history) and version 2 files (no tags) are still read
(a passage without ``tags`` has none). A reader refuses a newer ``version`` instead of guessing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from memagent.errors import UserError
from memagent.memory.rows import AgentRow, utc_iso
from memagent.memory.tags import TagError, normalise_tags
from memagent.memory.versions import Cause, MemoryVersion
from memagent.text import check_name, clean_text

if TYPE_CHECKING:
    from memagent.memory.store import Store

FORMAT = "memagent-agent"
VERSION = 3
HISTORY_SINCE = 2
"""The first format version with ``memory_versions``."""


def export_agent(store: Store, name: str) -> dict[str, Any]:
    """Everything the agent ``name`` is, as plain JSON-ready data (UserError if there is no such agent)."""
    row = store.find_agent(name)
    if row is None:
        raise UserError(f"No agent named {name!r} in {store.path}.")
    messages = store.all_messages(row.id)
    passages = store.all_passages(row.id)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": utc_iso(),
        "agent": {"name": row.name, "created_at": utc_iso(row.created_at), "state": row.state},
        "messages": [
            {"id": m.id, "role": m.role, "text": m.text, "payload": m.payload, "created_at": utc_iso(m.created_at)}
            for m in messages
        ],
        "passages": [{"text": p.text, "created_at": utc_iso(p.created_at), "tags": list(p.tags)} for p in passages],
        "memory_versions": [_version_data(v) for v in store.memory_versions(row.id, newest_first=False)],
    }


def _version_data(version: MemoryVersion) -> dict[str, Any]:
    cause = version.cause
    return {
        "id": version.id, "block": version.block, "old_text": version.old_text, "new_text": version.new_text,
        "settings": version.settings, "source": cause.source, "message_id": cause.message_id,
        "reverts": cause.reverts, "created_at": utc_iso(version.created_at),
    }


class _Reader:
    """Checks one export field by field; every problem is one UserError naming the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> UserError:
        return UserError(
            f"{self.source} is damaged: {where} {what}; export the agent again with `memagent agents export NAME`."
        )

    def get(self, data: dict[str, Any], key: str, kind: type, where: str) -> Any:
        path = f"{where}.{key}" if where else key
        if key not in data:
            raise self.fail(path, "is missing")
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(path, f"should be {_JSON_NAMES[kind]}, not {_JSON_NAMES.get(type(value), 'null')}")
        return value

    def maybe(self, data: dict[str, Any], key: str, kind: type, where: str) -> Any:
        """Like ``get``, but null is allowed."""
        return None if data.get(key, 0) is None else self.get(data, key, kind, where)

    def tags(self, data: dict[str, Any], where: str) -> tuple[str, ...]:
        """A passage's tags, normalised (none if it has no ``tags``)."""
        if "tags" not in data:
            return ()
        try:
            return normalise_tags(self.get(data, "tags", list, where), f"{where}.tags")
        except TagError as error:
            raise UserError(f"{self.source} can't be imported: {error}") from None

    def time(self, data: dict[str, Any], where: str) -> datetime:
        text = self.get(data, "created_at", str, where)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{where}.created_at", f"is not an ISO-8601 time ({clean_text(text)[:40]!r})") from None
        if moment.tzinfo is None:
            raise self.fail(f"{where}.created_at", f"has no time zone ({text[:40]!r})")
        return moment


_JSON_NAMES: dict[type, str] = {
    str: "a string", int: "a whole number", float: "a number", bool: "true/false", dict: "an object", list: "a list"
}


def check_export(data: object, source: str = "the file") -> None:
    """UserError unless ``data`` is an agent export this memagent can read (format, version, and every field)."""
    reader = _Reader(source)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(
            f"{source} is not a memagent agent export (no \"format\": \"{FORMAT}\"); "
            "make one with `memagent agents export NAME > agent.json`."
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise reader.fail("version", f"should be a whole number from 1, not {clean_text(repr(version))[:40]}")
    if version > VERSION:
        raise UserError(
            f"{source} is an agent export of format version {version}, but this memagent reads only up to "
            f"version {VERSION}; upgrade memagent to import it."
        )
    agent = reader.get(data, "agent", dict, "")
    reader.get(agent, "name", str, "agent")
    state = reader.get(agent, "state", dict, "agent")
    reader.get(state, "preset", str, "agent.state")
    reader.get(state, "core_memory", dict, "agent.state")
    reader.time(agent, "agent")
    ids: set[int] = set()
    for i, message in enumerate(reader.get(data, "messages", list, "")):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise reader.fail(where, "should be an object")
        message_id = reader.get(message, "id", int, where)
        if message_id in ids:
            raise reader.fail(f"{where}.id", f"repeats id {message_id}")
        ids.add(message_id)
        reader.get(message, "role", str, where)
        reader.get(message, "text", str, where)
        reader.get(message, "payload", dict, where)
        reader.time(message, where)
    for i, passage in enumerate(reader.get(data, "passages", list, "")):
        where = f"passages[{i}]"
        if not isinstance(passage, dict):
            raise reader.fail(where, "should be an object")
        reader.get(passage, "text", str, where)
        reader.time(passage, where)
        reader.tags(passage, where)
    if version >= HISTORY_SINCE:
        _check_versions(reader, reader.get(data, "memory_versions", list, ""))
    in_context = state.get("in_context", [])
    if not isinstance(in_context, list):
        raise reader.fail("agent.state.in_context", "should be a list of message ids")
    missing = [i for i in in_context if i not in ids]
    if missing:
        shown = clean_text(repr(missing[:5]))[:60]
        raise reader.fail("agent.state.in_context", f"names messages {shown} that the file lacks")


def _check_versions(reader: _Reader, versions: list[Any]) -> None:
    ids: set[int] = set()
    for i, version in enumerate(versions):
        where = f"memory_versions[{i}]"
        if not isinstance(version, dict):
            raise reader.fail(where, "should be an object")
        version_id = reader.get(version, "id", int, where)
        if version_id in ids:
            raise reader.fail(f"{where}.id", f"repeats id {version_id}")
        ids.add(version_id)
        reader.get(version, "block", str, where)
        texts = [reader.maybe(version, key, str, where) for key in ("old_text", "new_text")]
        if texts == [None, None]:
            raise reader.fail(where, "has neither old_text nor new_text")
        reader.get(version, "settings", dict, where)
        reader.get(version, "source", str, where)
        reader.maybe(version, "message_id", int, where)
        reader.maybe(version, "reverts", int, where)
        reader.time(version, where)


def import_agent(store: Store, data: dict[str, Any], name: str | None = None, source: str = "the file") -> AgentRow:
    """Create the agent of export ``data`` (under ``name`` if given) in one transaction: all of it or nothing.

    Messages get new ids in ``store``, and the state's in-context window points at them. UserError if the
    data is not a readable export or the name is invalid; AgentExistsError if the name is taken."""
    check_export(data, source)
    agent = data["agent"]
    target = check_name(name if name is not None else agent["name"])
    reader = _Reader(source)
    state = dict(agent["state"])
    with store.transaction() as tx:
        row = tx.create_agent(target, state, created_at=reader.time(agent, "agent"))
        new_ids: dict[int, int] = {}
        for i, message in enumerate(data["messages"]):
            moment = reader.time(message, f"messages[{i}]")
            role, text, payload = message["role"], message["text"], message["payload"]
            new_ids[message["id"]] = tx.add_message(row.id, role, text, payload, moment)
        for i, passage in enumerate(data["passages"]):
            where = f"passages[{i}]"
            tx.add_passage(row.id, passage["text"], reader.time(passage, where), reader.tags(passage, where))
        state["in_context"] = [new_ids[i] for i in state.get("in_context", [])]
        tx.save_agent_state(row.id, state)
        version_ids: dict[int, int] = {}
        for i, version in enumerate(data.get("memory_versions", [])):
            cause = Cause(
                version["source"], new_ids.get(version.get("message_id")), version_ids.get(version.get("reverts"))
            )
            texts = (version.get("old_text"), version.get("new_text"))
            moment = reader.time(version, f"memory_versions[{i}]")
            version_ids[version["id"]] = tx.add_memory_version(
                row.id, version["block"], texts, version["settings"], cause, moment
            )
    imported = store.find_agent(target)
    assert imported is not None
    return imported
