"""Parse speed: how long the shared call parser takes on long and hostile replies, per input kind and wrapper.

Every registered wrapper parses (its own `parse`, with the built-in function schemas) eleven kinds of reply at
each size (10, 50 and 200 KB; the parser's cap is 200,000 characters): the call in the wrapper's own format
with a huge message, with a message of nothing but escapes, as a Python literal, with a huge list argument,
cut mid-message, left open before 200 KB of stray chat turns; prose full of `{` before a call, back-to-back
JSON objects before a call, balanced `[[[...]]]`, `{"a": [` repeated and never closed, and random JSON-ish
characters. A reply one character over the cap must give LLMOutputError, fast.

Before and after: the same inputs are parsed by the parser as it was before the speed work (`--baseline`, a git
revision, unpacked with `git archive` into a temporary folder) and by this checkout's, each in a subprocess of
its own, one after the other; both must give the same outcome (the same call, or the same error) on every input,
the old one's text cleaned as the parser now cleans it (issue 16, item 4). Times are the median of `--runs` parses.

    .venv/bin/python -m bench.parse_speed [--sizes 10000,50000,200000] [--runs 3] [--baseline REV | --baseline '']
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.common import ROOT, Section, Target, Timer, log, machine_info, md_table, median, targets_table
from memagent.text import clean_text

BASELINE = "4efbaf78e89334f6d8bb561480f3c929cf9ac59f"  # main before the parser's speed work (issue 16)
SIZES = (10_000, 50_000, 200_000)
QUICK_SIZES = (10_000, 50_000)  # run_all --quick
TARGET_S = 0.5  # "well under a second" for a 200 KB reply, on 2 busy cores
KINDS = {
    "valid_call": "a whole call, its message prose with escapes and non-ASCII",
    "huge_string": "a whole call, its message nothing but escapes (\\\", \\n, \\\\, \\u00e9, surrogate pairs)",
    "python_literal": "a whole call, its arguments a Python literal (single quotes)",
    "many_strings": "a whole call with an extra argument: a list of thousands of short strings",
    "unterminated": "a call cut in the middle of its huge message",
    "stray_turns": "a call left open, then chat turns (special tokens) up to the size",
    "prose_braces": "prose full of `{` before a small call",
    "back_to_back": "back-to-back JSON objects (tool results) before a small call",
    "deep_nesting": "balanced `[[[...]]]`",
    "deep_open": '`{"a": [` repeated, never closed',
    "garbage": "random JSON-ish characters, no call",
}
PLACEHOLDER = "PLACEHOLDER"
WORDS = ("the", "tea", "Chad", 'said "hi"', "line\n", "tab\t", "café", "✓", "{", "}", "[", "]", "back\\slash", "😀")
ESCAPES = ('\\"', "\\n", "\\\\", "\\u00e9", "\\ud83d\\ude00", "\\t", "\\/")
STRAY_TURN = "<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\nFUNCTION RETURN: ok\n"


# -- inputs ---------------------------------------------------------------------------------------------------


def _assistant_call(arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"name": "send_message", "arguments": arguments}
    return {"role": "assistant", "content": "Thinking.", "function_call": call}


def _python_arguments(template: str) -> str:
    """The call's arguments object (around PLACEHOLDER) written with single quotes, as a Python literal."""
    at = template.index(PLACEHOLDER)
    begin, end = template.rindex("{", 0, at), template.index("}", at) + 1
    return template[:begin] + template[begin:end].replace('"', "'") + template[end:]


def _fill(template: str, marker: str, size: int, units: Callable[[], str], pad: str = " ") -> str:
    """`template` with `marker` replaced by whole units (so no escape is cut), padded to exactly `size` chars."""
    room = size - (len(template) - len(marker))
    parts, length = [], 0
    while True:
        unit = units()
        if length + len(unit) > room:
            break
        parts.append(unit)
        length += len(unit)
    return template.replace(marker, "".join(parts) + pad * (room - length), 1)


def _json_prose(rng: random.Random) -> Callable[[], str]:
    return lambda: json.dumps(rng.choice(WORDS), ensure_ascii=False)[1:-1] + " "


def reply_inputs(wrapper: Any, size: int, seed: int = 16) -> dict[str, str]:
    """Every kind of reply for one wrapper, each exactly `size` characters long."""
    rng = random.Random(seed)
    template = wrapper.render_call(_assistant_call({"message": PLACEHOLDER}))
    small = wrapper.render_call(_assistant_call({"message": "Hi Brad!"}))
    with_list = wrapper.render_call(_assistant_call({"message": "Hi Brad!", "tags": PLACEHOLDER}))
    with_list = with_list.replace(f'"{PLACEHOLDER}"', f'[{PLACEHOLDER}"last"]')
    left_open = small[: small.index('"Hi Brad!"') + len('"Hi Brad!"')] + PLACEHOLDER  # no closers, no end marker
    return {
        "valid_call": _fill(template, PLACEHOLDER, size, _json_prose(rng)),
        "huge_string": _fill(template, PLACEHOLDER, size, lambda: rng.choice(ESCAPES)),
        "python_literal": _fill(_python_arguments(template), PLACEHOLDER, size, lambda: rng.choice(WORDS[:3]) + " "),
        "many_strings": _fill(with_list, PLACEHOLDER, size, lambda: f'"t{rng.randrange(100)}", '),
        "unterminated": _fill(template, PLACEHOLDER, size * 2, _json_prose(rng))[:size],
        "stray_turns": _fill(left_open, PLACEHOLDER, size, lambda: STRAY_TURN),
        "prose_braces": _fill(PLACEHOLDER + small, PLACEHOLDER, size, lambda: "I think {maybe} we { should "),
        "back_to_back": _fill(PLACEHOLDER + small, PLACEHOLDER, size, lambda: '{"status": "OK", "message": null}\n'),
        "deep_nesting": "[" * (size // 2) + "]" * (size - size // 2),
        "deep_open": ('{"a": [' * size)[:size],
        "garbage": "".join(rng.choice("abc {}[]\"':,\\\n0123 truefalse<|>") for _ in range(size)),
    }


# -- measuring (in a subprocess, on whichever memagent comes first on its path) ---------------------------------


def _outcome(parse: Callable[[], Any], error: type[Exception]) -> str:
    try:
        call = parse()
    except error as err:
        return f"error {err}"
    return "ok " + json.dumps([call.name, call.arguments, call.inner_thoughts, list(call.repairs)], default=repr)


def measure(sizes: list[int], runs: int) -> dict[str, Any]:
    """Every wrapper x kind x size: the parse times and the outcome; and a reply just over the cap."""
    import memagent
    from memagent.errors import LLMOutputError
    from memagent.functions.memory import builtin_functions
    from memagent.llm.wrappers.registry import available_wrappers

    registry = builtin_functions()
    functions = [function.schema for function in registry.select(registry.names())]
    cells, over_cap = [], {}
    for name, entry in sorted(available_wrappers().items()):
        wrapper = entry.cls(constrained=False)
        for size in sizes:
            for kind, raw in reply_inputs(wrapper, size).items():
                times, outcome = [], ""
                for _ in range(runs):
                    start = time.perf_counter()
                    outcome = _outcome(lambda: wrapper.parse(raw, functions), LLMOutputError)  # noqa: B023
                    times.append(time.perf_counter() - start)
                cells.append([name, kind, size, times, outcome])
        raw = reply_inputs(wrapper, 200_001)["valid_call"]
        start = time.perf_counter()
        try:
            wrapper.parse(raw, functions)
            raised = "no error"
        except Exception as err:  # what is measured here is which error it is
            raised = type(err).__name__
        over_cap[name] = [time.perf_counter() - start, raised]
    return {"memagent": memagent.__file__, "cells": cells, "over_cap": over_cap}


def _measure_in(package_root: Path, sizes: list[int], runs: int) -> dict[str, Any]:
    """`measure` in a subprocess that imports memagent from `package_root` (this checkout or a baseline)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(package_root), str(ROOT)]))}
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", "--sizes", ",".join(map(str, sizes))]
    done = subprocess.run([*args, "--runs", str(runs)], env=env, cwd=package_root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"parse_speed worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if not Path(result["memagent"]).resolve().is_relative_to(package_root.resolve()):
        raise RuntimeError(f"the worker imported {result['memagent']}, not memagent from {package_root}")
    return result


def _unpack(revision: str, into: Path) -> Path:
    """memagent/ as it was at `revision`, unpacked into `into`."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "memagent"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(tar.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


# -- the report -----------------------------------------------------------------------------------------------

Cells = dict[tuple[str, str, int], tuple[float, str]]  # (wrapper, kind, size) -> (median seconds, outcome)


def _cells(result: dict[str, Any]) -> Cells:
    return {(name, kind, size): (median(times), outcome) for name, kind, size, times, outcome in result["cells"]}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def _ratio(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _worst(cells: Cells, keep: Callable[[tuple[str, str, int]], bool]) -> tuple[float, tuple[str, str, int]]:
    return max((seconds, key) for key, (seconds, _) in cells.items() if keep(key))


def _pair(after: Cells, before: Cells | None, keep: Callable[[tuple[str, str, int]], bool]) -> str:
    text = _ms(_worst(after, keep)[0])
    return f"{text} ({_ms(_worst(before, keep)[0])})" if before else text


def _tables(after: Cells, before: Cells | None, sizes: list[int]) -> list[str]:
    names = sorted({key[0] for key in after})
    top = max(sizes)
    columns = [f"{size // 1000} KB" for size in sizes]
    speedup = [f"speed-up at {top // 1000} KB"] if before else []

    def ratio(keep: Callable[[tuple[str, str, int]], bool]) -> list[str]:
        return [_ratio(_worst(before, keep)[0] / _worst(after, keep)[0])] if before else []

    kind_rows = [
        [f"`{kind}`", *[_pair(after, before, lambda k, s=s, kind=kind: k[1:] == (kind, s)) for s in sizes],
         *ratio(lambda k, kind=kind: k[1:] == (kind, top)), KINDS[kind]]
        for kind in KINDS
    ]
    wrapper_rows = [
        [name, *[_pair(after, before, lambda k, s=s, name=name: (k[0], k[2]) == (name, s)) for s in sizes],
         *ratio(lambda k, name=name: (k[0], k[2]) == (name, top)),
         f"`{_worst(after, lambda k, name=name: (k[0], k[2]) == (name, top))[1][1]}`"]
        for name in names
    ]
    detail = [[name, *[_ms(after[(name, kind, top)][0]) for kind in KINDS]] for name in names]
    return [
        "Per input kind: the slowest wrapper's time in ms" + (", before in brackets." if before else "."),
        "",
        md_table(("kind", *columns, *speedup, "the reply"), kind_rows),
        "",
        "Per wrapper: the slowest kind's time in ms" + (", before in brackets." if before else "."),
        "",
        md_table(("wrapper", *columns, *speedup, f"slowest kind at {top // 1000} KB"), wrapper_rows),
        "",
        f"Every wrapper and kind at {top // 1000} KB, after, in ms:",
        "",
        md_table(("wrapper", *KINDS), detail),
    ]


def _targets(after: Cells, before: Cells | None, over_cap: dict[str, list[Any]], sizes: list[int]) -> list[Target]:
    top = max(sizes)
    worst, (w_name, w_kind, _) = _worst(after, lambda k: k[2] == top)
    value = f"{_ms(worst)} ms ({w_kind}, {w_name})"
    if before:
        old, (o_name, o_kind, _) = _worst(before, lambda k: k[2] == top)
        value += f"; before: {_ms(old)} ms ({o_kind}, {o_name})"
    raised = sorted({error for _, error in over_cap.values()})
    slowest_cap = max(seconds for seconds, _ in over_cap.values())
    targets = [
        Target(f"a {top // 1000} KB reply parses fast, every kind and wrapper", f"< {TARGET_S:g} s", value,
               worst < TARGET_S if top >= 200_000 else None, "" if top >= 200_000 else "200 KB was not measured"),
        Target("a reply over the 200,000-character cap", "LLMOutputError (no other error)",
               f"{', '.join(raised)} from all {len(over_cap)} wrappers, in at most {_ms(slowest_cap)} ms",
               raised == ["LLMOutputError"]),
    ]
    if before:
        same = sum(after[key][1] == before[key][1] for key in after)
        cleaned = sum(after[key][1] == clean_text(before[key][1]) for key in after)
        targets.append(Target("the same outcome as before on every input", "all", f"{cleaned}/{len(after)}",
                              cleaned == len(after),
                              "the same call (name, arguments, thoughts, repairs) or error, once text the parser "
                              f"now cleans (issue 16, item 4) is cleaned in the old outcome too: {same} identical "
                              f"as they were, {cleaned - same} differ only by that cleaning"))
    if len(sizes) > 1:
        low = sorted(sizes)[-2]
        growth = _worst(after, lambda k: k[2] == top)[0] / _worst(after, lambda k: k[2] == low)[0]
        targets.append(Target(f"growth from {low // 1000} to {top // 1000} KB (slowest cell)", "(measured)",
                              f"{growth:.1f}x for {top / low:g}x the text", None, "linear is the size ratio"))
    return targets


def run(sizes: list[int] | None = None, runs: int = 3, baseline: str | None = BASELINE) -> Section:
    sizes = sorted(sizes or SIZES)
    command = f".venv/bin/python -m bench.parse_speed --sizes {','.join(map(str, sizes))} --runs {runs}"
    command += f" --baseline {baseline[:12]}" if baseline else " --baseline ''"
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="memagent-parse-") as tmp:
        log(f"parse_speed: this checkout, sizes {sizes}, {runs} runs")
        current = _measure_in(ROOT, sizes, runs)
        before = None
        if baseline:
            log(f"parse_speed: the parser at {baseline[:12]}")
            before = _cells(_measure_in(_unpack(baseline, Path(tmp)), sizes, runs))
    after = _cells(current)
    targets = _targets(after, before, current["over_cap"], sizes)
    cpu = machine_info()["CPU"]
    intro = (
        f"Times on {cpu}, median of {runs} parses of each reply by the wrapper's own `parse` with the built-in "
        f"function schemas; {len(KINDS)} kinds x {len({k[0] for k in after})} wrappers x {len(sizes)} sizes. "
        + (f"Before: the parser at `{baseline[:12]}`, measured in the same run, just after." if before else "")
        + " The parser keeps its cap of 200,000 characters: a longer reply is refused with LLMOutputError at once."
    )
    section = Section("parse_speed", "Parse speed", command, targets=targets)
    section.body = "\n".join([intro, "", *_tables(after, before, sizes)])
    top_worst = _worst(after, lambda k: k[2] == max(sizes))[0]
    section.summary = [f"{max(sizes) // 1000} KB reply: slowest {_ms(top_worst)} ms"]
    if before:
        old = _worst(before, lambda k: k[2] == max(sizes))[0]
        section.summary[0] += f" (before: {_ms(old)} ms, {_ratio(old / top_worst)})"
    return timer.stamp(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="reply sizes in characters")
    parser.add_argument("--runs", type=int, default=3, help="parses per reply (the median is reported)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the parser to compare ('' for none)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    if args.worker:
        print(json.dumps(measure(sizes, args.runs)))
        return
    section = run(sizes, args.runs, args.baseline or None)
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
