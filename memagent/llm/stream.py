"""Follow one string argument (send_message's `message`) inside a JSON call while it streams, so the
user sees the agent's words as they are generated rather than after the whole call is done."""

from __future__ import annotations

import json
import re

from memagent.text import clean_text

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW_SURROGATE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_ESCAPE_START = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?")  # what may still become a `\uXXXX` escape


class ArgumentStreamer:
    """Feed raw pieces; get back newly decoded characters of the `key` string value, if any.

    What comes back is clean text (memagent.text.clean_text): the message's escapes may decode to a lone
    surrogate or a control character, which must never reach the terminal. A surrogate pair (`\\ud83d\\ude00`,
    how ASCII-only JSON writes an emoji) is decoded as one character, waiting for its second half if need be."""

    def __init__(self, key: str = "message", function: str = "send_message") -> None:
        self._opening = re.compile(r'"' + re.escape(key) + r'"\s*:\s*"')
        self._function = function
        self._raw = ""
        self._pos: int | None = None  # index in _raw where the value's characters start
        self._done = False

    def feed(self, piece: str) -> str:
        self._raw += piece
        if self._done:
            return ""
        if self._pos is None:
            if self._function not in self._raw:
                return ""
            match = self._opening.search(self._raw)
            if match is None:
                return ""
            self._pos = match.end()
        return self._drain()

    def _drain(self) -> str:
        out: list[str] = []
        raw, i = self._raw, self._pos
        assert i is not None
        while i < len(raw):
            ch = raw[i]
            if ch == '"':
                self._done = True
                i += 1
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(raw):
                break  # wait for the rest of the escape
            code = raw[i + 1]
            if code == "u":
                size = _unicode_escape_size(raw, i)
                if size == 0:
                    break  # wait for the rest of the escape (or of the surrogate pair)
                try:
                    out.append(json.loads(f'"{raw[i:i + size]}"'))
                except json.JSONDecodeError:
                    out.append(raw[i : i + size])
                i += size
                continue
            out.append(_ESCAPES.get(code, code))
            i += 2
        self._pos = i
        return clean_text("".join(out))


def _unicode_escape_size(raw: str, i: int) -> int:
    """How many characters the `\\u` escape at raw[i] takes: 6, or 12 for a surrogate pair; 0 while the text
    ends before that can be told."""
    if i + 6 > len(raw):
        return 0
    if not _HIGH_SURROGATE.match(raw, i):
        return 6
    if _LOW_SURROGATE.match(raw, i + 6):
        return 12
    rest = raw[i + 6 : i + 12]  # shorter than 6: the text ends within it
    may_be_low_half = not rest or (len(rest) < 6 and _ESCAPE_START.fullmatch(rest) is not None)
    return 0 if may_be_low_half else 6
