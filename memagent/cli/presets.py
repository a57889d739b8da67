"""`memagent presets list`: the presets a new agent can start from, yours before the bundled ones. No model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from memagent.cli.common import NoColor, console, current_settings

if TYPE_CHECKING:
    from pathlib import Path

presets_app = typer.Typer(help="Presets: the system prompt and functions a new agent starts with.",
                          no_args_is_help=True, rich_markup_mode=None)


@presets_app.command("list")
def list_presets(no_color: NoColor = False) -> None:
    """List presets: name, system prompt and the file it comes from (your folder before the bundled one)."""
    from rich.table import Table

    from memagent.errors import ConfigError
    from memagent.prompts.presets import Library, load_preset
    from memagent.repl.render import safe

    library = Library(current_settings().home)
    table = Table("name", "system prompt", title="Presets")
    table.add_column("origin", overflow="fold")  # a path is never cut short
    for name, path in library.names("presets", ".yaml").items():
        if not _looks_like_preset(path):
            continue  # a custom core-memory file lives beside the presets
        try:
            prompt = safe(load_preset(library, name).system_prompt)
        except ConfigError as exc:
            prompt = f"[red]broken: {safe(exc)}[/]"
        table.add_row(safe(name), prompt, safe(path))
    console().print(table)


def _looks_like_preset(path: Path) -> bool:
    from memagent.errors import ConfigError
    from memagent.prompts.presets import read_yaml

    try:
        data = read_yaml(path)
    except ConfigError:
        return True  # show it, so load_preset reports what is wrong
    return isinstance(data, dict) and "system_prompt" in data
