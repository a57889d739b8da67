"""Issue 16 through the real console script: hostile names, files and text at the CLI's edges give one clear
line and a non-zero exit, never a traceback, and nothing escapes MEMAGENT_HOME or reaches the terminal raw."""

from __future__ import annotations

from clihelp import run_cli

WIDE = {"COLUMNS": "400"}


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
