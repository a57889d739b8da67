"""The `memagent` command: typer app. Builds Settings, runs the job, maps errors to one line + exit code.

Start-up must stay fast (`memagent --help`, `memagent agents list`): this module and the sub-command
modules import only typer at the top; everything heavy (the model, httpx, SQLAlchemy, rich tables) is
imported inside the command that needs it.
"""

from __future__ import annotations

import contextlib
import sys

import typer

from memagent import __version__
from memagent.cli.agents import agents_app, load
from memagent.cli.chat import chat_command
from memagent.cli.common import NoColor, Reporting
from memagent.cli.presets import presets_app
from memagent.cli.wrappers import wrappers_app
from memagent.errors import UserError
from memagent.text import clean_text

app = typer.Typer(
    help="memagent: a MemGPT-style memory agent for the terminal, on local LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain help: typer's rich help formatting costs ~100 ms of imports, half of `memagent --help` (bench/startup).
    rich_markup_mode=None,
)


@app.callback()
def _options(no_color: NoColor = False) -> None:
    """memagent: a MemGPT-style memory agent for the terminal, on local LLMs."""


app.command("chat")(chat_command)
app.command("load")(load)
app.add_typer(agents_app, name="agents")
app.add_typer(presets_app, name="presets")
app.add_typer(wrappers_app, name="wrappers")


@app.command()
def version() -> None:
    """Print memagent's version."""
    print(f"memagent {__version__}")


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception `name` if click is installed: typer vendors click since 0.22, older typer used it."""
    try:
        import click
    except ImportError:
        return ()
    return (getattr(click.exceptions, name),)


def _tolerant_streams() -> None:
    """Reading or printing text can't raise an encoding error: undecodable input bytes and unencodable
    output characters (a lone surrogate, an emoji on an ASCII terminal) become replacement characters."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) not in ("replace", "backslashreplace"):
            with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
                reconfigure(errors="replace")


def main() -> None:
    _tolerant_streams()
    reporting = Reporting()  # the command that runs says how (chat --debug)
    try:
        result = app(standalone_mode=False, obj=reporting)
    except UserError as exc:
        print(f"memagent: error: {clean_text(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        _exit_for(exc, debug=reporting.debug)
    sys.exit(result if isinstance(result, int) else 0)


def _exit_for(exc: Exception, *, debug: bool) -> None:
    """Usage errors print typer's message (exit 2); an abort exits 130; anything else is a bug: one line
    (exit 2), or with `debug` its traceback."""
    if isinstance(exc, (typer.TyperException, *_click_classes("ClickException"))):
        show = getattr(exc, "show", None)
        show() if show else print(f"Error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(exc, (typer.Abort, *_click_classes("Abort"))):
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    if debug:
        raise exc
    print(f"memagent: internal error: {type(exc).__name__}: {clean_text(str(exc))} (run with --debug for details)",
          file=sys.stderr)
    sys.exit(2)
