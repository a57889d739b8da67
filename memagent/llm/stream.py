"""Follow one string argument (send_message's `message`) inside a JSON call while it streams, so the
user sees the agent's words as they are generated rather than after the whole call is done."""

from __future__ import annotations

import json
import re

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class ArgumentStreamer:
    """Feed raw pieces; get back newly decoded characters of the `key` string value, if any."""

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
                if i + 6 > len(raw):
                    break
                try:
                    out.append(json.loads(f'"{raw[i:i + 6]}"'))
                except json.JSONDecodeError:
                    out.append(raw[i:i + 6])
                i += 6
                continue
            out.append(_ESCAPES.get(code, code))
            i += 2
        self._pos = i
        return "".join(out)
