"""Issue 16 through the real console script: hostile names, files and text at the CLI's edges give one clear
line and a non-zero exit, never a traceback, and nothing escapes MEMAGENT_HOME or reaches the terminal raw."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from clihelp import MEMAGENT, run_cli

WIDE = {"COLUMNS": "400"}


def run_bytes(args: list[str], home: Path, stdin: bytes, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command with raw bytes on stdin (invalid UTF-8 included); output stays bytes."""
    environ = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    environ.update({"MEMAGENT_HOME": str(home), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([MEMAGENT, *args], input=stdin, capture_output=True, env=environ, cwd=home.parent,
                          timeout=300)


def clean_output(result) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout + result.stderr


# -- presets and wrappers from the user's folder -------------------------------------------------------------


def test_presets_list_marks_binary_and_badly_named_presets_broken(tmp_path):
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (home / "presets" / "latin.yaml").write_bytes("system_prompt: memgpt_chat # café\n".encode("latin-1"))
    (home / "presets" / "-evil\x1b[2J.yaml").write_text("system_prompt: memgpt_chat\nfunctions: [send_message]\n")
    result = run_cli(["presets", "list"], home, env=WIDE)
    assert result.returncode == 0, result.stderr
    clean_output(result)
    lines = result.stdout.splitlines()
    assert any("binary" in line and "broken" in line and "NUL bytes" in line for line in lines), result.stdout
    assert any("latin" in line and "broken" in line and "not UTF-8 text" in line for line in lines), result.stdout
    assert any("-evil" in line and "Invalid preset name" in line for line in lines), result.stdout
    assert any("memgpt_chat" in line for line in lines)


def test_chat_with_a_binary_preset_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01garbage")
    result = run_cli(["chat", "--preset", "binary", "--backend", "human"], home, stdin="hi\n")
    assert result.returncode == 1, result.stderr
    clean_output(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "binary.yaml is not a text file" in lines[0], result.stderr


def one_line(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    clean_output(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("memagent: error: "), result.stderr
    return lines[0]


WRAPPER = "from memagent.llm.wrappers.chatml import ChatMLWrapper\n\nclass Mine(ChatMLWrapper):\n    name = {name!r}\n"


def test_a_user_wrapper_with_a_bad_name_is_one_line_naming_the_file(tmp_path):
    home = tmp_path / "home"
    (home / "wrappers").mkdir(parents=True)
    for bad in ("../../escape", "\x1b[31mred", "two\nlines", "-rf"):
        path = home / "wrappers" / "mine.py"
        path.write_text(WRAPPER.format(name=bad))
        line = one_line(run_cli(["wrappers", "list"], home))
        assert f"Wrapper file {path}: Invalid wrapper name" in line and "Rename the wrapper" in line


def test_a_binary_user_wrapper_file_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "wrappers").mkdir(parents=True)
    (home / "wrappers" / "junk.py").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe\n\x1b[2J")
    line = one_line(run_cli(["wrappers", "list"], home))
    assert "junk.py failed to load" in line and "Fix or remove the file" in line


def test_wrappers_parse_takes_bytes_that_are_not_utf8(tmp_path):
    raw = b'{"function": "send_message", "params": {"inner_thoughts": "t\xff", "message": "caf\xe9\x1b[2J"}}'
    result = run_bytes(["wrappers", "parse", "chatml"], tmp_path / "home", raw)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr.decode(errors="replace") and b"\x1b" not in result.stdout
    assert json.loads(result.stdout)["arguments"]["message"] == "caf\ufffd"
