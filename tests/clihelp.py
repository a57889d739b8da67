"""Run the real `memagent` console script in a subprocess, as a user or a script would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

MEMAGENT = shutil.which("memagent", path=str(Path(sys.executable).parent)) or "memagent"


def run_cli(args: list[str], home: Path, stdin: str = "", timeout: float = 900, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    environ.update({"MEMAGENT_HOME": str(home), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([MEMAGENT, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=environ, cwd=home.parent)


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
