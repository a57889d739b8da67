"""Agent functions are plain typed Python with a Google-style docstring; their JSON schemas are derived
from the signature and docstring, so there is one source of truth.

Parameter types: str, int, float, bool, `list[str]`, a `Literal` of strings (an enum the grammar holds the model
to), and `datetime.date`, which the model writes as "YYYY-MM-DD" (the schema says `"format": "date"`, so a grammar can
hold the model to it) and the function receives as a date. Any of them `| None = None` is an optional parameter.

One function can be offered in two forms: its whole signature, and a smaller form that leaves some optional
parameters out of the schema (small models do better with fewer choices). Each form is registered under its own key
(``register(fn, key=..., hide=...)``); the model sees the function's own name either way, and a preset picks one.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

_JSON_TYPES: dict[Any, dict[str, str]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    date: {"type": "string", "format": "date"},
}
HEARTBEAT_PARAM = "request_heartbeat"
MAX_ARGUMENT_CHARS = 10_000
"""The longest text argument a function takes. A longer one fails with an error the model can act on, and only
its start is kept in the stored call: one runaway generation must not fill the context window for good."""
HEARTBEAT_DESCRIPTION = (
    "Request an immediate heartbeat after function execution. Set to true if you want to send a "
    "follow-up message or run a follow-up function."
)


class FunctionFailed(Exception):
    """A failure the model can act on; its message is returned to the model."""


@dataclass(frozen=True)
class AgentFunction:
    name: str
    fn: Callable[..., Any]
    schema: dict[str, Any]

    @property
    def takes_heartbeat(self) -> bool:
        return HEARTBEAT_PARAM in self.schema["parameters"]["properties"]

    @property
    def date_params(self) -> frozenset[str]:
        properties = self.schema["parameters"]["properties"]
        return frozenset(name for name, prop in properties.items() if prop.get("format") == "date")

    def __call__(self, ctx: Any, **arguments: Any) -> Any:
        """Run the function on the model's JSON arguments, with its dates turned into `date`s."""
        for pname, value in arguments.items():
            if isinstance(value, str) and len(value) > MAX_ARGUMENT_CHARS:
                raise FunctionFailed(
                    f"{pname} is {len(value):,} characters long; the limit is {MAX_ARGUMENT_CHARS:,}. "
                    "Split it into several shorter calls."
                )
        for pname in self.date_params & arguments.keys():
            if arguments[pname] is not None:
                arguments[pname] = _iso_date(arguments[pname], pname)
        return self.fn(ctx, **arguments)


def clip_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with every text over MAX_ARGUMENT_CHARS cut there and marked, for storing the call."""
    return {
        name: f"{value[:MAX_ARGUMENT_CHARS]}... [cut: {len(value) - MAX_ARGUMENT_CHARS:,} more characters]"
        if isinstance(value, str) and len(value) > MAX_ARGUMENT_CHARS
        else value
        for name, value in arguments.items()
    }


def _iso_date(value: Any, pname: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError) as exc:
        raise FunctionFailed(f"{pname} {value!r} is not a date: use YYYY-MM-DD, e.g. 2024-01-31.") from exc


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description})."""
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section = "description"
    current = None
    for line in lines:
        header = line.strip().rstrip(":").lower()
        if header in ("args", "arguments", "parameters") and line.strip().endswith(":"):
            section = "args"
            continue
        if header in ("returns", "raises", "yields") and line.strip().endswith(":"):
            section = "other"
            continue
        if section == "description":
            description.append(line)
        elif section == "args":
            match = re.match(r"^\s*(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
            if match and not line.startswith("        "):
                current = match.group(1)
                params[current] = match.group(3).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}"
    return " ".join(s.strip() for s in description if s.strip()), params


def _json_type(annotation: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _json_type(args[0], where)
    if origin is typing.Literal and all(isinstance(a, str) for a in typing.get_args(annotation)):
        return {"type": "string", "enum": list(typing.get_args(annotation))}
    if origin is list and typing.get_args(annotation) == (str,):
        return {"type": "array", "items": {"type": "string"}}
    if annotation in _JSON_TYPES:
        return dict(_JSON_TYPES[annotation])
    raise TypeError(f"{where}: unsupported parameter type {annotation!r}")


def schema_from_function(
    fn: Callable[..., Any], *, heartbeat: bool, hide: Collection[str] = ()
) -> dict[str, Any]:
    """The OpenAI-style function schema of `fn`. Its first parameter (the agent context) is skipped, and so are the
    optional parameters named in `hide`."""
    if not fn.__doc__:
        raise TypeError(f"function {fn.__name__} needs a docstring: it is the model's description")
    description, param_docs = _parse_docstring(fn.__doc__)
    hints = typing.get_type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for i, (pname, param) in enumerate(inspect.signature(fn).parameters.items()):
        if i == 0:
            continue  # the context the agent passes in
        if pname not in hints:
            raise TypeError(f"{fn.__name__}: parameter {pname!r} needs a type hint")
        if pname in hide:
            if param.default is inspect.Parameter.empty:
                raise TypeError(f"{fn.__name__}: parameter {pname!r} has no default, so it can't be hidden")
            continue
        properties[pname] = {
            **_json_type(hints[pname], f"{fn.__name__}.{pname}"),
            "description": param_docs.get(pname, ""),
        }
        if param.default is inspect.Parameter.empty:
            required.append(pname)
    if heartbeat:
        properties[HEARTBEAT_PARAM] = {"type": "boolean", "description": HEARTBEAT_DESCRIPTION}
        required.append(HEARTBEAT_PARAM)
    return {
        "name": fn.__name__,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


class FunctionRegistry:
    """Key -> AgentFunction. Built-in functions register the same way user functions would.

    A function's key is its name; a second form of it (``hide``: optional parameters left out of its schema) takes
    another key, such as ``archival_memory_search+filters`` for the whole signature beside the small default."""

    def __init__(self) -> None:
        self._functions: dict[str, AgentFunction] = {}
        self._forms: dict[str, AgentFunction] = {}

    def register(
        self, fn: Callable[..., Any], *, heartbeat: bool = True, key: str | None = None, hide: Collection[str] = ()
    ) -> Callable[..., Any]:
        function = AgentFunction(fn.__name__, fn, schema_from_function(fn, heartbeat=heartbeat, hide=hide))
        if key is None or key == fn.__name__:
            self._functions[fn.__name__] = function
        else:
            self._forms[key] = function
        return fn

    def get(self, name: str) -> AgentFunction | None:
        return self._functions.get(name, self._forms.get(name))

    def names(self) -> list[str]:
        """The functions' names (each once, in its main form)."""
        return list(self._functions)

    def forms(self) -> list[str]:
        """The keys of the other forms."""
        return list(self._forms)

    def select(self, names: list[str]) -> list[AgentFunction]:
        """The functions of ``names`` (keys); KeyError naming the unknown ones, ValueError if two are one function."""
        unknown = [n for n in names if self.get(n) is None]
        if unknown:
            raise KeyError(", ".join(unknown))
        chosen = [self._functions.get(n) or self._forms[n] for n in names]
        seen: dict[str, str] = {}
        for key, function in zip(names, chosen, strict=True):
            if function.name in seen and seen[function.name] != key:
                raise ValueError(f"{seen[function.name]} and {key} are two forms of {function.name}: list one")
            seen[function.name] = key
        return chosen
