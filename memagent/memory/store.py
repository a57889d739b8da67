"""SQLite storage for agents, their message log (recall memory) and passages (archival memory).

One ``Store`` owns one SQLAlchemy connection in driver-autocommit mode and issues ``BEGIN IMMEDIATE``
/ ``COMMIT`` itself. Why: reads outside a transaction must not leave a read snapshot open (that would
pin the WAL and hide other processes' writes), and a write transaction must take the write lock up
front so a second memagent fails fast with "locked" instead of deadlocking half-way through a step.
The CLI is single-threaded, so one connection is enough, and reads made inside ``transaction()``
see its uncommitted writes because they share that connection.

Full-text search uses FTS5 external-content tables (see ``migrations.py``). User/model queries are
never passed to FTS5 as syntax: ``fts_query`` quotes every term, so no input can raise a syntax error.

Every failure the user can do something about (bad path, not a database, locked, read-only, newer
schema) becomes a one-line ``StoreError`` naming the database path; that translation lives here only,
and the writes of ``transaction.py`` go through it too. The dataclasses the store returns are in
``rows.py``; they and ``Transaction`` are re-exported here.
"""

from __future__ import annotations

import json
import random
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from memagent.errors import StoreError
from memagent.memory.migrations import (
    MIGRATIONS,
    Migration,
    apply_pending,
    foreign_tables,
    fts_query,
    schema_version,
)
from memagent.memory.rows import (
    AgentRow,
    Passage,
    SearchPage,
    StoredMessage,
    agent_from_row,
    local_day_start,
    message_from_row,
    one_line,
    passage_from_row,
    search_page,
    utc_iso,
)
from memagent.memory.transaction import Transaction
from memagent.text import clean_text

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MEMORY_PATH",
    "AgentRow",
    "Passage",
    "SearchPage",
    "Store",
    "StoredMessage",
    "Transaction",
    "unique_agent_name",
]

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another process's lock before giving up with "locked". Write transactions
are short (a step's function and its rows; never a model call), so several processes on one agent take turns."""

MEMORY_PATH = ":memory:"


# ---------------------------------------------------------------------------------- error messages

_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("locked", "busy"),
        "it is locked by another program (is another memagent running?); close that program and try again",
    ),
    (
        ("not a database", "encrypted"),
        "it is not a SQLite database; move the file away or choose another database path",
    ),
    (("malformed", "corrupt"), "the database is damaged; restore a backup or move the file away"),
    (("readonly", "read-only"), "it is read-only; fix the permissions of the file and its directory"),
    (("unable to open",), "the file can't be opened; check that its directory exists and is writable"),
    (("disk is full", "database or disk is full"), "the disk is full; free some space and retry"),
    (("no such module: fts5",), "this Python's SQLite lacks FTS5; use a Python built with FTS5"),
)


def _reason(error: BaseException) -> str:
    """Turn a driver error into "what happened; how to fix it" without a traceback."""
    original = getattr(error, "orig", None) or error
    detail = one_line(str(original)) or type(original).__name__
    lowered = detail.lower()
    for needles, reason in _REASONS:
        if any(needle in lowered for needle in needles):
            return reason
    return f"{detail}; check the file or choose another database path"


# ------------------------------------------------------------------------------------------ store

_MESSAGE_COLUMNS = "m.id, m.agent_id, m.role, m.text, m.payload, m.created_at"
_PASSAGE_COLUMNS = "p.id, p.agent_id, p.text, p.created_at"


def _check_paging(page: int, page_size: int) -> None:
    if page < 0 or page_size < 1:
        raise ValueError(f"page must be >= 0 and page_size >= 1 (got page={page}, page_size={page_size})")


class Store:
    """The memagent database at ``path`` (created with its parent directories if missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrations: Sequence[Migration] = MIGRATIONS,
        read_only: bool = False,
    ) -> None:
        """``read_only`` opens an existing file without ever writing to it (no migration, no WAL switch), so
        listing and showing agents work in a home the user can't write to."""
        in_memory = str(path) == MEMORY_PATH
        self.path: Path | str = MEMORY_PATH if in_memory else Path(path).expanduser()
        self.read_only = read_only and not in_memory
        self._depth = 0
        self._closed = False
        if self.read_only:
            self._engine = self._read_only_engine(Path(self.path), busy_timeout)
        else:
            if not in_memory:
                self._prepare_file(Path(self.path))
            self._engine = self._make_engine(busy_timeout)
        try:
            with self._guard("open"):
                self._conn = self._engine.connect()
                if not self.read_only:
                    self._conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            self._migrate(migrations)
        except BaseException:
            self._engine.dispose()
            self._closed = True
            raise

    @classmethod
    def in_memory(cls) -> Store:
        """A private, empty database that vanishes on close: for tests."""
        return cls(MEMORY_PATH)

    def _prepare_file(self, path: Path) -> None:
        """Create the parent directories, turning OS errors into one clear line."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                one_line(
                    f"Can't create the directory for database {path}: {error.strerror or error}; "
                    "choose a writable location for the database"
                )
            ) from None
        if path.is_dir():
            raise StoreError(f"Can't open database {path}: it is a directory; give a file path instead")

    def _make_engine(self, busy_timeout: float) -> sa.Engine:
        """One pooled connection, driver autocommit (we issue BEGIN/COMMIT), pragmas set on connect."""
        url = sa.URL.create("sqlite+pysqlite", database=str(self.path))
        engine = sa.create_engine(
            url, poolclass=StaticPool, isolation_level="AUTOCOMMIT", connect_args={"timeout": busy_timeout}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        return engine

    def _read_only_engine(self, path: Path, busy_timeout: float) -> sa.Engine:
        """SQLite's ``mode=ro``; where even that can't work (a WAL database in a directory we can't write, so
        no ``-shm`` file can be made) ``immutable=1``, which reads the file as it is."""
        if not path.is_file():
            raise StoreError(f"Can't open database {path}: it does not exist; run `memagent chat` to create it")
        uri = "file:" + urllib.parse.quote(str(path.resolve()))

        def connect() -> sqlite3.Connection:
            last: sqlite3.Error | None = None
            for flags in ("mode=ro", "mode=ro&immutable=1"):
                try:
                    conn = sqlite3.connect(f"{uri}?{flags}", uri=True, timeout=busy_timeout, check_same_thread=False)
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                    return conn
                except sqlite3.Error as error:
                    last = error
            assert last is not None
            raise last

        return sa.create_engine(
            "sqlite+pysqlite://", creator=connect, poolclass=StaticPool, isolation_level="AUTOCOMMIT"
        )

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Bring the schema up to date; a no-op (no write lock taken) when it already is."""
        with self._guard("open"):
            current = schema_version(self._conn)
        if current > len(migrations):
            raise StoreError(
                f"Can't open database {self.path}: it was written by a newer memagent (schema "
                f"v{current}, this version knows up to v{len(migrations)}); upgrade memagent or "
                "choose another database path"
            )
        if current == len(migrations):
            return
        if current == 0:
            with self._guard("open"):
                foreign = foreign_tables(self._conn)
            if foreign:
                raise StoreError(
                    one_line(
                        f"Can't open database {self.path}: it is not a memagent database (it holds tables "
                        f"{', '.join(foreign[:5])} but no memagent schema); choose another database path"
                    )
                )
        if self.read_only:
            return  # reads of an older schema still work; the first writer upgrades it
        with self._raw_transaction("upgrade"), self._guard("upgrade"):
            # Re-read under the write lock: another process may have migrated in the meantime.
            apply_pending(self._conn, schema_version(self._conn), migrations)

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def schema_version(self) -> int:
        with self._guard("read"):
            return schema_version(self._conn)

    def close(self) -> None:
        """Roll back anything uncommitted and release the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._rollback_quietly()
        self._conn.close()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the store for {self.path} is closed")

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate driver errors into StoreError; programming errors (IntegrityError on a CHECK,
        ProgrammingError...) keep their traceback because they are bugs."""
        try:
            yield
        except sa_exc.IntegrityError as error:
            if "FOREIGN KEY" not in str(error.orig):
                raise
            raise StoreError(
                one_line(
                    f"Can't write to database {self.path}: the agent no longer exists (deleted by another "
                    "memagent?); restart memagent"
                )
            ) from None
        except (
            sa_exc.OperationalError,
            sa_exc.DatabaseError,
            sqlite3.OperationalError,
            sqlite3.DatabaseError,
        ) as error:
            if isinstance(error, sa_exc.ProgrammingError | sqlite3.ProgrammingError):
                raise
            raise StoreError(one_line(f"Can't {action} database {self.path}: {_reason(error)}")) from None

    # --------------------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The only way to write. Commits on normal exit, rolls back if the block raises.

        Nested calls use a SAVEPOINT: an inner block that raises undoes only its own writes, and
        nothing is durable until the outermost block commits."""
        self._check_open()
        if self.read_only:
            raise StoreError(f"Can't write to database {self.path}: it was opened read-only; check its permissions")
        tx = Transaction(self)
        try:
            with self._raw_transaction("write to"):
                yield tx
        finally:
            tx._finished = True

    @contextmanager
    def _raw_transaction(self, action: str) -> Iterator[None]:
        depth = self._depth
        savepoint = f"sp{depth}"
        begin = "BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}"
        with self._guard(action):
            self._conn.exec_driver_sql(begin)
        self._depth = depth + 1
        try:
            yield
        except BaseException:
            if depth == 0:
                self._rollback_quietly()
            else:
                with self._guard(action):
                    self._conn.exec_driver_sql(f"ROLLBACK TO {savepoint}")
                    self._conn.exec_driver_sql(f"RELEASE {savepoint}")
            raise
        else:
            self._commit(depth, savepoint, action)
        finally:
            self._depth = depth

    def _commit(self, depth: int, savepoint: str, action: str) -> None:
        try:
            with self._guard(action):
                self._conn.exec_driver_sql("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
        except StoreError:
            if depth == 0:
                self._rollback_quietly()  # a failed COMMIT leaves the transaction open
            raise

    def _rollback_quietly(self) -> None:
        """Roll back if SQLite still has a transaction open (some errors already ended it)."""
        dbapi = self._conn.connection.dbapi_connection
        if dbapi is not None and dbapi.in_transaction:
            # If even ROLLBACK fails the connection is unusable; the next statement reports why.
            with suppress(sa_exc.DBAPIError):
                self._conn.exec_driver_sql("ROLLBACK")

    def _execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], action: str
    ) -> sa.CursorResult[Any]:
        """One statement (a list of params means executemany) with error translation: how a
        ``Transaction`` writes."""
        self._check_open()
        with self._guard(action):
            return self._conn.execute(sa.text(sql), params)

    # ---------------------------------------------------------------------------------- reads

    def _rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[sa.Row[Any]]:
        self._check_open()
        with self._guard("read"):
            return self._conn.execute(sa.text(sql), params).all()

    def _scalar(self, sql: str, params: Mapping[str, Any]) -> Any:
        self._check_open()
        with self._guard("read"):
            return self._conn.execute(sa.text(sql), params).scalar_one()

    def find_agent(self, name: str) -> AgentRow | None:
        rows = self._rows("SELECT * FROM agents WHERE name = :name", {"name": name})
        return agent_from_row(rows[0]) if rows else None

    def find_agent_by_id(self, agent_id: int) -> AgentRow | None:
        rows = self._rows("SELECT * FROM agents WHERE id = :id", {"id": agent_id})
        return agent_from_row(rows[0]) if rows else None

    def list_agents(self) -> list[AgentRow]:
        """All agents, by name (what a listing shows)."""
        return [agent_from_row(row) for row in self._rows("SELECT * FROM agents ORDER BY name, id", {})]

    def get_messages(self, agent_id: int, ids: Sequence[int]) -> list[StoredMessage]:
        """The messages with ``ids``, in the order of ``ids`` (an agent's in-context window).

        A missing id means the saved state points at a message that is gone, so this raises
        StoreError instead of silently dropping part of the context."""
        rows = self._rows(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.agent_id = :agent_id "
            "AND m.id IN (SELECT value FROM json_each(:ids))",
            {"agent_id": agent_id, "ids": json.dumps([int(i) for i in ids])},
        )
        by_id = {row.id: message_from_row(row) for row in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StoreError(
                one_line(
                    f"Database {self.path} is missing messages {missing[:10]} of agent {agent_id}; the "
                    "file was edited or damaged, restore a backup or delete the agent"
                )
            )
        return [by_id[i] for i in ids]

    def count_messages(self, agent_id: int) -> int:
        return int(self._scalar("SELECT count(*) FROM messages WHERE agent_id = :a", {"a": agent_id}))

    def count_passages(self, agent_id: int) -> int:
        return int(self._scalar("SELECT count(*) FROM passages WHERE agent_id = :a", {"a": agent_id}))

    def all_messages(self, agent_id: int) -> list[StoredMessage]:
        """Every message of the agent in id order (the order they were written): what an export holds."""
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.agent_id = :a ORDER BY m.id"
        rows = self._rows(sql, {"a": agent_id})
        return [message_from_row(row) for row in rows]

    def all_passages(self, agent_id: int) -> list[Passage]:
        """Every passage of the agent in id order."""
        sql = f"SELECT {_PASSAGE_COLUMNS} FROM passages p WHERE p.agent_id = :a ORDER BY p.id"
        rows = self._rows(sql, {"a": agent_id})
        return [passage_from_row(row) for row in rows]

    def list_passages(self, agent_id: int, limit: int, offset: int = 0) -> list[Passage]:
        """Passages oldest first (insertion order)."""
        rows = self._rows(
            f"SELECT {_PASSAGE_COLUMNS} FROM passages p WHERE p.agent_id = :a ORDER BY p.id "
            "LIMIT :limit OFFSET :offset",
            {"a": agent_id, "limit": limit, "offset": offset},
        )
        return [passage_from_row(row) for row in rows]

    # --------------------------------------------------------------------------------- search

    def _page(
        self, from_where: str, order: str, columns: str, params: dict[str, Any], page: int, page_size: int
    ) -> tuple[int, Sequence[sa.Row[Any]]]:
        """Count every match, then fetch one page: ``total`` is never just ``len(items)``."""
        _check_paging(page, page_size)
        total = int(self._scalar(f"SELECT count(*) {from_where}", params))
        rows = self._rows(
            f"SELECT {columns} {from_where} ORDER BY {order} LIMIT :limit OFFSET :offset",
            {**params, "limit": page_size, "offset": page * page_size},
        )
        return total, rows

    def _text_search(
        self,
        table: str,
        alias: str,
        columns: str,
        extra_where: str,
        params: dict[str, Any],
        query: str,
        page: int,
        page_size: int,
    ) -> tuple[int, Sequence[sa.Row[Any]]]:
        """bm25-ranked FTS5 search of ``query`` taken literally; substring match when it has no
        indexable term (only punctuation or emoji), newest first. An empty query matches all."""
        query = clean_text(query)
        match = fts_query(query)
        if match is None:
            where = (
                f"FROM {table} {alias} WHERE {alias}.agent_id = :agent_id {extra_where} "
                f"AND instr(lower({alias}.text), lower(:needle)) > 0"
            )
            order = f"{alias}.created_at DESC, {alias}.id DESC"
            return self._page(where, order, columns, {**params, "needle": query.strip()}, page, page_size)
        fts = f"{table}_fts"
        # CROSS JOIN keeps the FTS5 table outermost: SQLite reads the matches and looks each row up by id. With a
        # plain JOIN it chose to walk every row of the agent and probe FTS5 per row: 170 s a search at 1M rows
        # instead of ~40 ms (bench/memory_scale.py).
        where = (
            f"FROM {fts} CROSS JOIN {table} {alias} ON {alias}.id = {fts}.rowid WHERE {fts} MATCH :match "
            f"AND {alias}.agent_id = :agent_id {extra_where}"
        )
        order = f"bm25({fts}), {alias}.created_at DESC, {alias}.id DESC"
        return self._page(where, order, columns, {**params, "match": match}, page, page_size)

    def search_messages(
        self, agent_id: int, query: str, *, page: int = 0, page_size: int = 5, roles: Sequence[str] | None = None
    ) -> SearchPage[StoredMessage]:
        """Recall-memory search: best bm25 match first; ``roles`` limits which roles count."""
        role_where, params = self._role_filter(agent_id, roles)
        total, rows = self._text_search("messages", "m", _MESSAGE_COLUMNS, role_where, params, query, page, page_size)
        return search_page([message_from_row(row) for row in rows], total, page, page_size)

    def search_messages_by_date(
        self,
        agent_id: int,
        start: date,
        end: date,
        *,
        page: int = 0,
        page_size: int = 5,
        roles: Sequence[str] | None = None,
    ) -> SearchPage[StoredMessage]:
        """Messages from local-time midnight of ``start`` through the end of ``end`` (both
        inclusive), oldest first. ``start`` after ``end`` matches nothing."""
        role_where, params = self._role_filter(agent_id, roles)
        params |= {"lo": utc_iso(local_day_start(start)), "hi": utc_iso(local_day_start(end + timedelta(days=1)))}
        where = (
            f"FROM messages m WHERE m.agent_id = :agent_id {role_where} AND m.created_at >= :lo AND m.created_at < :hi"
        )
        total, rows = self._page(where, "m.created_at, m.id", _MESSAGE_COLUMNS, params, page, page_size)
        return search_page([message_from_row(row) for row in rows], total, page, page_size)

    def search_passages(self, agent_id: int, query: str, *, page: int = 0, page_size: int = 5) -> SearchPage[Passage]:
        """Archival-memory search: best bm25 match first."""
        total, rows = self._text_search(
            "passages", "p", _PASSAGE_COLUMNS, "", {"agent_id": agent_id}, query, page, page_size
        )
        return search_page([passage_from_row(row) for row in rows], total, page, page_size)

    @staticmethod
    def _role_filter(agent_id: int, roles: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"agent_id": agent_id}
        if roles is None:
            return "", params
        params["roles"] = json.dumps(list(roles))
        return "AND m.role IN (SELECT value FROM json_each(:roles))", params


# ---------------------------------------------------------------------------------- agent names

# fmt: off
_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "cosmic", "dapper", "eager", "fuzzy", "gentle", "happy",
    "hidden", "jolly", "keen", "lively", "lucky", "mellow", "misty", "nimble", "plucky", "quiet", "rapid",
    "rusty", "silver", "sleepy", "snowy", "steady", "sunny", "swift", "tidy", "witty", "zesty",
)
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "falcon", "ferret", "gecko", "heron", "ibis", "koala", "lemur",
    "lynx", "marmot", "mole", "moose", "newt", "ocelot", "otter", "owl", "panda", "puffin", "quail",
    "raven", "seal", "sparrow", "stoat", "tapir", "toad", "walrus", "wombat", "yak", "zebra",
)
# fmt: on


def unique_agent_name(store: Store, rng: random.Random | None = None) -> str:
    """A readable name such as ``brisk-otter-42`` that no agent in ``store`` has yet.

    Deterministic for a seeded ``rng`` and a given database. After many collisions the number gets
    wider, so this always terminates."""
    rng = rng if rng is not None else random.Random()
    attempt = 0
    while True:
        high = 99 if attempt < 200 else 99_999
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}-{rng.randint(10, high)}"
        if store.find_agent(name) is None:
            return name
        attempt += 1
