"""Finding the JSON value in a model's reply, and mending the ways small models break it.

The first layer of the shared parser (``parse.py``): string-aware bracket matching finds each candidate
value; each mend is tried only when the text as written doesn't decode, faithful ones first (trailing commas,
`\\_`, stray `\\n` between tokens, leaked chat-template tokens, Python literals), then closing a value the
output left open: at its end (cut at the token limit), where stray text begins (a special token or a made-up
`FUNCTION RETURN` line), or one member back. Every mend is named, so the agent can log what was bent.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from memagent.errors import LLMOutputError

CLOSED_BRACES = "closed_braces"  # the repair that closes a call cut off mid-way: the call is not whole
# The repair that closes a call whose last value was whole but which the model left for stray text (a special
# token, a hallucinated `FUNCTION RETURN` line): nothing was cut, so asking again with more tokens won't help.
CLOSED_BEFORE_STRAY_TEXT = "closed_before_stray_text"
_MAX_CANDIDATES = 16  # start positions tried per reply: bounds the work on adversarial text
_MAX_DEPTH = 64  # no real call nests deeper; deeper text is rejected before any decoder sees it
_CLOSER = {"{": "}", "[": "]"}
_OPENER = re.compile(r"[{\[]")
_VALUE_START = frozenset("{[,:")  # after these a `'` opens a Python-style string, elsewhere it's prose
# What may stand between strings in JSON (or a Python literal); the first thing that can't starts stray text.
_CODE_TOKEN = re.compile(r"\s+|[{}\[\],:]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|(?:true|false|null|True|False|None)\b")
# Chat-template tokens a small model leaks into its call: `<|im_end|>`, `<|>`, `</s>`, `<end_of_turn>`...
_SPECIAL_TOKEN = re.compile(r"<\|[^<>\s]{0,40}\|?>|</?s>|<(?:start|end)_of_turn>|\[/?INST\]|<\|?eot_id\|?>")
NO_CALL = "Your reply had no JSON function call. Reply with exactly one JSON object that calls a function."


# ---------------------------------------------------------------------------------------------- scanning


@dataclass
class _Span:
    begin: int
    end: int
    quote: str | None  # None for code between strings
    closed: bool = True


def _spans(text: str) -> Iterator[_Span]:
    """Split text into code and string spans (string spans include their quotes), lazily."""
    i, code_start, prev, n = 0, 0, "", len(text)
    while i < n:
        ch = text[i]
        if ch == '"' or (ch == "'" and prev in _VALUE_START):
            if code_start < i:
                yield _Span(code_start, i, None)
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            yield _Span(i, min(j + 1, n), ch, closed=j < n)
            i = code_start = j + 1
            prev = ch
            continue
        if not ch.isspace():
            prev = ch
        i += 1
    if code_start < n:
        yield _Span(code_start, n, None)


@dataclass
class _Scan:
    end: int | None  # index just past the value, when it closed
    stack: list[str]  # closers still owed at the end of the text
    quote: str | None = None  # quote of a string left open
    last_sep: int | None = None  # last structural "," or opener: where a cut-back may happen
    mismatched: bool = False


def _scan(text: str) -> _Scan:
    """Bracket matching from text[0] (an opener), ignoring brackets inside strings."""
    stack: list[str] = []
    last_sep: int | None = None
    for span in _spans(text):
        if span.quote is not None:
            if not span.closed:
                return _Scan(None, stack, span.quote, last_sep)
            continue
        for i in range(span.begin, span.end):
            ch = text[i]
            if ch in _CLOSER:
                stack.append(_CLOSER[ch])
                last_sep = i
                if len(stack) > _MAX_DEPTH:
                    return _Scan(None, stack, None, last_sep, mismatched=True)
            elif ch in "}]":
                if not stack or stack[-1] != ch:
                    return _Scan(None, stack, None, last_sep, mismatched=True)
                stack.pop()
                if not stack:
                    return _Scan(i + 1, [])
            elif ch == ",":
                last_sep = i
    return _Scan(None, stack, None, last_sep)


def _outside_strings(text: str, fix: Callable[[str], str]) -> str:
    """Apply `fix` to the code between strings only, so string contents are never rewritten."""
    return "".join(text[s.begin : s.end] if s.quote else fix(text[s.begin : s.end]) for s in _spans(text))


# ---------------------------------------------------------------------------------------------- decoding


def _fix_trailing_commas(text: str) -> str:
    return _outside_strings(text, lambda code: re.sub(r",(\s*[}\]])", r"\1", code))


def _fix_escaped_underscores(text: str) -> str:
    """Markdown-escaped `\\_` (invalid in JSON) -> `_`; an escaped backslash before `_` is kept."""
    return re.sub(r"(?<!\\)((?:\\\\)*)\\_", r"\1_", text)


def _fix_stray_escapes(text: str) -> str:
    """Literal `\\n`/`\\t` between tokens (not inside strings) -> whitespace."""
    return _outside_strings(text, lambda code: re.sub(r"\\[nrt]", " ", code))


def _fix_special_tokens(text: str) -> str:
    """Chat-template tokens between the call's tokens (never inside its strings) -> nothing. One that only
    trails the text is left: it ends the call, which `_before_stray_text` then closes."""
    kept, last = [], 0
    for span in _spans(text):
        if span.quote is None:
            for token in _SPECIAL_TOKEN.finditer(text, span.begin, span.end):
                if text[token.end() :].strip():
                    kept.append(text[last : token.start()])
                    last = token.end()
    return "".join(kept) + text[last:]


_TEXT_FIXES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("trailing_comma", _fix_trailing_commas),
    ("escaped_underscore", _fix_escaped_underscores),
    ("stray_escapes", _fix_stray_escapes),
    ("special_tokens", _fix_special_tokens),
)


def _close(text: str) -> str | None:
    """Close an unterminated string and every open bracket (output cut mid-call), or None."""
    scan = _scan(text)
    if scan.end is not None or scan.mismatched or not scan.stack:
        return None
    if scan.quote:
        if (len(text) - len(text.rstrip("\\"))) % 2:
            text = text[:-1]  # a dangling escape would swallow the closing quote
        text += scan.quote
    return _fix_trailing_commas(text.rstrip() + "".join(reversed(scan.stack)))


def _cut_back(text: str) -> str | None:
    """Drop the last incomplete member (`"key": tr`), then close: for cuts inside keys or literals."""
    scan = _scan(text)
    if scan.end is not None or scan.mismatched or scan.last_sep is None:
        return None
    cut = scan.last_sep if text[scan.last_sep] == "," else scan.last_sep + 1
    return _close(text[:cut]) if cut > 1 else None  # `{` + prose must not become `{}`


def _before_stray_text(text: str) -> str | None:
    """The text up to the first thing outside strings that JSON can't hold (prose, a `FUNCTION RETURN` the
    model made up), or None when there is none. For calls left open when the model wandered off."""
    for span in _spans(text):
        if span.quote is not None:
            continue
        i = span.begin
        while i < span.end:
            token = _CODE_TOKEN.match(text, i, span.end)
            if token is None:
                return text[:i] if text[:i].strip(" \t\r\n{[") else None  # `{` + prose must not become `{}`
            i = token.end()
    return None


def _jsonable(value: Any) -> Any:
    """Python literal -> JSON types (tuples become lists); ValueError for sets, bytes, complex..."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _jsonable(item) for key, item in value.items()}
    raise ValueError(f"not JSON: {type(value).__name__}")


def _python_names(code: str) -> str:
    for json_word, python_word in (("true", "True"), ("false", "False"), ("null", "None")):
        code = re.sub(rf"\b{json_word}\b", python_word, code)
    return code


def _decode_json(text: str) -> tuple[Any, list[str]] | None:
    """Strict JSON, then JSON allowing raw control characters (newlines, tabs) inside strings."""
    for strict, repairs in ((True, []), (False, ["lenient_json"])):
        try:
            return json.loads(text, strict=strict), repairs
        except (ValueError, RecursionError):
            pass
    return None


def _decode_python(text: str) -> tuple[Any, list[str]] | None:
    """A Python literal (single quotes, True/None), read safely with ast.literal_eval."""
    try:
        with warnings.catch_warnings():  # invalid escapes like `\\_` warn (3.11) or error (later)
            warnings.simplefilter("ignore")
            value = _jsonable(ast.literal_eval(_outside_strings(text, _python_names)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    single = any(span.quote == "'" for span in _spans(text))
    return value, ["single_quotes" if single else "python_literal"]


def _parse_candidate(text: str, before_stray: bool = False) -> tuple[Any, list[str]] | None:
    """JSON as is, then with each textual fix added in turn, then as a Python literal, then closed up.

    Python literals come after the text fixes because literal_eval also "succeeds" on `\\_` (keeping
    the backslash), which would hide the better repair. `before_stray` also tries closing the value where
    stray text begins; it can make a call out of text that holds none, so callers try it last.
    """
    attempts: list[tuple[str, list[str], Callable[[str], tuple[Any, list[str]] | None]]]
    attempts = [(text, [], _decode_json)]
    fixes: list[str] = []
    for name, fix in _TEXT_FIXES:
        fixed = fix(text)
        if fixed != text:
            text, fixes = fixed, [*fixes, name]
            attempts.append((text, fixes, _decode_json))
    attempts.append((text, fixes, _decode_python))
    stray_cut = _before_stray_text(text) if before_stray else None
    closings = [
        (_close(text), CLOSED_BRACES),
        (_close(stray_cut) if stray_cut else None, CLOSED_BEFORE_STRAY_TEXT),
        (_cut_back(text), CLOSED_BRACES),
    ]
    for closed, closing in closings:
        if closed is not None:
            repairs = [*fixes, closing]
            attempts += [(closed, repairs, _decode_json), (closed, repairs, _decode_python)]
    for attempt, names, decode in attempts:
        decoded = decode(attempt)
        if decoded is not None and isinstance(decoded[0], dict | list):
            return decoded[0], [*names, *decoded[1]]
    return None


def iter_values(
    text: str, start_marker: str | None, end_marker: str | None, before_stray: bool = False
) -> Iterator[tuple[Any, list[str]]]:
    """Every JSON object/array in the call region, first first, each with the repairs it needed."""
    region = text.split(start_marker, 1)[1] if start_marker and start_marker in text else text
    pos = 0
    for _ in range(_MAX_CANDIDATES):
        match = _OPENER.search(region, pos)
        if match is None:
            return
        start = match.start()
        scan = _scan(region[start:])
        if scan.mismatched:  # can't be repaired into a value
            pos = start + 1
            continue
        if scan.end is not None:
            stop = start + scan.end
        else:
            cut = region.find(end_marker, start) if end_marker else -1
            stop = cut if cut >= 0 else len(region)
        parsed = _parse_candidate(region[start:stop], before_stray)
        if parsed is None:
            pos = start + 1
            continue
        value, repairs = parsed
        if region[:start].strip():
            repairs.append("stripped_prefix_text")
        tail = region[stop:].split(end_marker, 1)[0] if end_marker else region[stop:]
        if tail.strip():
            repairs.append("ignored_trailing_text")
        yield value, repairs
        pos = stop


def extract_json_value(
    text: str, *, start_marker: str | None = None, end_marker: str | None = None
) -> tuple[object, list[str]]:
    """The first JSON object or array in the call region (after `start_marker` when present).

    The end is found by string-aware bracket matching, not by `end_marker`, so a closing tag quoted
    inside an argument can't cut the call; `end_marker` only bounds a value that never closes.
    """
    for before_stray in (False, True):
        for value, repairs in iter_values(text, start_marker, end_marker, before_stray):
            return value, repairs
    raise LLMOutputError(NO_CALL, text)
