"""What the `memagent` sub-commands share: the --no-color option, settings, consoles and the database.

Imports only typer at module level: `memagent --help` must start fast, so rich, SQLAlchemy and the rest
are imported inside the functions that use them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memagent.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from memagent.memory.store import AgentRow, Store
    from memagent.settings import Settings


@dataclass
class Reporting:
    """How main() reports an internal error, as the command asked (click's context object: no global):
    with `debug` (chat's --debug) the traceback is kept."""

    debug: bool = False


def set_no_color(value: bool) -> bool:
    """--no-color works like NO_COLOR (which rich and Settings already honour), so set that."""
    if value:
        os.environ["NO_COLOR"] = "1"
    return value


NoColor = Annotated[
    bool, typer.Option("--no-color", help="Plain output without colour (also NO_COLOR).", callback=set_no_color)
]


def set_db(value: str | None) -> str | None:
    """--db works like MEMAGENT_DB (which Settings reads), so set that."""
    if value:
        os.environ["MEMAGENT_DB"] = value
    return value


Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="The database: a SQLite file or a URL such as postgresql+psycopg://user:password@host/db "
        "(default: $MEMAGENT_HOME/memagent.db). [env MEMAGENT_DB]",
        callback=set_db,
    ),
]


def current_settings() -> Settings:
    from memagent.settings import build_settings

    return build_settings({})


PIPE_WIDTH = 160


def console(*, stderr: bool = False) -> Console:
    """A rich console; when piped (and COLUMNS is unset) 160 columns wide, so tables don't wrap at 80."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


@contextmanager
def open_store(settings: Settings, *, create: bool = True, read_only: bool = False) -> Iterator[Store | None]:
    """The database, or None (with create=False) when there is no SQLite file yet: listing must not create one.

    With read_only the commands that only read (agents list/show) work in a read-only home: SQLite opens
    the file with mode=ro and nothing is migrated or written. Otherwise a read-only home or database is
    one clear line before anything is tried. A PostgreSQL URL is opened as it is (the server says what's wrong)."""
    from memagent.memory.database_url import is_url

    target = settings.database
    if is_url(target):
        if not create and _empty(target):  # a database memagent never wrote holds no agents: leave it so
            yield None
            return
        store = _store(target, read_only=read_only)
    else:
        path = Path(target)
        if not create and not path.exists():
            yield None
            return
        if not read_only:
            check_writable(path)
        store = _store(target, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def _empty(target: str) -> bool:
    with _store(target, read_only=True) as store:
        return store.schema_version == 0


def _store(target: str, *, read_only: bool = False) -> Store:
    from memagent.memory.store import Store

    return Store(target, read_only=read_only)


def check_writable(db_path: Path) -> None:
    """One line when memagent can't write the database: SQLite needs the file and its folder writable
    (it keeps its journal beside the file)."""
    for target in (db_path, db_path.parent):
        if target.exists() and not os.access(target, os.W_OK):
            raise UserError(
                f"{target} is read-only, so memagent can't change agents in {db_path}: make it writable "
                f"(chmod u+w {target}) or set MEMAGENT_HOME to a writable folder. Read-only commands "
                "(agents list, agents show) still work."
            )


def display_name(name: str) -> str:
    """A name as printed: as it is when it follows the name rule, else quoted with its control characters,
    escape codes and lone surrogates spelled out (an agent made by an older memagent may break the rule)."""
    from memagent.text import is_valid_name

    return name if is_valid_name(name) else repr(name)  # repr spells out what isn't printable


def require_agent(store: Store | None, name: str) -> AgentRow:
    """The agent's row, or one line: a name that breaks the name rule says so, an unknown one names the
    agents that exist. An existing agent is found by its exact name even if it breaks the rule (made by an
    older memagent), so it can still be shown, loaded into and deleted; nothing new gets such a name."""
    from memagent.text import check_name, is_valid_name

    row = _find_agent(store, name, legacy=not is_valid_name(name)) if store is not None else None
    if row is not None:
        return row
    check_name(name, "agent")
    names = [display_name(a.name) for a in store.list_agents()] if store is not None else []
    more = ", …" if len(names) > 10 else ""
    known = f" Agents: {', '.join(names[:10])}{more}." if names else " No agents yet: `memagent chat` makes one."
    raise UserError(f"No agent named {name!r}.{known}")


def _find_agent(store: Store, name: str, *, legacy: bool) -> AgentRow | None:
    """A name that breaks the rule is matched in Python: it may not even be encodable (a lone surrogate
    from a command line's undecodable bytes), so it is never sent to the database."""
    if not legacy:
        return store.find_agent(name)
    return next((row for row in store.list_agents() if row.name == name), None)


def local_time(moment: object) -> str:
    """A stored UTC timestamp as local time, to the minute."""
    from datetime import datetime

    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else str(moment)
