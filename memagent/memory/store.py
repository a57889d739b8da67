"""Storage for agents, their message log (recall memory) and passages (archival memory), on SQLite or PostgreSQL.

``Store(target)`` opens a SQLite file (a path, the default: ``$MEMAGENT_HOME/memagent.db``) or a PostgreSQL
database (a SQLAlchemy URL such as ``postgresql+psycopg://user:password@host/db``). The statements are Core
statements on ``schema.py``'s tables; what differs between the two databases is behind ``dialect.py``.

One ``Store`` owns one connection in driver-autocommit mode and issues ``BEGIN`` / ``COMMIT`` itself. Why: reads
outside a transaction must not leave a read snapshot open (that would hide other processes' writes), and a write
transaction must take its locks up front (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``Transaction.lock_agent``)
so a second memagent waits or fails fast instead of deadlocking half-way through a step. The CLI is
single-threaded, so one connection is enough, and reads made inside ``transaction()`` see its uncommitted writes
because they share that connection.

Every failure the user can do something about (bad path, not a database, locked, read-only, newer schema, server
down, wrong password, missing driver) becomes a one-line ``StoreError`` naming the database (a URL never shows
its password); that translation lives here, with each dialect's wording, and the writes of ``transaction.py`` go
through it too. The dataclasses the store returns are in ``rows.py``; they and ``Transaction`` are re-exported.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from memagent.errors import StoreError
from memagent.memory.database_url import is_url, open_dialect
from memagent.memory.embed import Embedder
from memagent.memory.filters import NO_FILTER, SearchFilter
from memagent.memory.hybrid import Fusion, HybridSearcher
from memagent.memory.migrations import (
    MEMORY_VERSIONS_SCHEMA,
    MIGRATIONS,
    Migration,
    adopt_pgvector,
    apply_pending,
    check_version,
)
from memagent.memory.names import unique_agent_name
from memagent.memory.reads import Reads
from memagent.memory.reindex import Progress, backfill_messages, backfill_passages
from memagent.memory.rows import (
    AgentRow,
    Passage,
    SearchPage,
    StoredMessage,
    one_line,
)
from memagent.memory.search import Searcher
from memagent.memory.sqlite import MEMORY_PATH
from memagent.memory.transaction import Transaction
from memagent.memory.vectors import (
    KINDS,
    count_pending,
    embedded_text,
    insert_values,
    pending_rows,
    select_pending,
    still_current,
)
from memagent.memory.versions import MemoryVersion, select_versions, version_from_row

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MEMORY_PATH",
    "AgentRow",
    "Passage",
    "SearchFilter",
    "SearchPage",
    "Store",
    "StoredMessage",
    "Transaction",
    "is_url",
    "unique_agent_name",
]

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for another process's lock before giving up with "locked". Write transactions
are short (a step's function and its rows; never a model call), so several processes on one agent take turns."""


class Store(Reads):
    """The memagent database at ``target``: a file path (created with its parent directories if missing), or a
    SQLAlchemy URL of a SQLite file or a PostgreSQL database."""

    def __init__(
        self,
        target: str | Path | sa.URL,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrations: Sequence[Migration] = MIGRATIONS,
        read_only: bool = False,
    ) -> None:
        """``read_only`` opens an existing database without ever writing to it (no migration, no WAL switch), so
        listing and showing agents work in a home the user can't write to."""
        self._depth = 0
        self._closed = True
        self.dialect = open_dialect(target, busy_timeout, read_only)
        self.path: Path | str = getattr(self.dialect, "path", self.dialect.where)
        self.where = self.dialect.where
        self.read_only = bool(getattr(self.dialect, "read_only", read_only))
        self._engine = self.dialect.create_engine()
        self.searcher: Searcher = Searcher(self.dialect, self._rows)
        self.embedder: Embedder | None = None
        self.keeps_vectors = False
        self._commit_listeners: list[Callable[[], None]] = []
        self._closed = False
        try:
            with self._guard("open"):
                self._conn = self._engine.connect()
                self.dialect.prepare(self._conn)
            self._migrate(migrations)
            self.keeps_vectors = self._vectors_ready()
        except BaseException:
            self._engine.dispose()
            self._closed = True
            raise

    @classmethod
    def open(cls, target: str | Path | sa.URL, **options: Any) -> Store:
        """``Store(target)``: a file path or a SQLAlchemy URL."""
        return cls(target, **options)

    @classmethod
    def in_memory(cls) -> Store:
        """A private, empty SQLite database that vanishes on close: for tests."""
        return cls(MEMORY_PATH)

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        """Bring the schema up to date; a no-op (no write lock taken) when it already is."""
        with self._guard("open"):
            self._version = current = check_version(self._conn, self.dialect, len(migrations))
        if current == len(migrations) or self.read_only:
            return  # read-only: reads of an older schema still work; the first writer upgrades it
        with self._raw_transaction("upgrade"), self._guard("upgrade"):
            # Re-read under the write lock: another process may have migrated in the meantime.
            self._version = apply_pending(self._conn, self.dialect, self.dialect.schema_version(self._conn), migrations)

    def _vectors_ready(self) -> bool:
        """Whether this database keeps dense vectors, so search can be hybrid: not on a PostgreSQL server without
        pgvector (search is full text there, ``search_notice`` says so); a table made without it moves onto pgvector
        at the first writable open after the extension can be had."""
        with self._guard("open"):
            storage = self.dialect.vector_storage(self._conn)
        if storage != "installable" or self.read_only:
            return storage == "ready"
        with self._raw_transaction("upgrade"), self._guard("upgrade"):
            return adopt_pgvector(self._conn)

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def schema_version(self) -> int:
        with self._guard("read"):
            return self.dialect.schema_version(self._conn)

    def close(self) -> None:
        """Roll back anything uncommitted and release the database. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._rollback_quietly()
        with suppress(sa_exc.DBAPIError):
            self._conn.close()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the store for {self.where} is closed")

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate driver errors into StoreError; programming errors (IntegrityError on a CHECK or a unique
        name, ProgrammingError...) keep their traceback because they are bugs or handled by the caller."""
        try:
            yield
        except sa_exc.IntegrityError as error:
            if "foreign key" not in str(error.orig).lower():
                raise
            raise StoreError(
                one_line(
                    f"Can't write to database {self.where}: the agent no longer exists (deleted by another "
                    "memagent?); restart memagent"
                )
            ) from None
        except (sa_exc.DBAPIError, sqlite3.OperationalError, sqlite3.DatabaseError) as error:
            if isinstance(
                error,
                sa_exc.ProgrammingError | sa_exc.DataError | sa_exc.NotSupportedError | sqlite3.ProgrammingError,
            ):
                raise
            if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
                with suppress(sa_exc.SQLAlchemyError):
                    self._conn.rollback()  # a lost connection: the next statement connects again
            raise StoreError(one_line(f"Can't {action} database {self.where}: {self.dialect.reason(error)}")) from None

    # --------------------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The only way to write. Commits on normal exit, rolls back if the block raises.

        Nested calls use a SAVEPOINT: an inner block that raises undoes only its own writes, and
        nothing is durable until the outermost block commits."""
        self._check_open()
        if self.read_only:
            raise StoreError(f"Can't write to database {self.where}: it was opened read-only; check its permissions")
        tx = Transaction(self)
        try:
            with self._raw_transaction("write to"):
                yield tx
        finally:
            tx.finish()

    @contextmanager
    def _raw_transaction(self, action: str) -> Iterator[None]:
        depth = self._depth
        savepoint = f"sp{depth}"
        with self._guard(action):
            self._conn.exec_driver_sql(self.dialect.begin if depth == 0 else f"SAVEPOINT {savepoint}")
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
        if depth == 0:
            for listener in self._commit_listeners:
                listener()

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed write transaction (the embedding worker's wake-up)."""
        self._commit_listeners.append(listener)

    def _rollback_quietly(self) -> None:
        """Roll back if the driver still has a transaction open (some errors already ended it)."""
        # If even ROLLBACK fails the connection is unusable; the next statement reports why.
        with suppress(sa_exc.DBAPIError, sa_exc.InvalidRequestError):
            if self.dialect.in_transaction(self._conn):
                self._conn.exec_driver_sql("ROLLBACK")

    def execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> sa.CursorResult[Any]:
        """One statement (a list of params means executemany) with error translation: how a ``Transaction``
        writes (the ``Executor`` it is given)."""
        self._check_open()
        with self._guard("write to"):
            return self._conn.execute(statement, params)

    # ---------------------------------------------------------------------------------- reads

    def _rows(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Sequence[sa.Row[Any]]:
        """All rows of a read."""
        self._check_open()
        with self._guard("read"):
            return self._conn.execute(statement, params or {}).all()

    def reindex_search(self, progress: Progress | None = None) -> int:
        """Rebuild every row's full-text index entry (``search_text.py``) in one write transaction; ``progress``
        gets the rows done so far. Returns the number of rows."""
        with self.transaction(), self._guard("write to"):
            messages = backfill_messages(self._conn, progress)
            later = None if progress is None else (lambda rows: progress(messages + rows))
            return messages + backfill_passages(self._conn, later)

    # ------------------------------------------------------------------------------ embeddings

    def use_embedder(self, embedder: Embedder | None, fusion: Fusion | None = None) -> None:
        """Search hybrid (full text fused with ``embedder``'s vectors: ``hybrid.py``), or full text again with None;
        always full text where the database keeps no vectors (``keeps_vectors``)."""
        self.embedder = embedder if self.keeps_vectors else None
        self.searcher = Searcher(self.dialect, self._rows)
        if self.embedder is not None:
            self.searcher = HybridSearcher(self.dialect, self._rows, self.embedder, fusion)

    def count_unembedded(self, model: str) -> int:
        """Rows with index text and no vector of ``model`` yet."""
        return sum(int(self._scalar(count_pending(kind, model))) for kind in KINDS)

    def embed_pending(
        self, embedder: Embedder, progress: Progress | None = None, *, batch: int = 16, after: dict[str, int] | None
        = None, stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Give every row without a vector of ``embedder.model`` one, ``batch`` rows at a time: read, embed outside
        any transaction (the model takes ~50 ms a row), then write in a short transaction the rows that are still
        as they were embedded. ``after`` (kind -> id) skips rows up to those ids and is moved on; ``stop`` is asked
        between batches. Returns the number of vectors written: none where the database keeps no vectors."""
        done, cursor = 0, after if after is not None else {}
        for kind in KINDS if self.keeps_vectors else ():
            while not stop():
                rows = self._rows(select_pending(kind, embedder.model, cursor.get(kind, 0), batch))
                if not rows:
                    break
                items = pending_rows(rows, kind)
                vectors = embedder.passages([item.text for item in items])
                done += self._write_vectors(kind, list(zip(items, vectors, strict=True)), embedder.model)
                cursor[kind] = items[-1].row_id
                if progress is not None:
                    progress(done)
        return done

    def _write_vectors(self, kind: str, embedded: list[tuple[Any, bytes]], model: str) -> int:
        with self.transaction() as tx:
            current = {
                int(row.id): (row.search_context, row.search_text)
                for row in self._rows(still_current(kind, [item for item, _ in embedded], model))
            }
            kept = [
                (item, vector) for item, vector in embedded
                if item.row_id in current and item.text == embedded_text(kind, *current[item.row_id])
            ]
            if kept:
                tx.add_embeddings(insert_values(kind, kept, model))
        return len(kept)

    def memory_versions(
        self, agent_id: int, block: str | None = None, *, limit: int | None = None, newest_first: bool = True,
        version_id: int | None = None,
    ) -> list[MemoryVersion]:
        """The agent's core-memory history (of one block, or change ``version_id``), newest first; none in a file
        older than it (opened read-only)."""
        if self._version < MEMORY_VERSIONS_SCHEMA:
            return []
        statement = select_versions(agent_id, block, newest_first, version_id)
        rows = self._rows(statement if limit is None else statement.limit(limit))
        return [version_from_row(row) for row in rows]

    # --------------------------------------------------------------------------------- search

    def search_messages(
        self, agent_id: int, query: str, *, page: int = 0, page_size: int = 5, roles: Sequence[str] | None = None,
        filters: SearchFilter = NO_FILTER,
    ) -> SearchPage[StoredMessage]:
        """Recall-memory search: best full-text match first, among the messages ``filters`` lets through; ``roles``
        (if given) replaces its roles (only messages of ``search_text.INDEXED_ROLES`` are indexed)."""
        if roles is not None:
            filters = replace(filters, roles=tuple(roles))
        return self.searcher.messages(agent_id, query, page, page_size, filters)

    def search_messages_by_date(
        self, agent_id: int, start: date, end: date, *, page: int = 0, page_size: int = 5,
        roles: Sequence[str] | None = None,
    ) -> SearchPage[StoredMessage]:
        """Messages from local-time midnight of ``start`` through the end of ``end`` (both inclusive), oldest
        first. ``start`` after ``end`` matches nothing."""
        return self.searcher.messages_by_date(agent_id, start, end, page, page_size, roles)

    def search_passages(
        self, agent_id: int, query: str, *, page: int = 0, page_size: int = 5, filters: SearchFilter = NO_FILTER
    ) -> SearchPage[Passage]:
        """Archival-memory search: best full-text match first, among the passages ``filters`` lets through; each
        with its tags."""
        found = self.searcher.passages(agent_id, query, page, page_size, filters)
        return replace(found, items=self.with_tags(found.items))
