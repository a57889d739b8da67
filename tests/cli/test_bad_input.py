"""Bad input gives one clear line and a non-zero exit, never a traceback, never a lost message."""

from __future__ import annotations

import sqlite3

from clihelp import run_cli


def one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_model_lists_the_known_wrappers(tmp_path):
    line = one_line_error(run_cli(["chat", "--model", "nonsense-7b"], tmp_path / "h", stdin="hi\n"))
    assert "nonsense-7b" in line and "chatml" in line


def test_missing_model_file(tmp_path):
    line = one_line_error(run_cli(["chat", "--model-path", str(tmp_path / "nope.gguf")], tmp_path / "h", "hi\n"))
    assert "not found" in line and "nope.gguf" in line


def test_a_file_that_is_not_a_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    line = one_line_error(run_cli(["chat", "--model-path", str(bad)], tmp_path / "h", "hi\n"))
    assert "Not a GGUF" in line and str(bad) in line


def test_a_corrupt_gguf(tmp_path):
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 4000)
    line = one_line_error(run_cli(["chat", "--model-path", str(bad)], tmp_path / "h", "hi\n"))
    assert "could not load" in line and str(bad) in line


def test_an_unwritable_database_location(tmp_path):
    line = one_line_error(run_cli(["chat"], tmp_path / "h", "hi\n", env={"MEMAGENT_HOME": "/proc/self/nope"}))
    assert "/proc/self/nope" in line


def test_a_locked_database(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    holder = sqlite3.connect(home / "memagent.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_line_error(run_cli(["chat", "--agent", "a"], home, "hi\n"))
    finally:
        holder.rollback()
        holder.close()
    assert "locked" in line and "memagent.db" in line


def test_an_unknown_preset_names_the_paths_looked_for(tmp_path):
    line = one_line_error(run_cli(["chat", "--preset", "nope"], tmp_path / "h", "hi\n"))
    assert "nope.yaml" in line


def test_a_preset_name_that_is_a_path_is_refused(tmp_path):
    line = one_line_error(run_cli(["chat", "--preset", "../etc/passwd"], tmp_path / "h", "hi\n"))
    assert "Invalid preset name '../etc/passwd'" in line
