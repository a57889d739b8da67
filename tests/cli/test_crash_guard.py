"""A crash of the model's native code (llama.cpp) ends `memagent chat` with one clear line, and loses nothing.

The chat runs the real CLI in a subprocess, on a backend that plays a scripted memory edit and then kills its
own process the way a llama.cpp built for another CPU dies (SIGILL), or with a segfault.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import run_cli

from memagent.cli.crash_guard import crash_message
from memagent.memory.store import Store
from memagent.messages import envelope_type

TESTS = Path(__file__).resolve().parent.parent
LAUNCHER = """
import os, resource, signal, sys
sys.path.insert(0, {tests!r})
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the test's folder
from fakes import ScriptedBackend, call
from memagent.llm.backends.registry import BACKENDS

class CrashingBackend(ScriptedBackend):
    name = "crashing"

    def __init__(self, context_length=None, **_):
        super().__init__([call("core_memory_append", "Remember him.", name="human", content="Name is Brad.",
                               request_heartbeat=True)])

    def complete(self, prompt, **kwargs):
        if not self.outputs:  # the step after the memory edit: die as native code does
            os.kill(os.getpid(), {signum})
        return super().complete(prompt, **kwargs)

BACKENDS.register("crashing", CrashingBackend)
from memagent.cli import main
sys.argv = ["memagent", *sys.argv[1:]]
main()
"""


def chat_on_a_crashing_backend(home: Path, signum: int) -> subprocess.CompletedProcess[str]:
    launcher = home.parent / "crashing_chat.py"
    launcher.write_text(LAUNCHER.format(tests=str(TESTS), signum=int(signum)))
    env = {**os.environ, "MEMAGENT_HOME": str(home), "NO_COLOR": "1"}
    command = [sys.executable, str(launcher), "chat", "--agent", "brad", "--backend", "crashing", "--json",
               "--no-verify"]
    return subprocess.run(command, input="My name is Brad\n", capture_output=True, text=True, env=env,
                          cwd=home.parent, timeout=300)


@pytest.mark.parametrize(("signum", "cause"), [
    (signal.SIGILL, "an illegal CPU instruction (SIGILL): llama.cpp was compiled for CPU features"),
    (signal.SIGSEGV, "a segmentation fault (SIGSEGV)"),
], ids=["SIGILL", "SIGSEGV"])
def test_a_crashed_model_ends_the_chat_with_one_line_and_keeps_the_message_and_the_memory_edit(
    tmp_path: Path, signum: int, cause: str
) -> None:
    home = tmp_path / "home"
    result = chat_on_a_crashing_backend(home, signum)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stderr)  # not -4 or 132: no bare signal
    assert "Traceback" not in result.stderr
    crash_lines = [line for line in lines if line.startswith("memagent: error:")]
    assert len(crash_lines) == 1, result.stderr
    assert cause in crash_lines[0]
    assert "`memagent chat --agent brad` resumes" in crash_lines[0]

    store = Store(home / "memagent.db")
    try:
        agent = store.find_agent("brad")
        assert agent is not None
        page = store.search_messages(agent.id, "", page_size=100, roles=("user",))
        users = [m.text for m in page.items if envelope_type(m.payload) == "user_message"]
        assert users == ["My name is Brad"]
    finally:
        store.close()
    shown = run_cli(["agents", "show", "brad"], home)
    assert shown.returncode == 0 and "Name is Brad." in shown.stdout, shown.stdout + shown.stderr


def test_every_crash_message_is_one_line_with_a_fix() -> None:
    for signum in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGKILL,
                   signal.SIGUSR1):
        line = crash_message(signum, "sam")
        assert "\n" not in line and line.startswith("memagent: error: the chat stopped on ")
        assert signal.Signals(signum).name in line and "`memagent chat --agent sam` resumes" in line
    assert "memagent agents list" in crash_message(signal.SIGILL, None)
    assert "GGML_NATIVE=OFF" in crash_message(signal.SIGILL, "sam")


def test_the_resume_hint_is_clean_and_quoted_for_the_shell() -> None:
    line = crash_message(signal.SIGSEGV, "bad\x1b[2J name\n; rm -rf ~")
    assert "\x1b" not in line and "\n" not in line
    assert "`memagent chat --agent 'bad name ; rm -rf ~'` resumes" in line
