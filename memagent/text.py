"""Text at the boundary: what comes in from the model, the user, files and servers is cleaned here, once.

Python strings can hold things no encoder accepts: a lone surrogate (``"\\ud800"``, from a model's broken
UTF-8 or a JSON ``\\ud800`` escape) raises UnicodeEncodeError when printed or stored. NUL ends C strings
(SQLite's FTS tokenizer, terminals). Terminal control characters (ESC and the C1 range) let text rewrite
the user's screen. ``clean_text`` replaces the first kind with U+FFFD and drops the others, keeping tab,
newline and carriage return.

Names that become paths or are echoed (agents, presets, LLM configs, wrappers) follow one rule:
``check_name``.
"""

from __future__ import annotations

import re
from typing import Any

from memagent.errors import ConfigError

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 controls except \t \n \r, DEL and the C1 range.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")

NAME_MAX = 64
NAME_MAX_BYTES = 200  # a file name is at most 255 bytes: 64 four-byte letters plus a suffix would not fit
_NAME = re.compile(r"[^\W_][\w.-]*", re.UNICODE)
NAME_RULE = (
    f"use 1-{NAME_MAX} letters, digits, '-', '_' or '.', starting with a letter or digit"
)


def clean_text(text: str) -> str:
    """``text`` safe to print, store, search and encode as UTF-8. Cheap when there is nothing to clean."""
    if text.isascii():
        if text.isprintable():
            return text
    elif _SURROGATES.search(text):
        text = _SURROGATES.sub(REPLACEMENT, text)
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROLS.sub("", text)


def clean_any(value: object) -> object:
    """``clean_text`` applied to every string inside JSON-like data (dicts, lists, keys included)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_any(k): clean_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_any(v) for v in value]
    return value


def clean_dict(value: dict[str, Any]) -> dict[str, Any]:
    """``clean_any`` of a dict with text keys, typed as the dict it returns."""
    return {clean_text(k): clean_any(v) for k, v in value.items()}


def decode_bytes(data: bytes) -> str:
    """Bytes from a server or a file as clean text: UTF-8 where it is, U+FFFD where it isn't."""
    return clean_text(data.decode("utf-8", errors="replace"))


def is_valid_name(name: str) -> bool:
    return (
        len(name) <= NAME_MAX
        and _NAME.fullmatch(name) is not None
        and name.isprintable()
        and len(name.encode("utf-8")) <= NAME_MAX_BYTES
    )


def check_name(name: str, kind: str = "agent") -> str:
    """``name`` if it is a valid name for a ``kind`` (agent, preset, LLM config, wrapper), else ConfigError.

    The rule keeps every name a single path component inside MEMAGENT_HOME (no '/', '..', leading '.'
    or '-') and safe to echo (no control characters or escape codes)."""
    if not isinstance(name, str) or not is_valid_name(name):
        shown = repr(clean_text(str(name))[:NAME_MAX + 10])
        raise ConfigError(f"Invalid {kind} name {shown}: {NAME_RULE}.")
    return name
