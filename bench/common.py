"""What every benchmark shares: the report shape, machine facts, statistics, tables and a recording backend.

A benchmark module exposes `run(options) -> Section` and a `main()` for running it alone. `run_all` turns the
sections into the console table and docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from memagent.llm.backends.base import Completion

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Target:
    name: str
    goal: str
    value: str
    met: bool | None  # None: measured, no target to meet
    why: str = ""


@dataclass
class Section:
    """One benchmark's results: the console summary, the targets and the markdown for the doc."""

    name: str
    title: str
    command: str
    seconds: float = 0.0
    load: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())  # os.getloadavg() at start and end
    summary: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    body: str = ""
    machine: str = ""  # the CPU it was measured on (run_all fills it in)


class Timer:
    """Wall time and load average of a benchmark run: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> Timer:
        self.load_start, self.start = os.getloadavg(), time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.load_end = os.getloadavg()

    def stamp(self, section: Section) -> Section:
        section.seconds, section.load = self.seconds, (self.load_start, self.load_end)
        return section


def log(message: str) -> None:
    """Progress goes to stderr, so a run's stdout is only its report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_text(load: Sequence[float]) -> str:
    return "/".join(f"{x:.2f}" for x in load) if load else "?"


# -- statistics and formatting -------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    verdict = {True: "met", False: "**not met**", None: "-"}
    rows = [(t.name, t.goal, t.value, verdict[t.met], t.why or "") for t in targets]
    return md_table(("target", "goal", "measured", "result", "why / notes"), rows)


def paragraphs(texts: Sequence[str]) -> str:
    return "\n\n".join(texts)


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


# -- the machine ----------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "RAM": f"{_ram_gb():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "llama-cpp-python": _package("llama-cpp-python"),
        "memagent": _package("memagent"),
    }


# -- a backend that records what each completion cost ---------------------------------------------------------


@dataclass
class CallRecord:
    prompt: str
    completion: Completion
    wall_s: float
    prompt_eval_ms: float | None  # llama.cpp's own prompt-evaluation time for this call
    prompt_eval_tokens: int | None  # ... and how many prompt tokens it evaluated
    generation_ms: float | None
    note: dict[str, Any] = field(default_factory=dict)


class RecordingBackend:
    """Wraps a backend (duck-typed: everything but `complete` is passed through) and records every call.

    For the embedded backend it also reads llama.cpp's performance counters (reset before each call), which
    split a call into prompt evaluation and generation."""

    def __init__(self, inner: Any, note: Callable[[], dict[str, Any]] | None = None) -> None:
        self.inner = inner
        self.note = note
        self.calls: list[CallRecord] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def complete(self, prompt: str, **kwargs: Any) -> Completion:
        ctx = _llama_ctx(self.inner)
        if ctx is not None:
            import llama_cpp

            llama_cpp.llama_perf_context_reset(ctx)
        start = time.perf_counter()
        completion = self.inner.complete(prompt, **kwargs)
        wall = time.perf_counter() - start
        p_ms = p_n = g_ms = None
        if ctx is not None:
            perf = llama_cpp.llama_perf_context(ctx)
            p_ms, p_n, g_ms = perf.t_p_eval_ms, perf.n_p_eval, perf.t_eval_ms
        note = self.note() if self.note else {}
        self.calls.append(CallRecord(prompt, completion, wall, p_ms, p_n, g_ms, note))
        return completion


def _llama_ctx(backend: Any) -> Any:
    llm = getattr(backend, "_llm", None)
    ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
    return ctx


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
