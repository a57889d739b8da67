"""PostgreSQL behind the store's seam (``dialect.py``): a server named by a SQLAlchemy URL
(``postgresql+psycopg://user:password@host:5432/database``), ``tsvector`` search, a ``memagent_schema`` table.

Like SQLite, the store's connection runs in driver-autocommit mode and the store issues ``BEGIN`` / ``COMMIT``
itself, so no read leaves a snapshot open. PostgreSQL has no database-wide write lock: ``Transaction.lock_agent``
takes the agent's row with ``SELECT ... FOR UPDATE`` instead, and a lock waits at most the busy timeout.

Search: each table has a ``search_vector`` generated from its ``search_text`` with the 'english' configuration
(stemming; stopwords left out; see ``migrations.py``) and a GIN index. A query is its terms, each folded the same
way as the stored text and made a phrase by ``phraseto_tsquery`` (never parsed as query syntax), OR-ed, and
ranked by ``ts_rank``, then newest first. A term that is a stopword of that configuration gives an empty phrase,
which matches nothing: ``search.py`` never sends a query of stopwords only.

The URL is shown without its password everywhere (``where``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from memagent.errors import StoreError
from memagent.memory import schema
from memagent.memory.dialect import Reasons, Rows, VectorStorage, explain
from memagent.memory.filters import SearchFilter
from memagent.memory.migrations import VECTOR_COLUMN_TYPE
from memagent.memory.rows import one_line
from memagent.memory.search_text import CONTEXT_WEIGHT
from memagent.memory.vectors import vector_column

INSTALL_HINT = "pip install 'memagent[postgres]'"

_REASONS: Reasons = (
    (
        ("password authentication failed", "authentication failed", "no password supplied", "role \"", "pg_hba.conf"),
        "the server refused the user name or password; check the URL's user and password",
    ),
    (("does not exist",), "the database does not exist on that server; create it (createdb NAME) or fix the URL"),
    (
        ("connection refused", "could not connect", "no route to host", "timeout expired", "name or service not known",
         "could not translate host name", "connection failed"),
        "the server can't be reached; check that PostgreSQL is running and the URL's host and port",
    ),
    (
        ("server closed the connection", "terminating connection", "connection is lost", "connection already closed",
         "consuming input failed", "ssl syscall", "eof detected", "connection is closed"),
        "the connection to the server was lost; check that PostgreSQL is running, then try again",
    ),
    (
        ("lock timeout", "canceling statement due to lock timeout", "deadlock detected", "could not serialize"),
        "it is locked by another program (is another memagent busy with this agent?); try again",
    ),
    (("read-only transaction", "read only"), "the server accepts no writes (a read-only replica?); use the primary"),
    (("permission denied",), "the user may not do that here; grant it the rights or use the database's owner"),
    (("disk full", "no space left"), "the server's disk is full; free some space and retry"),
)


def _fold(value: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """What the generated ``search_vector`` does to the search text before the 'english' parser sees it."""
    nfkd = sa.func.normalize(value, sa.literal_column("NFKD"))
    return sa.func.regexp_replace(nfkd, sa.literal("[\\u0300-\\u036f]"), sa.literal(""), sa.literal("g"))


class PostgresDialect:
    """The memagent database at a PostgreSQL ``url`` (a string or ``sqlalchemy.URL``)."""

    name = "postgresql"
    begin = "BEGIN"
    drops_stopwords = True  # the 'english' configuration leaves them out of search_vector

    def __init__(self, url: str | sa.URL, busy_timeout: float, read_only: bool = False) -> None:
        self.url = sa.make_url(url)
        if self.url.drivername in ("postgresql", "postgres"):
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.where = self.url.render_as_string(hide_password=True)
        if self.url.drivername != "postgresql+psycopg":
            raise StoreError(
                f"Can't open database {self.where}: memagent talks to PostgreSQL through psycopg 3; write the URL "
                "as postgresql+psycopg://user:password@host:port/database"
            )
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self._pgvector: str | None = None  # the quoted schema of pgvector's type and operators, once looked up

    def create_engine(self) -> sa.Engine:
        """A one-connection pool: the store keeps one connection, and a lost one is replaced on the next use."""
        try:
            import psycopg  # noqa: F401  (the driver SQLAlchemy will load; checked here for a readable error)
        except ImportError:
            raise StoreError(
                f"Can't open database {self.where}: PostgreSQL support is not installed; run {INSTALL_HINT}"
            ) from None
        options = f"-c lock_timeout={int(self.busy_timeout * 1000)}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        given = self.url.query.get("options")  # the URL's own (a search_path, say) come first
        if given:
            options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
        try:
            return sa.create_engine(
                self.url.difference_update_query(["options"]),
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args={"connect_timeout": max(1, int(self.busy_timeout)), "options": options},
            )
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
            raise StoreError(one_line(f"Can't open database {self.where}: {error}; check the URL")) from None

    def prepare(self, conn: sa.Connection) -> None:
        # pgvector's HNSW scan of one agent's rows: keep scanning until ``limit`` rows pass the agent filter
        # (pgvector 0.8's iterative scan), from a wider candidate list than the default 40.
        conn.exec_driver_sql("SET hnsw.iterative_scan = strict_order")
        conn.exec_driver_sql("SET hnsw.ef_search = 100")
        encoding = conn.exec_driver_sql("SHOW server_encoding").scalar_one()
        if str(encoding).upper() not in ("UTF8", "UTF-8"):
            raise StoreError(
                f"Can't open database {self.where}: its encoding is {encoding}, memagent needs UTF8; "
                "create the database with ENCODING 'UTF8'"
            )

    def in_transaction(self, conn: sa.Connection) -> bool:
        dbapi: Any = conn.connection.dbapi_connection
        if dbapi is None or getattr(dbapi, "closed", True):
            return False
        import psycopg

        return bool(dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    def schema_version(self, conn: sa.Connection) -> int:
        versions = schema.schema_versions
        if not sa.inspect(conn).has_table(versions.name):
            return 0
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(versions.c.version), 0))).scalar_one())

    def set_schema_version(self, conn: sa.Connection, version: int) -> None:
        versions = schema.schema_versions
        versions.create(conn, checkfirst=True)
        conn.execute(sa.delete(versions))
        conn.execute(sa.insert(versions).values(version=int(version)))

    def foreign_tables(self, conn: sa.Connection) -> list[str]:
        rows = conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
        return [str(row[0]) for row in rows]

    def reason(self, error: BaseException) -> str:
        return explain(error, _REASONS, "check the server and the URL")

    def contains(self, column: sa.ColumnElement[str], needle: str) -> sa.ColumnElement[bool]:
        return sa.func.strpos(sa.func.lower(column), sa.func.lower(sa.literal(needle, sa.Text))) > 0

    def term_counts(self, table: sa.Table, terms: Sequence[str], cap: int) -> sa.Executable | None:
        return None  # ts_rank over every match; PostgreSQL is not measured at the window's scale yet

    def text_search(
        self, table: sa.Table, columns: Sequence[sa.Column[Any]], agent_id: int, filters: SearchFilter,
        terms: Sequence[str], limit: int, offset: int, count_limit: int, window: int | None = None,
        candidates: int | None = None, terms_held: bool = False,
    ) -> tuple[sa.Executable, sa.Executable]:
        """ts_rank-ranked search of the generated ``search_vector``, then newest first. Every match is ranked (the
        window is SQLite's: PostgreSQL has not been measured at that scale yet), so the bound column is 0."""
        english: sa.ColumnElement[Any] = sa.literal_column("'english'::regconfig")
        phrases = [sa.func.phraseto_tsquery(english, _fold(sa.literal(term, sa.Text))) for term in terms]
        query: sa.ColumnElement[Any] = phrases[0]
        for phrase in phrases[1:]:
            query = query.op("||")(phrase)
        vector: sa.ColumnElement[Any] = sa.literal_column(f"{table.name}.search_vector")
        where = [vector.op("@@")(query), table.c.agent_id == agent_id, *filters.clauses(table, agent_id)]
        matches = sa.select(table.c.id).where(*where).limit(count_limit + 1).subquery()
        count = sa.select(sa.func.count(), sa.literal(0)).select_from(matches)
        # ts_rank's weights of the labels {D, C, B, A}: the context is 'B' (search_text.CONTEXT_WEIGHT), the row 'A'.
        weights: sa.ColumnElement[Any] = sa.literal_column(f"'{{0.1, 0.2, {CONTEXT_WEIGHT}, 1.0}}'::float4[]")
        rank = sa.func.ts_rank(weights, vector, query)
        page = (
            sa.select(*columns)
            .where(*where)
            .order_by(rank.desc(), table.c.created_at.desc(), table.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return count, page

    def vector_storage(self, conn: sa.Connection) -> VectorStorage:
        """"ready" when ``embeddings.vector`` is pgvector's; else "installable" when the extension is in the database
        or this user, a superuser, can create it from the server's files; else "missing"."""
        column = conn.exec_driver_sql(VECTOR_COLUMN_TYPE).scalar_one_or_none()
        if column != "bytea":
            return "ready"  # no table yet (an older schema, read only): its migration will choose
        return "installable" if conn.exec_driver_sql(_PGVECTOR_INSTALLABLE).scalar_one() else "missing"

    def dense_search(self, rows: Rows, kind: str, agent_id: int, model: str, query: bytes, limit: int) -> list[int]:
        """pgvector's cosine distance, through the HNSW index."""
        e, column = schema.embeddings, vector_column(kind)
        if self._pgvector is None:  # its schema may be off the search path: name it (see the embeddings migration)
            self._pgvector = str(rows(sa.text(_PGVECTOR_SCHEMA))[0][0])
        probe = sa.text(f"CAST(:query AS {self._pgvector}.vector)").bindparams(query=_vector_text(query))
        distance = sa.literal_column("embeddings.vector").op(f"OPERATOR({self._pgvector}.<=>)")(probe)
        statement = (
            sa.select(column)
            .where(e.c.agent_id == agent_id, e.c.model == model, column.is_not(None))
            .order_by(distance)
            .limit(limit)
        )
        return [int(row[0]) for row in rows(statement)]


_PGVECTOR_SCHEMA = (
    "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'vector'"
)


_PGVECTOR_INSTALLABLE = (
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') OR ("
    "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') "
    "AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"
)


def _vector_text(vector: bytes) -> str:
    from memagent.memory.embed import from_bytes

    return "[" + ",".join(repr(number) for number in from_bytes(vector)) + "]"
