"""Run every benchmark, print a summary table and rewrite docs/BENCHMARKS.md.

    .venv/bin/python -m bench.run_all                 # everything (about 3-4 hours on 2 busy cores)
    .venv/bin/python -m bench.run_all --quick         # a smoke run of each (minutes); does not touch the doc
    .venv/bin/python -m bench.run_all --only startup,memory_scale --runs 5 --sizes 10000,100000

Each benchmark's result is kept in bench/results/NAME.json. A run that is not --quick rewrites the doc from
the results of every benchmark: the ones it just ran and the latest kept results of the others, each with the
command and date it was measured with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    cpu_builds,
    hybrid_scale,
    memory_quality,
    memory_scale,
    parse_speed,
    prompt_reuse,
    recall_effect,
    reliability,
    startup,
    turn_latency,
    valid_calls,
)
from bench.common import ROOT, Section, Target, load_text, machine_info, md_table, targets_table
from memagent.memory.embed import embeddings_available

DOC = ROOT / "docs" / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"
ORDER = (
    "startup",
    "memory_scale",
    "memory_scale_questions",
    "memory_quality",
    "hybrid_scale",
    "prompt_reuse",
    "turn_latency",
    "recall_effect",
    "valid_calls",
    "cpu_builds",
    "parse_speed",
    "reliability",
)


def plans(args: argparse.Namespace) -> dict[str, Callable[[], Section]]:
    quick = args.quick
    sizes = [int(s) for s in (args.sizes or ("2000,10000" if quick else "10000,100000,1000000")).split(",")]
    return {
        "startup": lambda: startup.run(args.runs or (3 if quick else 7), (None,) if quick else (None, 4096)),
        "memory_scale": lambda: memory_scale.run(
            sizes, args.queries or (50 if quick else 200), args.budget or (5.0 if quick else 60.0)
        ),
        # the same, with LoCoMo's turns as rows and its questions as written as the queries
        "memory_scale_questions": lambda: memory_scale.run(
            sizes,
            args.queries or (50 if quick else 200),
            args.budget or 5.0,
            locomo=args.locomo or memory_quality.DEV_DATA,
        ),
        # LoCoMo retrieval: the same whole run when quick (seconds)
        "memory_quality": lambda: memory_quality.run(args.locomo or memory_quality.DEV_DATA),
        # hybrid archival search over random row vectors, with the real e5 query when the extra is installed
        "hybrid_scale": lambda: hybrid_scale.run(
            sizes if args.sizes else (10_000,) if quick else (100_000,),
            args.queries or (30 if quick else 100),
            embeddings_available(),
            keep=args.keep,
        ),
        "prompt_reuse": lambda: prompt_reuse.run(args.turns or (3 if quick else 20), args.context_length),
        "valid_calls": lambda: valid_calls.run(
            valid_calls.Plan(
                args.steps or (2 if quick else 100),
                args.per_agent or (2 if quick else 10),
                args.max_minutes,
                args.context_length,
            )
        ),
        "cpu_builds": lambda: cpu_builds.run(
            (1 if quick else 7) if args.rounds is None else args.rounds,
            list(cpu_builds.BUILDS),
            emulate=[cpu for cpu in (args.emulate or "").split(",") if cpu],
        ),
        # kill -9 soak, processes side by side, server faults; a full run also rewrites docs/RELIABILITY.md
        "reliability": lambda: reliability.run(reliability.Plan.quick_plan() if quick else reliability.Plan()),
        "parse_speed": lambda: parse_speed.run(
            list(parse_speed.QUICK_SIZES if quick else parse_speed.SIZES), 1 if quick else 3
        ),
        "turn_latency": lambda: turn_latency.run(args.turns or (1 if quick else 6), 1 if quick else 3),
        "recall_effect": lambda: recall_effect.run(args.facts or (2 if quick else len(recall_effect.FACTS))),
    }


def run_one(name: str, job: Callable[[], Section]) -> Section:
    start, load = time.perf_counter(), os.getloadavg()
    try:
        section = job()
        section.machine = section.machine or machine_info()["CPU"]
        return section
    except Exception as exc:  # one broken benchmark must not lose the others' numbers
        section = Section(
            name,
            name,
            f".venv/bin/python -m bench.{name}",
            seconds=time.perf_counter() - start,
            load=(load, os.getloadavg()),
        )
        section.body = "This benchmark failed:\n\n```\n" + traceback.format_exc() + "```"
        section.targets = [Target(name, "runs", f"failed: {type(exc).__name__}: {exc}", False)]
        section.summary = [f"FAILED: {exc}"]
        return section


def save_result(section: Section, started: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"started": started, **dataclasses.asdict(section)}
    (RESULTS / f"{section.name}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def load_result(name: str) -> tuple[Section, str] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    started = record.pop("started")
    record["targets"] = [Target(**t) for t in record["targets"]]
    record["load"] = tuple(tuple(x) for x in record["load"])
    return Section(**record), started


def summary_table(sections: list[Section]) -> str:
    rows = []
    for s in sections:
        judged = [t for t in s.targets if t.met is not None]
        met = f"{sum(bool(t.met) for t in judged)}/{len(judged)}" if judged else "-"
        rows.append((s.title, "; ".join(s.summary), met, f"{s.seconds / 60:.1f} min", load_text(s.load[0])))
    return md_table(("benchmark", "result", "targets met", "run time", "load at start (1/5/15 min)"), rows)


def console_table(sections: list[Section]) -> str:
    lines = [f"{'benchmark':<26} {'targets':<8} {'time':>9}  result"]
    for s in sections:
        judged = [t for t in s.targets if t.met is not None]
        met = f"{sum(bool(t.met) for t in judged)}/{len(judged)}"
        lines.append(f"{s.title:<26} {met:<8} {s.seconds / 60:>7.1f} m  {'; '.join(s.summary)}")
    for s in sections:
        for t in s.targets:
            if t.met is False:
                lines.append(f"  not met: {t.name}: {t.value} (goal {t.goal})")
    return "\n".join(lines)


def write_doc(path: Path, results: list[tuple[Section, str]]) -> None:
    sections = [section for section, _ in results]
    machine = machine_info()
    cpus = dict.fromkeys(s.machine or machine["CPU"] for s in sections)
    machine["CPU"] = "; ".join(
        f"{cpu} ({', '.join(s.title for s in sections if (s.machine or machine['CPU']) == cpu)})" for cpu in cpus
    )
    loads = [s.load[0] for s in sections if s.load[0]] + [s.load[1] for s in sections if s.load[1]]
    peak = max((load[0] for load in loads), default=0.0)
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`.venv/bin/python -m bench.run_all`), which runs every benchmark, keeps each "
        "one's result in `bench/results/` and rewrites this file; `--only NAME` refreshes one benchmark. The "
        "numbers are measured and reported here, never asserted in tests. Each benchmark also runs alone "
        "(`.venv/bin/python -m bench.<name> --help`); each section below gives the command and date it was "
        "measured with.",
        "",
        "## Machine",
        "",
        md_table(("", ""), list(machine.items())),
        "",
        f"The machine's {os.cpu_count()} cores were shared with other work while this ran (tests, servers); the "
        f"1-minute load average went up to {peak:.1f}. Absolute times drift with that load, so every comparison "
        "below runs both sides in the same process, one after the other, and is reported as a ratio; token counts "
        "do not depend on load.",
        "",
        "## Summary",
        "",
        summary_table(sections),
        "",
        "## Targets",
        "",
        targets_table([t for s in sections for t in s.targets]),
    ]
    for number, (s, started) in enumerate(results, 1):
        parts += [
            "",
            f"## {number}. {s.title}",
            "",
            f"Measured {started} on {s.machine or machine_info()['CPU']} by `{s.command}`, which took "
            f"{s.seconds / 60:.1f} min; load average "
            f"{load_text(s.load[0])} at the start, "
            f"{load_text(s.load[1])} at the end.",
            "",
            s.body,
            "",
            targets_table(s.targets),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark")
    parser.add_argument("--only", default="", help=f"comma-separated, from: {', '.join(ORDER)}")
    parser.add_argument("--doc", type=Path, default=None, help=f"write the report here (default on full runs: {DOC})")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="only rewrite the doc from the kept results")
    parser.add_argument("--runs", type=int, help="startup: runs per measurement (7)")
    parser.add_argument("--sizes", help="memory_scale: row counts (10000,100000,1000000); hybrid_scale (100000)")
    parser.add_argument("--keep", type=Path, help="hybrid_scale: keep its databases in this folder and reuse them")
    parser.add_argument("--queries", type=int, help="memory_scale: queries per size (200)")
    parser.add_argument("--budget", type=float, help="memory_scale: seconds per scanning method and size (60)")
    parser.add_argument("--locomo", type=Path, help="memory_quality: folder of LoCoMo files (the dev split)")
    parser.add_argument("--turns", type=int, help="prompt_reuse: conversation turns (20)")
    parser.add_argument("--facts", type=int, help="recall_effect: facts told and asked (12)")
    parser.add_argument("--steps", type=int, help="valid_calls: steps per wrapper and grammar setting (100)")
    parser.add_argument("--per-agent", type=int, help="valid_calls: steps before a fresh agent (10)")
    parser.add_argument("--max-minutes", type=float, help="valid_calls: time budget per wrapper and grammar setting")
    parser.add_argument("--context-length", type=int, default=8192, help="prompt_reuse and valid_calls")
    parser.add_argument("--rounds", type=int, help="cpu_builds: rounds of the builds in turn (7; 0: keep the last)")
    parser.add_argument("--emulate", help="cpu_builds: also run every build as these QEMU CPU models (EPYC-Rome)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(ORDER)
    unknown = set(names) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.rebuild:
        write_doc(args.doc or DOC, [result for result in map(load_result, ORDER) if result is not None])
        return
    jobs = plans(args)
    sections, started = [], time.strftime("%Y-%m-%d %H:%M %Z")
    for name in ORDER:
        if name in names:
            started = time.strftime("%Y-%m-%d %H:%M %Z")
            sections.append(run_one(name, jobs[name]))
            if not args.quick:
                save_result(sections[-1], started)
    print(console_table(sections))
    doc = args.doc or (None if args.quick else DOC)
    if doc and not args.no_doc:
        kept = [load_result(name) for name in ORDER] if not args.quick else [(s, started) for s in sections]
        write_doc(doc, [result for result in kept if result is not None])
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
