"""Which database a ``--db`` / ``MEMAGENT_DB`` value names: a file path (SQLite) or a SQLAlchemy URL (SQLite or
PostgreSQL), turned into the store's ``Dialect``. A URL is shown without its password."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from memagent.errors import StoreError
from memagent.memory.dialect import Dialect
from memagent.memory.sqlite import MEMORY_PATH, SqliteDialect


def is_url(target: str | Path | sa.URL) -> bool:
    """Whether ``target`` names a database by URL (``postgresql+psycopg://...``, ``sqlite:///file``), not a path."""
    return isinstance(target, sa.URL) or (isinstance(target, str) and "://" in target)


def open_dialect(target: str | Path | sa.URL, busy_timeout: float, read_only: bool) -> Dialect:
    """The dialect for a path or URL; one line for a URL of a database memagent doesn't support."""
    if isinstance(target, Path) or not is_url(target):
        return SqliteDialect(str(target), busy_timeout, read_only)
    try:
        url = sa.make_url(target)
    except sa_exc.ArgumentError:
        raise StoreError(f"Can't open database {str(target).split('@')[-1]!r}: it is not a valid URL") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SqliteDialect(url.database or MEMORY_PATH, busy_timeout, read_only)
    if backend in ("postgresql", "postgres"):
        from memagent.memory.postgres import PostgresDialect

        return PostgresDialect(url, busy_timeout, read_only)
    raise StoreError(
        f"Can't open database {url.render_as_string(hide_password=True)}: memagent stores agents in SQLite or "
        "PostgreSQL; give a file path or a postgresql+psycopg:// URL"
    )
