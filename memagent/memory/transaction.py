"""The write side of the store: every write goes through a ``Transaction`` from ``Store.transaction()``.

Statements run on the store's connection through ``Store._execute``, so driver errors are translated
in one place (``store.py``) for reads and writes alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from memagent.errors import AgentExistsError, StateConflictError, StoreError
from memagent.memory.rows import AgentRow, agent_from_row, one_line, parse_time, utc_iso
from memagent.text import clean_any, clean_text

if TYPE_CHECKING:
    from memagent.memory.store import Store


class Transaction:
    """Write access to a ``Store`` for the duration of one ``with store.transaction()`` block."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._finished = False

    def _run(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> sa.CursorResult[Any]:
        """Execute one statement (a list of params means executemany) with error translation."""
        if self._finished:
            raise RuntimeError("this transaction has already been committed or rolled back")
        return self._store._execute(sql, params, "write to")

    def create_agent(self, name: str, state: Mapping[str, Any], created_at: datetime | None = None) -> AgentRow:
        """A new agent; StoreError if ``name`` is taken (the write lock makes the check race-free).
        ``created_at`` (default now) keeps an imported agent's age; ``updated_at`` is always now."""
        if self._store.find_agent(name) is not None:
            raise AgentExistsError(
                one_line(
                    f"An agent named {name!r} already exists in {self._store.path}; choose another name "
                    "or delete the existing agent first"
                )
            )
        now = utc_iso()
        created = now if created_at is None else utc_iso(created_at)
        stored = json.dumps(clean_any(dict(state)))
        result = self._run(
            "INSERT INTO agents (name, state, created_at, updated_at) VALUES (:name, :state, :created, :now)",
            {"name": name, "state": stored, "created": created, "now": now},
        )
        return AgentRow(int(result.lastrowid), name, json.loads(stored), parse_time(created), parse_time(now))

    def lock_agent(self, agent_id: int) -> AgentRow:
        """The agent's row as committed now, locked until this transaction ends, so no other process can
        change it in between. (SQLite's write lock is already held: ``Store.transaction`` begins IMMEDIATE.)"""
        rows = self._run("SELECT * FROM agents WHERE id = :id", {"id": agent_id}).all()
        if not rows:
            raise self._gone(f"Can't save agent {agent_id} to")
        return agent_from_row(rows[0])

    def save_agent_state(self, agent_id: int, state: Mapping[str, Any], version: int | None = None) -> int:
        """Write the agent's state and return its new version. With ``version``, only if nobody wrote since
        that version was read (StateConflictError otherwise): how two processes on one agent never write
        over each other's edits."""
        params = {"state": json.dumps(clean_any(dict(state))), "now": utc_iso(), "id": agent_id, "version": version}
        check = "" if version is None else " AND version = :version"
        result = self._run(
            f"UPDATE agents SET state = :state, updated_at = :now, version = version + 1 WHERE id = :id{check}", params
        )
        if result.rowcount == 0:
            if version is not None and self._store.find_agent_by_id(agent_id) is not None:
                raise StateConflictError(
                    f"Agent {agent_id} in {self._store.path} was changed by another process since version {version}"
                )
            raise self._gone(f"Can't save agent {agent_id} to")
        return int(self._run("SELECT version FROM agents WHERE id = :id", {"id": agent_id}).scalar_one())

    def _gone(self, what: str) -> StoreError:
        return StoreError(
            one_line(
                f"{what} {self._store.path}: it no longer exists (deleted by another memagent?); restart memagent"
            )
        )

    def add_message(
        self, agent_id: int, role: str, text: str, payload: Mapping[str, Any], created_at: datetime | None = None
    ) -> int:
        """Append to the message log; ``text`` is what search sees, ``payload`` the full message."""
        result = self._run(
            "INSERT INTO messages (agent_id, role, text, payload, created_at) "
            "VALUES (:agent_id, :role, :text, :payload, :created_at)",
            {
                "agent_id": agent_id,
                "role": role,
                "text": clean_text(text),
                "payload": json.dumps(clean_any(dict(payload))),
                "created_at": utc_iso(created_at),
            },
        )
        return int(result.lastrowid)

    def update_message(self, message_id: int, text: str, payload: Mapping[str, Any]) -> None:
        result = self._run(
            "UPDATE messages SET text = :text, payload = :payload WHERE id = :id",
            {"text": clean_text(text), "payload": json.dumps(clean_any(dict(payload))), "id": message_id},
        )
        if result.rowcount == 0:
            raise StoreError(
                one_line(
                    f"Can't update message {message_id} in {self._store.path}: it no longer exists "
                    "(agent deleted by another memagent?); restart memagent"
                )
            )

    def delete_messages(self, ids: Sequence[int]) -> int:
        """Delete messages by id; returns how many existed."""
        result = self._run(
            "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(:ids))",
            {"ids": json.dumps([int(i) for i in ids])},
        )
        return int(result.rowcount)

    def add_passage(self, agent_id: int, text: str, created_at: datetime | None = None) -> int:
        result = self._run(
            "INSERT INTO passages (agent_id, text, created_at) VALUES (:agent_id, :text, :created_at)",
            {"agent_id": agent_id, "text": clean_text(text), "created_at": utc_iso(created_at)},
        )
        return int(result.lastrowid)

    def add_passages(self, agent_id: int, texts: Sequence[str]) -> list[int]:
        """Bulk insert (one executemany) for loading files; ids in the order of ``texts``.

        We hold the write lock and ids only grow (AUTOINCREMENT), so the new ids are exactly those
        above the previous maximum."""
        if not texts:
            return []
        before = int(self._run("SELECT coalesce(max(id), 0) FROM passages", {}).scalar_one())
        now = utc_iso()
        self._run(
            "INSERT INTO passages (agent_id, text, created_at) VALUES (:agent_id, :text, :now)",
            [{"agent_id": agent_id, "text": clean_text(text), "now": now} for text in texts],
        )
        rows = self._run("SELECT id FROM passages WHERE id > :before ORDER BY id", {"before": before})
        return [int(row.id) for row in rows]

    def delete_agent(self, name: str) -> bool:
        """Delete an agent with its messages, passages and their index rows (FK cascade + triggers)."""
        return self._run("DELETE FROM agents WHERE name = :name", {"name": name}).rowcount > 0
