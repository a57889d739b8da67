"""`memagent agents ...` and `memagent load`: the database and files, no model.

None of these load a backend, so they run in well under a second and never import llama_cpp.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memagent.cli.common import (
    Db,
    NoColor,
    console,
    current_settings,
    display_name,
    local_time,
    open_store,
    require_agent,
)

if TYPE_CHECKING:
    from rich.console import Console

    from memagent.memory.store import AgentRow, Store
    from memagent.memory.versions import MemoryVersion

RECENT_CHANGES = 5
"""Core-memory changes `agents show` lists."""

agents_app = typer.Typer(help="List, inspect, delete, export and import agents.", no_args_is_help=True,
                         rich_markup_mode=None)


@agents_app.command("list")
def list_agents(no_color: NoColor = False, db: Db = None) -> None:
    """List agents with their preset, message and passage counts, and when they were created and used."""
    from rich.table import Table

    from memagent.repl.render import safe

    out = console()
    with open_store(current_settings(), create=False, read_only=True) as store:
        rows = store.list_agents() if store is not None else []
        if store is None or not rows:
            out.print("No agents yet. Start one with `memagent chat` (or `memagent chat --agent NAME`).")
            return
        table = Table("name", "preset", "messages", "passages", "created", "updated", title="Agents")
        for row in rows:
            table.add_row(
                safe(display_name(row.name)),
                safe(row.state.get("preset", "?")),
                str(store.count_messages(row.id)),
                str(store.count_passages(row.id)),
                local_time(row.created_at),
                local_time(row.updated_at),
            )
    out.print(table)


def _print_core_memory(out: Console, state: dict[str, Any]) -> None:
    from memagent.memory.core import CoreMemory
    from memagent.repl.render import safe

    out.print("[bold]Core memory[/]")
    for key, section in CoreMemory.from_dict(state.get("core_memory") or {}).sections.items():
        out.print(f"  [cyan]<{safe(key)}>[/] {len(section.content)}/{section.max_length} characters")
        for line in section.content.splitlines():
            out.print(f"    {safe(line)}")


def _print_changes(out: Console, changes: list[MemoryVersion]) -> None:
    """The latest core-memory changes, newest first (`/memory history` in the chat shows more)."""
    from memagent.repl.memory_history import history_lines
    from memagent.repl.render import safe

    if not changes:
        out.print("[bold]Recent core-memory changes[/]: none recorded")
        return
    more = " (more: /memory history in the chat)" if len(changes) > RECENT_CHANGES else ""
    out.print(f"[bold]Recent core-memory changes[/], newest first{more}")
    for line in history_lines(changes[:RECENT_CHANGES]):
        out.print(f"  {safe(line)}")


def _print_fields(out: Console, state: dict[str, Any]) -> None:
    """The system prompt's template fields; edited ones (stored with the agent) are marked."""
    from memagent.app import build_template
    from memagent.errors import ConfigError
    from memagent.prompts.presets import Library, load_preset
    from memagent.repl.render import safe

    edited = state.get("template_fields") or {}
    try:
        library = Library(current_settings().home)
        preset = load_preset(library, str(state.get("preset")))
        template = build_template(library, preset, edited)
    except ConfigError as exc:
        out.print(f"[bold]Template fields[/]: unavailable ({safe(exc)})")
        return
    names = template.field_names()
    out.print(f"[bold]Template fields[/] ({len(names)}, system prompt {safe(preset.system_prompt)})")
    for name in names:
        value = " ".join(str(template.fields.get(name, "")).split())
        shown = value if name in edited or len(value) <= 100 else value[:100] + "…"
        mark = " [yellow](edited)[/]" if name in edited else ""
        out.print(f"  {safe(name)}{mark}: {safe(shown)}")


@agents_app.command("show")
def show_agent(
    name: Annotated[str, typer.Argument(help="The agent's name.")], no_color: NoColor = False, db: Db = None
) -> None:
    """Show an agent's core memory (used/limit per section), its recent changes, counts and template fields."""
    from memagent.repl.render import safe

    out = console()
    with open_store(current_settings(), create=False, read_only=True) as store:
        row = require_agent(store, name)
        assert store is not None
        messages, passages = store.count_messages(row.id), store.count_passages(row.id)
        changes = store.memory_versions(row.id, limit=RECENT_CHANGES + 1)
    state = row.state
    in_context = len(state.get("in_context") or [])
    out.print(f"[bold]Agent {safe(display_name(row.name))}[/] (preset {safe(state.get('preset', '?'))})")
    out.print(f"Created {local_time(row.created_at)}, last used {local_time(row.updated_at)}")
    out.print(f"Recall memory: {messages} messages ({in_context} in context). Archival memory: {passages} passages.")
    _print_core_memory(out, state)
    _print_changes(out, changes)
    _print_fields(out, state)


def _confirm(question: str) -> bool:
    """Yes/no on stdin; no answer (end of input) means no."""
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:
        return False


@agents_app.command("delete")
def delete_agent(
    name: Annotated[str, typer.Argument(help="The agent's name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask for confirmation.")] = False,
    no_color: NoColor = False,
    db: Db = None,
) -> None:
    """Delete an agent with all its messages and passages (asks first unless --yes)."""
    with open_store(current_settings(), create=False) as store:
        row = require_agent(store, name)
        assert store is not None
        what = f"{store.count_messages(row.id)} messages, {store.count_passages(row.id)} passages"
        if not yes and not _confirm(f"Delete agent {row.name!r} ({what})? This can't be undone."):
            print(f"Kept agent {row.name!r}.")
            return
        with store.transaction() as tx:
            tx.delete_agent(row.name)
    print(f"Deleted agent {row.name!r} ({what}).")


@agents_app.command("export")
def export_agent(
    name: Annotated[str, typer.Argument(help="The agent's name.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")
    ] = None,
    no_color: NoColor = False,
    db: Db = None,
) -> None:
    """Write an agent (core memory, settings, every message and passage) as versioned JSON, for `agents import`."""
    import json
    import sys

    from memagent.errors import UserError
    from memagent.memory.export import export_agent as to_dict

    with open_store(current_settings(), create=False, read_only=True) as store:
        row = require_agent(store, name)
        assert store is not None
        data = to_dict(store, row.name)
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    if output is None:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
        return
    try:
        output.expanduser().write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"Can't write {output}: {error.strerror or error}; choose another --output file.") from None
    counts = f"{len(data['messages'])} messages, {len(data['passages'])} passages"
    print(f"Exported agent {row.name!r} ({counts}) to {output}.")


def _read_export(path: Path) -> object:
    """The JSON in ``path`` (``-`` is standard input), or one line saying why it can't be read."""
    import json
    import sys

    from memagent.errors import UserError

    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.expanduser().read_bytes()
    except OSError as error:
        raise UserError(f"Can't read {path}: {error.strerror or error}; check the path.") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text, so not an agent export; give the file `agents export` wrote.") \
            from None
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); the file is "
            "damaged or cut short, export the agent again."
        ) from None


@agents_app.command("import")
def import_agent(
    path: Annotated[Path, typer.Argument(help="A file written by `memagent agents export` (- for standard input).")],
    name: Annotated[
        str | None, typer.Option("--name", help="Import under this name instead of the exported one.")
    ] = None,
    no_color: NoColor = False,
    db: Db = None,
) -> None:
    """Create an agent from an export: everything or nothing, under its own name or --name."""
    from memagent.errors import AgentExistsError, UserError
    from memagent.memory.export import check_export
    from memagent.memory.export import import_agent as from_dict
    from memagent.text import check_name

    data = _read_export(path)
    check_export(data, str(path))
    assert isinstance(data, dict)
    target = check_name(name if name is not None else str(data["agent"]["name"]))
    clash = UserError(f"An agent named {target!r} already exists; import under another name with --name NEW.")
    with open_store(current_settings()) as store:
        assert store is not None
        if store.find_agent(target) is not None:
            raise clash
        try:
            row = from_dict(store, data, target, str(path))
        except AgentExistsError:
            raise clash from None
        counts = f"{store.count_messages(row.id)} messages, {store.count_passages(row.id)} passages"
    print(f"Imported agent {row.name!r} ({counts}).")


@agents_app.command("reindex")
def reindex(no_color: NoColor = False, db: Db = None) -> None:
    """Rebuild the full-text search index of every agent's messages and passages (an upgrade already does it), and
    embed every row that has no vector yet (with the embeddings extra)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memagent.memory.embed import FULL_TEXT_NOTICE, NO_PGVECTOR_NOTICE, default_embedder

    with open_store(current_settings(), create=False) as store:
        if store is None:
            print("No database yet: nothing to reindex.")
            return
        total = sum(store.count_messages(row.id) + store.count_passages(row.id) for row in store.list_agents())
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"))
        with Progress(*columns, console=console(stderr=True), transient=True) as progress:
            task = progress.add_task("Reindexing", total=total)
            done = store.reindex_search(lambda rows: progress.update(task, completed=rows))
        print(f"Reindexed {done} rows for full-text search.")
        embedder = default_embedder() if store.keeps_vectors else None
        if embedder is None:
            print(FULL_TEXT_NOTICE if store.keeps_vectors else NO_PGVECTOR_NOTICE, file=sys.stderr)
            return
        with Progress(*columns, console=console(stderr=True), transient=True) as progress:
            task = progress.add_task("Embedding", total=store.count_unembedded(embedder.model))
            embedded = store.embed_pending(embedder, lambda rows: progress.update(task, completed=rows), batch=16)
    print(f"Embedded {embedded} rows for search by meaning.")


def _load_files(store: Store, row: AgentRow, path: Path) -> str:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memagent.loader import LoadReport, find_files, iter_load, store_inserter
    from memagent.repl.render import safe

    files = find_files(path.expanduser())
    report = LoadReport()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"))
    with Progress(*columns, console=console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"Loading into {safe(display_name(row.name))}", total=len(files))
        for file, count, reason in iter_load(store_inserter(store, row.id), files):
            if reason is None:
                report.loaded.append((file, count))
            else:
                report.skipped.append((file, reason))
            progress.advance(task)
    return report.summary(display_name(row.name))


def load(
    path: Annotated[Path, typer.Argument(help="A text file, or a folder of text files (read recursively).")],
    agent: Annotated[str, typer.Option("--agent", "-a", help="The agent whose archival memory gets the text.")],
    no_color: NoColor = False,
    db: Db = None,
) -> None:
    """Load text files into an agent's archival memory, in chunks of about 1000 characters."""
    with open_store(current_settings(), create=False) as store:
        row = require_agent(store, agent)
        assert store is not None
        print(_load_files(store, row, path))
