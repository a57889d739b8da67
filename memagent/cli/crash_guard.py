"""A crash of native code ends `memagent chat` with one clear line, never with a bare signal.

llama.cpp runs inside the chat's process. When it dies (an illegal instruction from a build made for
another CPU, a segfault, the kernel's out-of-memory killer) Python can't catch it: the shell would only say
"Illegal instruction (core dumped)". So the chat runs in a child process, forked before the model loads,
and the parent waits for it. On a crash the parent puts the terminal back, names the cause and the fix in
one line, and says how to resume: every message and memory edit is already committed, step by step.

The parent ignores SIGINT: Ctrl-C reaches the whole foreground process group, and the chat handles it.
SIGTERM and SIGHUP are passed on; if the parent is killed outright, the kernel sends the chat SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from typing import Any, NoReturn

from memagent.text import clean_text

_TO_CHILD = (signal.SIGTERM, signal.SIGHUP)  # asked of the parent, meant for the chat
_QUIET = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE})  # asked for, not crashes
_REBUILD = (
    "rebuild it for any x86-64 CPU: `make install` does, or "
    "`CMAKE_ARGS=-DGGML_NATIVE=OFF pip install --force-reinstall --no-cache-dir llama-cpp-python`"
)
_CAUSES: dict[int, tuple[str, str]] = {
    signal.SIGILL: (
        "an illegal CPU instruction (SIGILL)",
        "llama.cpp was compiled for CPU features this machine does not run (built with -march=native on "
        f"another CPU, or AMX/AVX-512 that the kernel has not enabled); {_REBUILD}",
    ),
    signal.SIGSEGV: (
        "a segmentation fault (SIGSEGV)",
        "a bug in llama.cpp or a damaged model file; check the GGUF, and run with --debug for the Python stack",
    ),
    signal.SIGBUS: (
        "a bus error (SIGBUS)",
        "the model file changed or shrank while it was loaded, or the disk failed; check the GGUF",
    ),
    signal.SIGABRT: (
        "an abort (SIGABRT)",
        "llama.cpp stopped on a failed check; run with --debug to see its message",
    ),
    signal.SIGFPE: ("an arithmetic fault (SIGFPE)", "a bug in llama.cpp; run with --debug for the Python stack"),
    signal.SIGKILL: (
        "being killed (SIGKILL)",
        "usually the system ran out of memory; use a smaller model or a smaller --context-length",
    ),
}

_agent_pipe: int | None = None  # in the chat process: where it tells the parent the agent's name


def guard_chat(agent: str | None) -> None:
    """Fork. In the child this returns, and the chat runs there. The parent waits and exits with the
    child's status, explaining it when the child died of a signal; it never returns."""
    global _agent_pipe
    if not hasattr(os, "fork"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = _terminal_state()
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _agent_pipe = write_end
        _end_with_parent(parent)
        return
    os.close(write_end)
    _wait_for_chat(pid, read_end, agent, terminal)


def _end_with_parent(parent: int) -> None:
    """A parent killed outright (SIGKILL) can't pass it on: have the kernel send the chat SIGTERM then."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that took effect
            os._exit(1)


def note_agent(name: str) -> None:
    """In the chat process: the agent is known, so a crash message can say how to resume it."""
    if _agent_pipe is not None:
        with contextlib.suppress(OSError):  # a parent gone already can't be told
            os.write(_agent_pipe, f"{name}\n".encode())


def crash_message(signum: int, agent: str | None) -> str:
    """The one line for a chat that died of signal `signum`."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    cause, fix = _CAUSES.get(signum, (f"{name}", "run with --debug for the Python stack"))
    shown = shlex.quote(" ".join(clean_text(agent).split())) if agent else ""  # typed back into a shell
    resume = f"memagent chat --agent {shown}" if shown else "memagent agents list, then memagent chat --agent NAME"
    return f"memagent: error: the chat stopped on {cause}: {fix}. Everything up to it is saved: `{resume}` resumes."


def _wait_for_chat(pid: int, read_end: int, agent: str | None, terminal: list[Any] | None) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the chat, in the same process group
    for signum in _TO_CHILD:
        signal.signal(signum, lambda received, _frame: os.kill(pid, received))
    _, status = os.waitpid(pid, 0)
    named = [line for line in _read_all(read_end).splitlines() if line.strip()]
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        os._exit(code)
    killed_by = -code
    if killed_by not in _QUIET:
        _restore_terminal(terminal)
        print(crash_message(killed_by, named[-1] if named else agent), file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(128 + killed_by)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _terminal_state() -> list[Any] | None:
    try:
        import termios
    except ImportError:
        return None
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):
        return None  # not a terminal (piped input, tests)


def _restore_terminal(state: list[Any] | None) -> None:
    """The chat may have died with the terminal in raw mode and its cursor hidden: put both back."""
    if state is None:
        return
    import termios

    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, state)
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h\x1b[?2004l\r\n")  # show the cursor, end bracketed paste
            sys.stdout.flush()
