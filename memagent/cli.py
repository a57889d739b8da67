"""The `memagent` command: typer app. Builds Settings, runs the job, maps errors to one line + exit code.

Start-up must stay fast (`memagent --help`, `memagent agents list`): this module and the sub-command
modules import only typer at the top; everything heavy (the model, httpx, SQLAlchemy, rich tables) is
imported inside the command that needs it.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from memagent import __version__
from memagent.cli_agents import agents_app, load, presets_app
from memagent.cli_common import Db, NoColor
from memagent.cli_wrappers import wrappers_app
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
_DEBUG = False


@app.callback()
def _options(no_color: NoColor = False) -> None:
    """memagent: a MemGPT-style memory agent for the terminal, on local LLMs."""


@app.command()
def chat(
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Resume this agent, or create it.")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset for a new agent (see `memagent presets list`).")] = None,
    model: Annotated[str | None, typer.Option(help="Wrapper (prompt format) or a known model name.")] = None,
    model_path: Annotated[
        Path | None,
        typer.Option("--model-path", help="Run this GGUF (or a model directory for huggingface) instead of SmolLM2."),
    ] = None,
    llm_config: Annotated[
        str | None,
        typer.Option("--llm-config", help="LLM config by name: bundled or $MEMAGENT_HOME/llm_configs/NAME.yaml. "
                     "[env MEMAGENT_LLM_CONFIG]"),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="embedded (default), llamacpp, openai-completions, ollama, webui, lmstudio, koboldcpp, "
                     "vllm, openai, human, huggingface [env BACKEND_TYPE]"),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Server URL for server backends. [env OPENAI_API_BASE]")] = None,
    backend_model: Annotated[
        str | None, typer.Option("--backend-model", help="Model name a server needs (Ollama, vLLM).")
    ] = None,
    context_length: Annotated[int | None, typer.Option("--context-length", help="Context window in tokens.")] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Deadline for one model call, a silent server's wait "
                     "included (default: 30 s of silence, 600 s in all). [env MEMAGENT_TIMEOUT]"),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", "--no_verify", help="Skip first-message verification.")
    ] = False,
    no_constraint: Annotated[
        bool, typer.Option("--no-constraint", help="Don't constrain output with a grammar.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per event per line.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain output (also NO_COLOR).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.")] = False,
    db: Db = None,
) -> None:
    """Chat with an agent that remembers. Piped stdin: one message per line.

    Exit codes: 0 when every line was handled (interactive: on /exit or Ctrl-D); 1 when a piped line ended
    with an error (printed as the last line for it; later lines still run) or memagent could not start (one
    line on stderr); 130 after Ctrl-C. Everything before the error or the interrupt is saved.
    """
    global _DEBUG
    _DEBUG = debug
    from memagent.app import constraint_notice, open_session
    from memagent.crash_guard import guard_chat, note_agent
    from memagent.events import SessionInfo
    from memagent.repl import chat as run_chat
    from memagent.settings import build_settings

    settings = build_settings(
        dict(
            agent=agent,
            preset=preset,
            model=model,
            model_path=model_path,
            backend=backend,
            endpoint=endpoint,
            backend_model=backend_model,
            llm_config=llm_config,
            context_length=context_length,
            timeout=timeout,
            no_verify=no_verify,
            no_constraint=no_constraint,
            json_output=json_output,
            no_color=no_color,
            debug=debug,
            db=db,
        )
    )
    guard_chat(settings.agent)  # from here on this is a child process; a crash of llama.cpp is explained
    if debug:
        import faulthandler

        faulthandler.enable()  # a crash in native code prints the Python stack first
    session = open_session(settings)
    note_agent(session.agent.name)
    try:
        verb = "Created" if session.created else "Resumed"
        message = (
            f"{verb} agent {session.agent.name} ({session.agent.wrapper.name} wrapper, {session.backend.name} backend)"
        )
        if settings.json_output:
            print(SessionInfo(message, session.agent.name, session.created).to_json(), flush=True)
        else:
            print(message, file=sys.stderr, flush=True)
        notice = constraint_notice(settings, session.backend)
        if notice:  # on stderr in both modes, so the --json stream stays events only
            print(notice, file=sys.stderr, flush=True)
        status = run_chat(session.agent, json_output=settings.json_output, color=settings.color, home=settings.home)
    finally:
        session.close()
    if status:
        raise typer.Exit(status)


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
    try:
        result = app(standalone_mode=False)
    except UserError as exc:
        print(f"memagent: error: {clean_text(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        _exit_for(exc)
    sys.exit(result if isinstance(result, int) else 0)


def _exit_for(exc: Exception) -> None:
    """Usage errors print typer's message (exit 2); an abort exits 130; anything else is a bug."""
    if isinstance(exc, (typer.TyperException, *_click_classes("ClickException"))):
        show = getattr(exc, "show", None)
        show() if show else print(f"Error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    if isinstance(exc, (typer.Abort, *_click_classes("Abort"))):
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    if _DEBUG:
        raise exc
    print(f"memagent: internal error: {type(exc).__name__}: {clean_text(str(exc))} (run with --debug for details)",
          file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
