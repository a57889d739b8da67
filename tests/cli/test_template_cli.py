"""/edit_template_field through the real CLI: the edit survives a restart of the process."""

from __future__ import annotations

from clihelp import json_events, run_cli


def info_texts(result) -> list[str]:
    return [e["text"] for e in json_events(result.stdout) if e["type"] == "info"]


def test_an_edited_template_field_survives_a_restart(tmp_path):
    home = tmp_path / "home"
    args = ["chat", "--agent", "pirate", "--preset", "memgpt_pirate_preset", "--json"]
    first = run_cli(args, home, stdin="/edit_template_field pirate_instruction Speak like a lighthouse keeper.\n")
    assert first.returncode == 0, first.stderr
    assert any("updated" in text for text in info_texts(first))
    second = run_cli(["chat", "--agent", "pirate", "--json"], home, stdin="/fields\n")
    assert second.returncode == 0, second.stderr
    fields = info_texts(second)[-1]
    assert "pirate_instruction: 'Speak like a lighthouse keeper.'" in fields
    assert "memgpt_introduction" in fields


def test_an_unknown_field_is_refused_and_nothing_changes(tmp_path):
    home = tmp_path / "home"
    result = run_cli(["chat", "--agent", "p", "--preset", "memgpt_pirate_preset", "--json"], home,
                     stdin="/edit_template_field no_such_field value\n/fields\n")
    events = json_events(result.stdout)
    errors = [e["text"] for e in events if e["type"] == "error"]
    assert errors and "Unknown template field 'no_such_field'" in errors[0]
    assert "Always reponsond like an old pirate!!!" in info_texts(result)[-1]
