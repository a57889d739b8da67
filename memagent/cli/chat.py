"""`memagent chat`: its flags become Settings in one call, then the chat runs in the crash guard's child.

Imports only typer at module level (see cli/__init__.py): the session, the model and the REPL are imported
when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memagent.cli.common import Db, Reporting

if TYPE_CHECKING:
    from memagent.app import Session
    from memagent.settings import Settings


def chat_command(
    ctx: typer.Context,
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
    auto_recall: Annotated[
        bool | None,
        typer.Option("--auto-recall/--no-auto-recall", help="Attach the best memory hits to each of your messages "
                     "(default: as the agent's preset says; README: Auto recall)."),
    ] = None,
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
    from memagent.settings import build_settings

    ctx.ensure_object(Reporting).debug = debug
    # Every flag by its parameter's name, as build_settings reads them: a new flag needs no copying here.
    status = run_chat(build_settings(ctx.params))
    if status:
        raise typer.Exit(status)


def _say_preparing(tokens: int) -> None:
    print(
        f"Reading the prompt's shared start ({tokens} tokens: instructions and functions), once per model and "
        "preset; new agents start from it...",
        file=sys.stderr,
        flush=True,
    )


def run_chat(settings: Settings) -> int:
    """Open the session (in the crash guard's child), say which agent this is, and chat; the exit status. In a
    terminal the prompt is on screen while the session opens (cli/opening.py)."""
    from memagent.cli.crash_guard import guard_chat

    guard_chat(settings.agent)  # from here on this is a child process; a crash of llama.cpp is explained
    if settings.debug:
        import faulthandler

        faulthandler.enable()  # a crash in native code prints the Python stack first
    if sys.stdin.isatty() and sys.stdout.isatty() and not settings.json_output:
        return _chat_in_terminal(settings)
    from memagent.repl.loop import chat as run_repl

    session = _open_session(settings)
    try:
        return run_repl(session.agent, json_output=settings.json_output, color=settings.color, home=settings.home)
    finally:
        session.close()


def _chat_in_terminal(settings: Settings) -> int:
    from memagent.cli.opening import Opening
    from memagent.repl.prompt import InputPrompt, OpeningFailed

    opening = Opening(lambda: _open_session(settings, prefill=True))
    prompt = InputPrompt(settings.home / "history", settings.home, opening.agent_if_open)
    try:
        first = prompt.read_first(opening)
    except OpeningFailed:
        first = None
    try:
        session = opening.wait()  # raises what opening raised, reported as it is without the thread
    except KeyboardInterrupt:  # Ctrl-C while the agent was still opening: leave at once (nothing was sent yet)
        if first:
            print("The agent was still opening: your message was not sent.", file=sys.stderr)
        raise
    try:
        if first is None:
            return 0
        from memagent.repl.loop import chat_in_terminal

        return chat_in_terminal(session.agent, prompt, first, color=settings.color, home=settings.home)
    finally:
        session.close()


def _open_session(settings: Settings, *, prefill: bool = False) -> Session:
    """Open the session, say which agent it is (and any notice), and have the shared prompt prefix ready; with
    ``prefill``, the agent's whole prompt too (it runs behind the first prompt, while the user types)."""
    from memagent.app import constraint_notice, default_model_hint, open_session, search_notice
    from memagent.cli.crash_guard import note_agent
    from memagent.events import SessionInfo

    session = open_session(settings)
    try:
        note_agent(session.agent.name)
        verb = "Created" if session.created else "Resumed"
        message = (
            f"{verb} agent {session.agent.name} ({session.agent.wrapper.name} wrapper, {session.backend.name} backend)"
        )
        if settings.json_output:
            print(SessionInfo(message, session.agent.name, session.created).to_json(), flush=True)
        else:
            print(message, file=sys.stderr, flush=True)
        notices = (
            constraint_notice(settings, session.backend), default_model_hint(settings), search_notice(session.store)
        )
        for notice in notices:
            if notice:  # on stderr in both modes, so the --json stream stays events only
                print(notice, file=sys.stderr, flush=True)
        session.prepare_prefix(_say_preparing)
        if prefill:
            session.agent.prefill()()
    except BaseException:
        session.close()
        raise
    return session
