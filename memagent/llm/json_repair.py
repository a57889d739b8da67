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
# A string opens at every `"`, and at a `'` whose previous non-space character is one of `{[,:` (a Python-style
# string where a value starts; elsewhere a `'` is prose). A backslash escapes whatever follows it; a string left
# open runs to the end. Loops are possessive, so no match ever backtracks: scanning is linear.
_DQ_BODY = r'[^"\\]*+(?:\\.[^"\\]*+)*+'
_SQ_BODY = r"[^'\\]*+(?:\\.[^'\\]*+)*+"
_STRING = re.compile(
    rf"\"{_DQ_BODY}(?:(?P<dq_end>\")|\\)?|(?<=[{{\[,:])\s*+(?P<sq>'{_SQ_BODY}(?:(?P<sq_end>')|\\)?)", re.DOTALL
)
# The same without groups, for use inside possessive loops (CPython 3.11's re mishandles groups inside them).
_ANY_STRING = rf"\"{_DQ_BODY}(?:\"|\\)?|(?<=[{{\[,:])\s*+'{_SQ_BODY}(?:'|\\)?"
# Bracket matching skips, in one match, everything up to the next bracket or comma outside strings (or a string
# left open). Its `'` rule is _STRING's: after `:` here; after `{[,` the scanner checks with _OPENER_QUOTE.
_SKIP = re.compile(rf"""(?:[^"'{{}}\[\],:]++|"{_DQ_BODY}"|:\s*+'{_SQ_BODY}'|:(?!\s*')|')*+""", re.DOTALL)
_OPENER_QUOTE = re.compile(rf"\s*+'{_SQ_BODY}(')?", re.DOTALL)
# What may stand between strings in JSON (or a Python literal); the first thing that can't starts stray text.
_CODE_TOKEN = re.compile(r"\s+|[{}\[\],:]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|(?:true|false|null|True|False|None)\b")
# Strings and those tokens one after another, as far as they go: where this stops, stray text begins.
_CODE_RUN = re.compile(f"(?:{_ANY_STRING}|{_CODE_TOKEN.pattern})*+", re.DOTALL)
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
    code_start = 0
    for string in _STRING.finditer(text):
        single = string.group("sq") is not None
        begin = string.start("sq") if single else string.start()
        if code_start < begin:
            yield _Span(code_start, begin, None)
        closed = string.group("sq_end" if single else "dq_end") is not None
        yield _Span(begin, string.end(), text[begin], closed)
        code_start = string.end()
    if code_start < len(text):
        yield _Span(code_start, len(text), None)


@dataclass
class _Scan:
    end: int | None  # index just past the value, when it closed
    stack: list[str]  # closers still owed at the end of the text
    quote: str | None = None  # quote of a string left open
    last_sep: int | None = None  # last structural "," or opener: where a cut-back may happen
    mismatched: bool = False


def _scan(text: str) -> _Scan:
    """Bracket matching from text[0] (an opener), ignoring brackets inside strings (which _SKIP jumps over)."""
    stack: list[str] = []
    last_sep: int | None = None
    pos, n = 0, len(text)
    while (pos := _SKIP.match(text, pos).end()) < n:  # type: ignore[union-attr]  # `*+` always matches
        ch = text[pos]
        if ch in "\":":  # a string left open (`:` only stops _SKIP before an open '...')
            return _Scan(None, stack, '"' if ch == '"' else "'", last_sep)
        if ch in _CLOSER:
            stack.append(_CLOSER[ch])
            last_sep = pos
            if len(stack) > _MAX_DEPTH:
                return _Scan(None, stack, None, last_sep, mismatched=True)
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                return _Scan(None, stack, None, last_sep, mismatched=True)
            stack.pop()
            if not stack:
                return _Scan(pos + 1, [])
        else:
            last_sep = pos
        pos += 1
        quoted = _OPENER_QUOTE.match(text, pos) if ch != "}" and ch != "]" else None
        if quoted is not None:
            if quoted.group(1) is None:
                return _Scan(None, stack, "'", last_sep)
            pos = quoted.end()
    return _Scan(None, stack, None, last_sep)


class _CodeRewrite:
    """Rewrites each match of `target` in the code between strings, never inside a string, in one pass: the
    strings are an alternative of the same pattern, put back as they are. `target` must not match a quote or
    start with whitespace, so that no match can reach into a string. `hint` is a quicker pattern that matches
    wherever `target` does: without it anywhere, the text is left as it is without a pass."""

    def __init__(self, target: str, replace: Callable[[str], str], hint: str | None = None) -> None:
        self.hint = re.compile(hint or target)
        self.pattern = re.compile(f"{_STRING.pattern}|(?P<code>{target})", re.DOTALL)
        self.replace = replace

    def __call__(self, text: str) -> str:
        if self.hint.search(text) is None:  # nowhere at all, so nowhere outside strings
            return text
        return self.pattern.sub(self._swap, text)

    def _swap(self, match: re.Match[str]) -> str:
        code = match.group("code")
        return match.group() if code is None else self.replace(code)


# ---------------------------------------------------------------------------------------------- decoding


_fix_trailing_commas = _CodeRewrite(r",\s*[}\]]", lambda comma_and_closer: comma_and_closer[1:])


def _fix_escaped_underscores(text: str) -> str:
    """Markdown-escaped `\\_` (invalid in JSON) -> `_`; an escaped backslash before `_` is kept."""
    if "\\_" not in text:  # the pattern below looks behind at every position: slow on long text
        return text
    return re.sub(r"(?<!\\)((?:\\\\)*)\\_", r"\1_", text)


# Literal `\\n`/`\\t` between tokens (not inside strings) -> whitespace.
_fix_stray_escapes = _CodeRewrite(r"\\[nrt]", lambda escape: " ")


def _fix_special_tokens(text: str) -> str:
    """Chat-template tokens between the call's tokens (never inside its strings) -> nothing. One that only
    trails the text is left: it ends the call, which `_before_stray_text` then closes."""
    if _SPECIAL_TOKEN.search(text) is None:
        return text
    kept, last, text_end = [], 0, len(text.rstrip())  # a token ending at text_end or later only trails
    for span in _spans(text):
        if span.quote is None:
            for token in _SPECIAL_TOKEN.finditer(text, span.begin, span.end):
                if token.end() < text_end:
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
    i = _CODE_RUN.match(text).end()  # type: ignore[union-attr]  # `*+` always matches
    if i == len(text):
        return None
    return text[:i] if text[:i].strip(" \t\r\n{[") else None  # `{` + prose must not become `{}`


def _jsonable(value: Any) -> Any:
    """Python literal -> JSON types (tuples become lists); ValueError for sets, bytes, complex..."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _jsonable(item) for key, item in value.items()}
    raise ValueError(f"not JSON: {type(value).__name__}")


_python_names = _CodeRewrite(
    r"\b(?:true|false|null)\b", {"true": "True", "false": "False", "null": "None"}.__getitem__, "true|false|null"
)


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
            value = _jsonable(ast.literal_eval(_python_names(text)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    single = any(span.quote == "'" for span in _spans(text))
    return value, ["single_quotes" if single else "python_literal"]


_Found = tuple[Any, list[str]]  # a decoded value and the repairs it needed


def _decoded(text: str, repairs: list[str], decoders: tuple[Callable[[str], _Found | None], ...]) -> _Found | None:
    for decode in decoders:
        decoded = decode(text)
        if decoded is not None and isinstance(decoded[0], dict | list):
            return decoded[0], [*repairs, *decoded[1]]
    return None


class _Candidate:
    """One candidate value's text and what each way of reading it gave, each worked out once, when first asked.

    The ways, best first: JSON as is, then with each textual fix added in turn, then as a Python literal (all on
    `fixed`); then closed up (`_close`), closed where stray text begins, closed one member back (`_cut_back`).
    Python literals come after the text fixes because literal_eval also "succeeds" on `\\_` (keeping the
    backslash), which would hide the better repair. Closing before stray text can make a call out of text that
    holds none, so it is only tried when asked for (`before_stray`), after the first round found no call.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.fixed, self.fixes = text, list[str]()
        self._found: dict[str, _Found | None] = {}

    def parse(self, before_stray: bool) -> _Found | None:
        for way in ("as_written", "closed", "closed_before_stray", "cut_back"):
            if way == "closed_before_stray" and not before_stray:
                continue
            if way not in self._found:
                self._found[way] = getattr(self, way)()
            found = self._found[way]
            if found is not None:
                return found[0], list(found[1])  # callers add to the repairs: never to the kept list
        return None

    def as_written(self) -> _Found | None:
        found = _decoded(self.text, [], (_decode_json,))
        for name, fix in _TEXT_FIXES:
            if found is not None:
                return found
            fixed = fix(self.fixed)
            if fixed != self.fixed:
                self.fixed, self.fixes = fixed, [*self.fixes, name]
                found = _decoded(fixed, self.fixes, (_decode_json,))
        return found or _decoded(self.fixed, self.fixes, (_decode_python,))

    def closed(self) -> _Found | None:
        return self._decoded_closed(_close(self.fixed), CLOSED_BRACES)

    def closed_before_stray(self) -> _Found | None:
        stray_cut = _before_stray_text(self.fixed)
        return self._decoded_closed(_close(stray_cut) if stray_cut else None, CLOSED_BEFORE_STRAY_TEXT)

    def cut_back(self) -> _Found | None:
        return self._decoded_closed(_cut_back(self.fixed), CLOSED_BRACES)

    def _decoded_closed(self, closed: str | None, closing: str) -> _Found | None:
        return None if closed is None else _decoded(closed, [*self.fixes, closing], (_decode_json, _decode_python))


class CallReader:
    """The candidate values of one reply, each scanned and decoded once however many rounds ask for them."""

    def __init__(self, text: str, start_marker: str | None, end_marker: str | None) -> None:
        self.region = text.split(start_marker, 1)[1] if start_marker and start_marker in text else text
        self.end_marker = end_marker
        self._candidates: dict[int, tuple[int, _Candidate] | None] = {}  # start -> (stop, candidate)

    def _candidate(self, start: int) -> tuple[int, _Candidate] | None:
        if start not in self._candidates:
            region, end_marker = self.region, self.end_marker
            scan = _scan(region[start:])
            if scan.mismatched:  # can't be repaired into a value
                self._candidates[start] = None
            else:
                cut = region.find(end_marker, start) if end_marker and scan.end is None else -1
                stop = start + scan.end if scan.end is not None else cut if cut >= 0 else len(region)
                self._candidates[start] = stop, _Candidate(region[start:stop])
        return self._candidates[start]

    def values(self, before_stray: bool = False) -> Iterator[_Found]:
        """Every JSON object/array in the call region, first first, each with the repairs it needed."""
        region, end_marker, pos = self.region, self.end_marker, 0
        for _ in range(_MAX_CANDIDATES):
            match = _OPENER.search(region, pos)
            if match is None:
                return
            start = match.start()
            candidate = self._candidate(start)
            parsed = candidate[1].parse(before_stray) if candidate is not None else None
            if candidate is None or parsed is None:
                pos = start + 1
                continue
            stop, (value, repairs) = candidate[0], parsed
            if region[:start].strip():
                repairs.append("stripped_prefix_text")
            tail = region[stop:].split(end_marker, 1)[0] if end_marker else region[stop:]
            if tail.strip():
                repairs.append("ignored_trailing_text")
            yield value, repairs
            pos = stop


def iter_values(
    text: str, start_marker: str | None, end_marker: str | None, before_stray: bool = False
) -> Iterator[_Found]:
    """Every JSON object/array in the call region, first first, each with the repairs it needed."""
    return CallReader(text, start_marker, end_marker).values(before_stray)


def extract_json_value(
    text: str, *, start_marker: str | None = None, end_marker: str | None = None
) -> tuple[object, list[str]]:
    """The first JSON object or array in the call region (after `start_marker` when present).

    The end is found by string-aware bracket matching, not by `end_marker`, so a closing tag quoted
    inside an argument can't cut the call; `end_marker` only bounds a value that never closes.
    """
    reader = CallReader(text, start_marker, end_marker)
    for before_stray in (False, True):
        for value, repairs in reader.values(before_stray):
            return value, repairs
    raise LLMOutputError(NO_CALL, text)
