"""The command starts both ways a user or a script starts it: the `memagent` script and `python -m memagent.cli`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clihelp import run_cli


def test_the_script_and_python_dash_m_print_the_same_help(tmp_path: Path) -> None:
    script = run_cli(["--help"], tmp_path / "home")
    module = subprocess.run([sys.executable, "-m", "memagent.cli", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert script.returncode == module.returncode == 0, (script.stderr, module.stderr)
    assert "chat" in module.stdout and "agents" in module.stdout
    assert module.stdout.replace("python -m memagent.cli", "memagent") == script.stdout
