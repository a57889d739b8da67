"""memagent.text: what crosses the boundary is cleaned once, and names follow one rule."""

from __future__ import annotations

import json

import pytest

from memagent.errors import ConfigError
from memagent.text import NAME_MAX, REPLACEMENT, check_name, clean_any, clean_text, decode_bytes, is_valid_name

HOSTILE = "a\ud800b\x00c\x1b[31md\x1b[0m\x07e\x9bf\x1b]0;title\x07g"


def encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_plain_text_is_returned_as_is():
    for text in ("hello", "tabs\tnewlines\nreturns\r\n", "café ☕ 名前", ""):
        assert clean_text(text) == text


def test_a_lone_surrogate_becomes_the_replacement_character():
    assert clean_text("\ud800") == REPLACEMENT
    assert clean_text("x\udfffy") == f"x{REPLACEMENT}y"
    assert encodes(clean_text("\ud83d alone"))


def test_nul_and_control_characters_are_dropped_but_whitespace_kept():
    assert clean_text("a\x00b\x07c\x08d\x7fe\x85f") == "abcdef"
    assert clean_text("line\tone\r\nline two\n") == "line\tone\r\nline two\n"


def test_ansi_escape_sequences_are_removed_whole():
    assert clean_text("\x1b[1;31mred\x1b[0m") == "red"
    assert clean_text("\x1b]0;new title\x07text") == "text"
    assert clean_text("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\") == "link"
    assert clean_text("\x1b[2J\x1b[Hcleared") == "cleared"
    assert "\x1b" not in clean_text("half an escape \x1b")


def test_hostile_text_comes_out_printable_and_encodable():
    cleaned = clean_text(HOSTILE)
    assert encodes(cleaned)
    assert all(ch.isprintable() or ch in "\t\n\r" for ch in cleaned)
    assert cleaned == f"a{REPLACEMENT}bcdefg"
    assert clean_text(cleaned) == cleaned  # cleaning twice changes nothing


def test_clean_any_cleans_keys_and_values_at_any_depth():
    data = {"k\x00": ["v\ud800", {"deep\x1b[0m": ("t\x07",)}], "n": 3, "none": None}
    cleaned = clean_any(data)
    assert cleaned == {"k": [f"v{REPLACEMENT}", {"deep": ["t"]}], "n": 3, "none": None}
    json.dumps(cleaned, ensure_ascii=False).encode("utf-8")


def test_decode_bytes_never_raises():
    assert decode_bytes("naïve".encode()) == "naïve"
    assert decode_bytes(b"caf\xe9 \xff\xfe") == f"caf{REPLACEMENT} {REPLACEMENT}{REPLACEMENT}"
    assert decode_bytes(b"a\x00b\x1b[31mc") == "abc"


@pytest.mark.parametrize("name", ["sam", "Sam-2", "my_agent.v2", "a", "a" * NAME_MAX, "café", "名前", "7up"])
def test_good_names_pass(name):
    assert is_valid_name(name)
    assert check_name(name, "agent") == name


@pytest.mark.parametrize(
    "name",
    [
        "", ".", "..", "../../x", "/", "/etc/passwd", "a/b", "a\\b", ".hidden", "-rf", "_x", " a", "a b", "a\n",
        "a\nb", "\x1b[31mred", "a\x00", "\ud800", "a\u202eb", "a:b", "a" * (NAME_MAX + 1), "x" * 10_000,
    ],
)
def test_hostile_names_fail_with_one_clean_line(name):
    assert not is_valid_name(name)
    with pytest.raises(ConfigError) as raised:
        check_name(name, "agent")
    message = str(raised.value)
    assert message.startswith("Invalid agent name ") and "letters, digits" in message
    assert "\n" not in message and "\x1b" not in message and encodes(message)
    assert len(message) < 250


def test_a_name_stays_one_short_path_component():
    """A valid name plus a suffix fits in one file name (255 bytes) whatever letters it uses."""
    wide = "\U00020000" * NAME_MAX  # a 4-byte letter (CJK extension B)
    for name in ("a" * NAME_MAX, "é" * NAME_MAX, "名" * NAME_MAX, wide[: NAME_MAX // 2]):
        assert is_valid_name(name)
        assert len(f"{name}.yaml".encode()) <= 255
    assert not is_valid_name(wide)


def test_check_name_refuses_what_is_not_a_string():
    with pytest.raises(ConfigError):
        check_name(None, "preset")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        check_name(123, "wrapper")  # type: ignore[arg-type]
