"""SQLite behind the store's seam (``dialect.py``): a file (or ``:memory:``), FTS5 search, ``PRAGMA user_version``.

One pooled connection in driver-autocommit mode; the store issues ``BEGIN IMMEDIATE`` / ``COMMIT`` itself. Why:
reads outside a transaction must not leave a read snapshot open (that would pin the WAL and hide other processes'
writes), and a write transaction must take the write lock up front so a second memagent fails fast with "locked"
instead of deadlocking half-way through a step.

Full-text search uses FTS5 external-content tables (see ``migrations.py``). User/model queries are never passed
to FTS5 as syntax: ``fts_query`` quotes every term, so no input can raise a syntax error.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from memagent.errors import StoreError
from memagent.memory.dialect import Reasons, Rows, VectorStorage, explain, query_terms
from memagent.memory.filters import SearchFilter, sqlite_conditions
from memagent.memory.rows import one_line
from memagent.memory.search_text import CONTEXT_WEIGHT
from memagent.memory.vectors import DenseIndex

MEMORY_PATH = ":memory:"

_REASONS: Reasons = (
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


class SqliteDialect:
    """The memagent database in the file ``path`` (created with its parent directories if missing)."""

    name = "sqlite"
    begin = "BEGIN IMMEDIATE"
    drops_stopwords = False  # FTS5 indexes every word
    join = "CROSS JOIN"  # see text_search; bench/memory_scale.py sets a plain JOIN to measure what this saves

    def __init__(self, path: str | Path, busy_timeout: float, read_only: bool = False) -> None:
        in_memory = str(path) == MEMORY_PATH
        self.path: Path | str = MEMORY_PATH if in_memory else Path(path).expanduser()
        self.where = str(self.path)
        self.read_only = read_only and not in_memory
        self.busy_timeout = busy_timeout
        self.dense = DenseIndex()
        if not in_memory and not self.read_only:
            _prepare_file(Path(self.path))

    def create_engine(self) -> sa.Engine:
        if self.read_only:
            return _read_only_engine(Path(self.path), self.busy_timeout)
        return _engine(str(self.path), self.busy_timeout)

    def prepare(self, conn: sa.Connection) -> None:
        if not self.read_only:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def in_transaction(self, conn: sa.Connection) -> bool:
        dbapi = conn.connection.dbapi_connection
        return dbapi is not None and bool(getattr(dbapi, "in_transaction", False))

    def schema_version(self, conn: sa.Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())

    def set_schema_version(self, conn: sa.Connection, version: int) -> None:
        # PRAGMA values can't be bound parameters; ``version`` is an int we computed. Transactional in SQLite.
        conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")

    def foreign_tables(self, conn: sa.Connection) -> list[str]:
        """memagent sets the version in the same transaction that creates its tables, so at version 0 any table is
        another program's."""
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return [str(row[0]) for row in rows]

    def reason(self, error: BaseException) -> str:
        return explain(error, _REASONS, "check the file or choose another database path")

    def contains(self, column: sa.ColumnElement[str], needle: str) -> sa.ColumnElement[bool]:
        return sa.func.instr(sa.func.lower(column), sa.func.lower(needle)) > 0

    def term_counts(self, table: sa.Table, terms: Sequence[str], cap: int) -> sa.Executable | None:
        """Each term's rows in the FTS5 index (every agent's), up to ``cap`` + 1: a doclist walk, no row lookups."""
        fts = f"{table.name}_fts"
        params = {f"t{i}": fts_match([term]) for i, term in enumerate(terms)}
        counts = ", ".join(
            f"(SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} MATCH :{name} LIMIT :cap))" for name in params
        )
        return sa.text(f"SELECT {counts}").bindparams(**params, cap=cap + 1)

    def text_search(
        self, table: sa.Table, columns: Sequence[sa.Column[Any]], agent_id: int, filters: SearchFilter,
        terms: Sequence[str], limit: int, offset: int, count_limit: int, window: int | None = None,
        candidates: int | None = None, terms_held: bool = False,
    ) -> tuple[sa.Executable, sa.Executable]:
        """bm25-ranked FTS5 search, then newest first; with a ``window``, among the newest ``window`` matches only.
        With ``candidates``, ranked in the index alone first and only the first ``candidates`` rows read; with
        ``terms_held`` too, ranked by the terms each match holds instead of bm25 (``_ranked_by_terms_held``).

        bm25 reads each match's term frequencies and column sizes, so ranking the 50k matches of a common word took
        40-130 ms at 100k rows and grew with the table. The window's bound is found in the index alone (FTS5 walks a
        match newest first without ranking or reading rows), over every agent's rows: the count statement's second
        column is that bound (0: the window left nothing out), so the searcher can tell a short page whose other
        matches the window cut off (another agent's newer rows filled it) and search again without it."""
        fts, alias = f"{table.name}_fts", table.name[0]
        params: dict[str, Any] = {"agent_id": agent_id, "match": fts_match(terms)}
        filter_where, binds = sqlite_conditions(filters, table, alias)
        bound = "0"
        if window is not None:
            newest = f"SELECT rowid FROM {fts} WHERE {fts} MATCH :match ORDER BY rowid DESC LIMIT 1 OFFSET :w"
            bound = f"coalesce(({newest}), 0)"
            params["w"] = window - 1
        # CROSS JOIN keeps the FTS5 table outermost: SQLite reads the matches and looks each row up by id. With a
        # plain JOIN it chose to walk every row of the agent and probe FTS5 per row: 170 s a search at 1M rows
        # instead of ~40 ms (bench/memory_scale.py).
        where = (
            f"FROM {fts} {self.join} {table.name} {alias} ON {alias}.id = {fts}.rowid WHERE {fts} MATCH :match "
            f"AND {alias}.agent_id = :agent_id {filter_where} AND {fts}.rowid >= {bound}"
        )
        # Columns (search_context, search_text): a word of the row before counts CONTEXT_WEIGHT of the row's own.
        order = f"bm25({fts}, {CONTEXT_WEIGHT}, 1.0), {alias}.created_at DESC, {alias}.id DESC"
        selected = ", ".join(f"{alias}.{column.name}" for column in columns)
        count = sa.text(f"SELECT count(*), {bound} FROM (SELECT 1 {where} LIMIT :count_limit)").bindparams(
            *binds, **params, count_limit=count_limit + 1
        )
        if candidates is not None:
            ranked = _ranked_by_terms_held(fts, terms, params) if terms_held else _ranked_by_bm25(fts)
            page_sql = (
                f"WITH bound(v) AS MATERIALIZED (SELECT {bound}), {ranked} SELECT {selected} FROM ranked CROSS JOIN "
                f"{table.name} {alias} ON {alias}.id = ranked.id WHERE {alias}.agent_id = :agent_id {filter_where} "
                f"ORDER BY ranked.score, {alias}.created_at DESC, {alias}.id DESC LIMIT :limit OFFSET :offset"
            )
            params["candidates"] = candidates
        else:
            page_sql = f"SELECT {selected} {where} ORDER BY {order} LIMIT :limit OFFSET :offset"
        page = sa.text(page_sql).bindparams(*binds, **params, limit=limit, offset=offset).columns(*columns)
        return count, page

    def vector_storage(self, conn: sa.Connection) -> VectorStorage:
        return "ready"  # BLOBs: nothing to install

    def dense_search(self, rows: Rows, kind: str, agent_id: int, model: str, query: bytes, limit: int) -> list[int]:
        """Every vector of the agent ranked in memory (``vectors.DenseIndex``): no ANN index, see vectors.py."""
        return self.dense.nearest(rows, kind, agent_id, model, query, limit)


def _ranked_by_bm25(fts: str) -> str:
    """A ``ranked`` CTE: the first ``:candidates`` matches from ``bound`` on by bm25 (``score``, lower is better),
    then newest first, read from the index alone (no row of the table read for the others)."""
    return (
        f"ranked AS (SELECT rowid AS id, bm25({fts}, {CONTEXT_WEIGHT}, 1.0) AS score FROM {fts} "
        f"WHERE {fts} MATCH :match AND rowid >= (SELECT v FROM bound) ORDER BY score, rowid DESC LIMIT :candidates)"
    )


def _ranked_by_terms_held(fts: str, terms: Sequence[str], params: dict[str, Any]) -> str:
    """A ``ranked`` CTE: the window's first ``:candidates`` matches by the terms they hold (a term in the row's text
    counts 1, in the turn before CONTEXT_WEIGHT, as bm25 weighs the columns; ``score`` is minus that), then newest
    first.

    One term and column at a time within the window (``bound`` is its lowest id), from the index alone: no bm25,
    whose cost grew with the table (it counts every row holding each term, and reads each match's size). Used when
    the window is full (see ``search.Searcher._text_page``)."""
    held = []
    for i, term in enumerate(terms):
        for column, weight in (("search_text", 1.0), ("search_context", CONTEXT_WEIGHT)):
            params[f"{column}{i}"] = f"{column} : {fts_match([term])}"
            held.append(
                f"SELECT rowid AS id, {weight} AS weight FROM {fts} WHERE {fts} MATCH :{column}{i} "
                "AND rowid >= (SELECT v FROM bound)"
            )
    return (
        f"ranked AS (SELECT id, -sum(weight) AS score FROM ({' UNION ALL '.join(held)}) GROUP BY id "
        "ORDER BY score, id DESC LIMIT :candidates)"
    )


def fts_match(terms: Sequence[str]) -> str:
    """Every term a double-quoted FTS5 string (so AND/OR/NOT/NEAR, ``*``, ``^``, ``:``, ``-``, parentheses and
    quotes are just text), OR-ed: bm25 then ranks rows that match more of the terms first."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression that searches ``query`` literally, or None if it has no terms."""
    terms = query_terms(query)
    return fts_match(terms) if terms else None


def _prepare_file(path: Path) -> None:
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


def _engine(database: str, busy_timeout: float) -> sa.Engine:
    """One pooled connection, driver autocommit (the store issues BEGIN/COMMIT), pragmas set on connect."""
    url = sa.URL.create("sqlite+pysqlite", database=database)
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


def _read_only_engine(path: Path, busy_timeout: float) -> sa.Engine:
    """SQLite's ``mode=ro``; where even that can't work (a WAL database in a directory we can't write, so no
    ``-shm`` file can be made) ``immutable=1``, which reads the file as it is."""
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

    return sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=StaticPool, isolation_level="AUTOCOMMIT")
