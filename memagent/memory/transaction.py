"""The write side of the store: every write goes through a ``Transaction`` from ``Store.transaction()``.

A transaction runs Core statements on ``schema.py``'s tables through an ``Executor`` (the store, which translates
driver errors in one place for reads and writes alike). It never reaches into the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from memagent.errors import AgentExistsError, StateConflictError, StoreError
from memagent.memory import schema
from memagent.memory.rows import AgentRow, agent_from_row, one_line, parse_time, utc_iso
from memagent.memory.search import chunks
from memagent.memory.search_text import (
    INDEXED_ROLES,
    context_text,
    is_indexed,
    message_search_text,
    passage_context,
    passage_search_text,
)
from memagent.memory.search_text import columns as search_columns
from memagent.memory.tags import normalise_tags, tag_rows
from memagent.memory.versions import INSERT_VERSION, Cause
from memagent.text import clean_any, clean_text


class Executor(Protocol):
    """Where a transaction's statements run."""

    where: str
    """The database as named in messages (a path, or a URL without its password)."""

    def execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> sa.CursorResult[Any]: ...

    def select_agents(self) -> sa.Select[Any]:
        """A select of every column of ``agents`` this database has."""
        ...


# Built once: the hot writes of every step pass only their values.
_INSERT_MESSAGE = sa.insert(schema.messages).returning(schema.messages.c.id)
_INSERT_PASSAGE = sa.insert(schema.passages).returning(schema.passages.c.id)
_INSERT_PASSAGES = sa.insert(schema.passages).returning(schema.passages.c.id, sort_by_parameter_order=True)


def _utc(moment: datetime | None = None) -> datetime:
    """``moment`` (default now) as the aware UTC datetime the database gives back, to the microsecond."""
    return parse_time(utc_iso(moment))


def _document(value: Mapping[str, Any]) -> Any:
    """A JSON value as stored: cleaned text, and lists where tuples were (what reading it back gives)."""
    return json.loads(json.dumps(clean_any(dict(value))))


class Transaction:
    """Write access to a ``Store`` for the duration of one ``with store.transaction()`` block."""

    def __init__(self, executor: Executor) -> None:
        self._db = executor
        self._finished = False

    def finish(self) -> None:
        """Called by the store when the block ends: later writes are refused."""
        self._finished = True

    def _run(
        self, statement: sa.Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> sa.CursorResult[Any]:
        if self._finished:
            raise RuntimeError("this transaction has already been committed or rolled back")
        return self._db.execute(statement, params)

    def _find(self, where: sa.ColumnElement[bool], lock: bool = False) -> AgentRow | None:
        statement = self._db.select_agents().where(where)
        rows = self._run(statement.with_for_update() if lock else statement).all()
        return agent_from_row(rows[0]) if rows else None

    def create_agent(self, name: str, state: Mapping[str, Any], created_at: datetime | None = None) -> AgentRow:
        """A new agent; AgentExistsError if ``name`` is taken (by a committed agent, or one another process is
        creating right now: PostgreSQL's unique index decides that race, SQLite's write lock prevents it).
        ``created_at`` (default now) keeps an imported agent's age; ``updated_at`` is always now."""
        if self._find(schema.agents.c.name == name) is not None:
            raise self._exists(name)
        now = _utc()
        created = now if created_at is None else _utc(created_at)
        stored = _document(state)
        insert = sa.insert(schema.agents).values(name=name, state=stored, created_at=created, updated_at=now)
        try:
            agent_id = self._run(insert.returning(schema.agents.c.id)).scalar_one()
        except sa_exc.IntegrityError:
            raise self._exists(name) from None
        return AgentRow(int(agent_id), name, stored, created, now)

    def _exists(self, name: str) -> AgentExistsError:
        return AgentExistsError(
            one_line(
                f"An agent named {name!r} already exists in {self._db.where}; choose another name "
                "or delete the existing agent first"
            )
        )

    def lock_agent(self, agent_id: int) -> AgentRow:
        """The agent's row as committed now, locked until this transaction ends, so no other process can change it
        in between (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite's write lock is already held, since
        ``Store.transaction`` begins IMMEDIATE)."""
        row = self._find(schema.agents.c.id == agent_id, lock=True)
        if row is None:
            raise self._gone(f"Can't save agent {agent_id} to")
        return row

    def save_agent_state(self, agent_id: int, state: Mapping[str, Any], version: int | None = None) -> int:
        """Write the agent's state and return its new version. With ``version``, only if nobody wrote since
        that version was read (StateConflictError otherwise): how two processes on one agent never write
        over each other's edits."""
        agents = schema.agents
        where = [agents.c.id == agent_id]
        if version is not None:
            where.append(agents.c.version == version)
        update = (
            sa.update(agents)
            .where(*where)
            .values(state=_document(state), updated_at=_utc(), version=agents.c.version + 1)
            .returning(agents.c.version)
        )
        saved = self._run(update).scalar_one_or_none()
        if saved is None:
            if version is not None and self._find(agents.c.id == agent_id) is not None:
                raise StateConflictError(
                    f"Agent {agent_id} in {self._db.where} was changed by another process since version {version}"
                )
            raise self._gone(f"Can't save agent {agent_id} to")
        return int(saved)

    def _gone(self, what: str) -> StoreError:
        return StoreError(
            one_line(f"{what} {self._db.where}: it no longer exists (deleted by another memagent?); restart memagent")
        )

    def add_message(
        self, agent_id: int, role: str, text: str, payload: Mapping[str, Any], created_at: datetime | None = None
    ) -> int:
        """Append to the message log; ``text`` is what search shows, ``payload`` the full message. What the index
        holds is built from the text, its role, date and the turn before it (``search_text.py``)."""
        text, moment = clean_text(text), _utc(created_at)
        previous = self._previous_turn(agent_id, moment) if is_indexed(role, text) else None
        values = {
            "agent_id": agent_id,
            "role": role,
            "text": text,
            "payload": clean_any(dict(payload)),
            "created_at": moment,
            **search_columns(message_search_text(role, text, moment, previous)),
        }
        return int(self._run(_INSERT_MESSAGE, values).scalar_one())

    def _previous_turn(self, agent_id: int, before: datetime, before_id: int | None = None) -> str | None:
        """``context_text`` of the agent's last indexed message before ``before`` (and id ``before_id``, if given)."""
        m = schema.messages
        where = [m.c.agent_id == agent_id, m.c.role.in_(INDEXED_ROLES), m.c.text != ""]
        if before_id is None:
            where.append(m.c.created_at <= before)
        else:
            where.append(sa.or_(m.c.created_at < before, sa.and_(m.c.created_at == before, m.c.id < before_id)))
        statement = sa.select(m.c.role, m.c.text).where(*where).order_by(m.c.created_at.desc(), m.c.id.desc())
        row = self._run(statement.limit(1)).first()
        return context_text(row.role, row.text) if row is not None else None

    def update_message(self, message_id: int, text: str, payload: Mapping[str, Any]) -> None:
        """Rewrite a message; its index text and that of the indexed turn after it (its context) follow."""
        m = schema.messages
        row = self._run(sa.select(m.c.agent_id, m.c.role, m.c.created_at).where(m.c.id == message_id)).first()
        if row is None:
            raise StoreError(
                one_line(
                    f"Can't update message {message_id} in {self._db.where}: it no longer exists "
                    "(agent deleted by another memagent?); restart memagent"
                )
            )
        text = clean_text(text)
        previous = self._previous_turn(row.agent_id, row.created_at, message_id)
        indexed = message_search_text(row.role, text, row.created_at, previous)
        values = {"text": text, "payload": clean_any(dict(payload)), **search_columns(indexed)}
        self._run(sa.update(m).where(m.c.id == message_id).values(**values))
        self._forget_vector(message_id)
        self._refresh_context(row.agent_id, row.created_at, message_id)

    def _refresh_context(self, agent_id: int, created_at: datetime, message_id: int) -> None:
        """Rebuild the index text of the agent's first indexed message after (``created_at``, ``message_id``): the
        message there was rewritten or deleted, and it is the next one's context."""
        m = schema.messages
        later = sa.or_(m.c.created_at > created_at, sa.and_(m.c.created_at == created_at, m.c.id > message_id))
        after = (
            sa.select(m.c.id, m.c.role, m.c.text, m.c.created_at)
            .where(m.c.agent_id == agent_id, m.c.role.in_(INDEXED_ROLES), m.c.text != "", later)
            .order_by(m.c.created_at, m.c.id)
            .limit(1)
        )
        following = self._run(after).first()
        if following is not None:
            previous = self._previous_turn(agent_id, following.created_at, following.id)
            rebuilt = message_search_text(following.role, following.text, following.created_at, previous)
            self._run(sa.update(m).where(m.c.id == following.id).values(**search_columns(rebuilt)))
            self._forget_vector(following.id)

    def delete_messages(self, ids: Sequence[int]) -> int:
        """Delete messages by id; returns how many existed. The turn after each deleted one gets its context
        (``search_text.py``) rebuilt: usually there is none (a /pop or /retry deletes the newest messages)."""
        m = schema.messages
        deleted: list[tuple[int, datetime, int]] = []
        for chunk in chunks([int(i) for i in ids]):
            found = self._run(sa.select(m.c.agent_id, m.c.created_at, m.c.id).where(m.c.id.in_(chunk))).all()
            deleted.extend((row.agent_id, row.created_at, row.id) for row in found)
            self._run(sa.delete(m).where(m.c.id.in_(chunk)))
        for agent_id, created_at, message_id in sorted(deleted):
            self._refresh_context(agent_id, created_at, message_id)
        return len(deleted)

    def add_passage(
        self, agent_id: int, text: str, created_at: datetime | None = None, tags: Iterable[str] | None = None
    ) -> int:
        """Add one passage with its ``tags`` (normalised by ``tags.normalise_tags``: TagError if they can't be)."""
        text, moment, labels = clean_text(text), _utc(created_at), normalise_tags(tags)
        previous = self._previous_passage(agent_id)
        values = {
            "agent_id": agent_id,
            "text": text,
            "created_at": moment,
            **search_columns(passage_search_text(text, moment, previous)),
        }
        passage_id = int(self._run(_INSERT_PASSAGE, values).scalar_one())
        if labels:
            self._run(sa.insert(schema.passage_tags), tag_rows(passage_id, agent_id, labels))
        return passage_id

    def add_passages(self, agent_id: int, texts: Sequence[str]) -> list[int]:
        """Bulk insert for loading files (batched multi-row INSERTs); ids in the order of ``texts``."""
        if not texts:
            return []
        now, previous = _utc(), self._previous_passage(agent_id)
        rows = []
        for text in (clean_text(text) for text in texts):
            rows.append(
                {"agent_id": agent_id, "text": text, "created_at": now,
                 **search_columns(passage_search_text(text, now, previous))}
            )
            previous = passage_context(text) or previous
        return [int(row.id) for row in self._run(_INSERT_PASSAGES, rows)]

    def add_memory_version(
        self,
        agent_id: int,
        block: str,
        texts: tuple[str | None, str | None],
        settings: Mapping[str, Any],
        cause: Cause,
        created_at: datetime | None = None,
    ) -> int:
        """Record one change of a core-memory block: its (old, new) text, None where it did not exist (see
        ``versions.py``). Written in the transaction that saves the edit."""
        old, new = texts
        values = {
            "agent_id": agent_id,
            "block": block,
            "old_text": None if old is None else clean_text(old),
            "new_text": None if new is None else clean_text(new),
            "settings": _document(settings),
            "source": clean_text(cause.source),
            "message_id": cause.message_id,
            "reverts": cause.reverts,
            "created_at": _utc(created_at),
        }
        return int(self._run(INSERT_VERSION, values).scalar_one())

    def _previous_passage(self, agent_id: int) -> str | None:
        """``passage_context`` of the agent's newest passage with text."""
        p = schema.passages
        statement = sa.select(p.c.text).where(p.c.agent_id == agent_id, p.c.text != "").order_by(p.c.id.desc())
        text = self._run(statement.limit(1)).scalar_one_or_none()
        return passage_context(text) if text is not None else None

    def add_embeddings(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Store dense vectors (``vectors.insert_values``): written by the embedding worker, never by a step."""
        self._run(sa.insert(schema.embeddings), list(values))

    def _forget_vector(self, message_id: int) -> None:
        """A message's index text changed: its vector is of the old text, so it goes (and is embedded again)."""
        self._run(sa.delete(schema.embeddings).where(schema.embeddings.c.message_id == message_id))

    def delete_agent(self, name: str) -> bool:
        """Delete an agent with its messages, passages, their vectors and index rows (FK cascade; SQLite's
        triggers)."""
        return self._run(sa.delete(schema.agents).where(schema.agents.c.name == name)).rowcount > 0
