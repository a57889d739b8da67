"""Token speed of llama.cpp built portably (what `make install` builds) against builds for this very CPU.

Each build of llama-cpp-python is made by scripts/portable_wheels.py (kept in its wheel cache, so a second
run builds nothing), unpacked to a folder of its own and run in a fresh process on SmolLM2-135M: a fixed
~1,200-token prompt is evaluated and 128 tokens are generated greedily, `--runs` times; the rates are
llama.cpp's own counters (llama_perf_context). The builds take turns, one process each per round, for
`--rounds` rounds, so the machine's drift (it is shared) falls on all of them alike; a build's ratio to the
portable one is the median of its per-round ratios. Threads are llama-cpp-python's defaults, as in a chat
(on 2 cores: 1 for generation, 2 for the prompt), unless --threads is given. A build that dies on this CPU is
reported with its signal: that is what a build made with -march=native does on a host whose kernel has not
enabled all that the CPU advertises (AMX on some Intel Xeons).

Builds: `portable` (the AVX2 baseline memagent ships), `native` (GGML_NATIVE=ON, -march=native), and on a CPU
with AVX-512, `avx512` (the AVX-512 and VNNI flags by name, without AMX): as close to native as runs there.
Results are kept per CPU in bench/results/cpu_builds/, and the report shows every CPU measured, so a run on
another host (AMD EPYC, Intel Xeon) adds its rows instead of replacing the others. A "note" written by hand into
a CPU's file (what a debugger showed about a crash, say) is kept across runs and shown under its table.

`--emulate EPYC-Rome,EPYC-Milan` also runs every build under QEMU's user-mode emulator (`qemu-x86_64 -cpu
MODEL`, Debian's qemu-user) as that CPU: its instruction set, not its speed. Each build evaluates a short prompt
and generates a few tokens there; a build that uses an instruction the model lacks dies with SIGILL, and one
that runs must generate the very tokens it generates on the real CPU. That shows a build runs on a CPU the
session has no host of; `--rounds 0` runs only that, keeping the speeds measured before.

    .venv/bin/python -m bench.cpu_builds [--rounds 7] [--runs 3] [--builds portable,native,avx512] [--threads N]
                                         [--emulate EPYC-Rome,EPYC-Milan]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Section,
    Target,
    Timer,
    cpu_model,
    log,
    md_table,
    median,
    paragraphs,
    targets_table,
)
from memagent.llm.backends.embedded import default_model_path

sys.path.insert(0, str(ROOT / "scripts"))
import portable_wheels  # noqa: E402  (a script, not a package: scripts/ is put on the path above)

HOSTS = ROOT / "bench" / "results" / "cpu_builds"
AVX512 = ["-DGGML_AVX512=ON", "-DGGML_AVX512_VBMI=ON", "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON",
          "-DGGML_AVX_VNNI=ON"]  # fmt: skip
BUILDS: dict[str, tuple[list[str], str]] = {
    "portable": ([], "GGML_NATIVE=OFF, AVX2 + FMA + F16C + BMI2 (what `make install` builds)"),
    "native": (["-DGGML_NATIVE=ON"], "GGML_NATIVE=ON: -march=native, every feature the CPU advertises"),
    "avx512": (AVX512, "GGML_NATIVE=OFF with AVX-512 (F, VBMI, VNNI, BF16) and AVX-VNNI, no AMX"),
}
PROMPT_PARAGRAPH = (
    "The agent keeps core memory in named blocks, recall memory of every message and archival memory of long "
    "passages. Each turn it builds a system message, renders the conversation into one prompt, asks the model "
    "for a function call, runs it and stores what changed. "
)
GENERATED_TOKENS = 128
EMULATED_TOKENS = 8  # under emulation a token costs ~250 times as long: a short prompt and a few tokens

# Runs inside a fresh interpreter with one build first on sys.path. Prints one JSON line per run.
WORKER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import llama_cpp
print(json.dumps({"system_info": llama_cpp.llama_print_system_info().decode()}), flush=True)
model, threads, runs, prompt, n_gen = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
fixed = {"n_threads": threads, "n_threads_batch": threads} if threads else {}  # 0: the library's defaults
llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=512, verbose=False, seed=1, **fixed)
tokens = llm.tokenize(prompt.encode())
for _ in range(runs):
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    llm.eval(tokens)
    generated = []
    for _ in range(n_gen):  # greedy, and on past an end token: every build does the same work
        generated.append(llm.sample(temp=0.0))
        llm.eval([generated[-1]])
    perf = llama_cpp.llama_perf_context(llm.ctx)
    print(json.dumps({"prompt_tokens": perf.n_p_eval, "prompt_ms": perf.t_p_eval_ms,
                      "gen_tokens": perf.n_eval, "gen_ms": perf.t_eval_ms, "tokens": generated}), flush=True)
"""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def kernel_amx() -> str:
    """Whether the CPU advertises AMX, and whether the kernel grants a program its tile data (arch_prctl)."""
    if "amx_tile" not in cpu_flags():
        return "no AMX"
    import ctypes

    sys_arch_prctl, req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18
    granted = ctypes.CDLL(None).syscall(sys_arch_prctl, req_xcomp_perm, xfeature_xtiledata) == 0
    return f"AMX advertised; the kernel {'grants' if granted else 'refuses'} its tile data"


def build(name: str) -> Path:
    """The wheel for build `name` (built once, then taken from portable_wheels' cache)."""
    return portable_wheels.portable_wheel("llama-cpp-python", BUILDS[name][0], f"as the {name} build")


def unpack(wheel: Path, folder: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    for library in Path(folder, "llama_cpp", "lib").glob("*.so*"):
        library.chmod(0o755)
    return folder


def one_process(unpacked: Path, runs: int, threads: int | None, prompt: str = PROMPT_PARAGRAPH * 24,
                generate: int = GENERATED_TOKENS, emulator: tuple[str, ...] = ()) -> dict[str, Any]:
    """One fresh process of one build (under `emulator`, if given): its compiled features, median rates and the
    tokens it generated, or how it died. The default prompt is ~1,200 SmolLM2 tokens."""
    command = [*emulator, sys.executable, "-c", WORKER, str(unpacked), str(default_model_path()), str(threads or 0),
               str(runs), prompt, str(generate)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    info = next((r.pop("system_info") for r in records if "system_info" in r), "")
    records = [r for r in records if r]
    result: dict[str, Any] = {"features": portable_wheels.compiled_features(info)}
    if done.returncode != 0:
        code = done.returncode
        result["died"] = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        result["stderr"] = [line for line in done.stderr.splitlines() if "warning" not in line][-3:]
        return result
    result["tokens"] = records[0]["tokens"]
    result["prompt_tokens"] = records[0]["prompt_tokens"]
    result["prompt_tps"] = median([r["prompt_tokens"] / r["prompt_ms"] * 1000 for r in records])
    result["gen_tps"] = median([r["gen_tokens"] / r["gen_ms"] * 1000 for r in records])
    return result


def measure(wheels: dict[str, Path], rounds: int, runs: int, threads: int | None) -> dict[str, dict[str, Any]]:
    """Every build once per round, in turn, so drift in the machine's speed falls on all of them alike. A
    build's rates are medians over rounds; its ratios to the portable build are medians of per-round ratios."""
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in wheels}
    died: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cpu-builds-") as scratch:
        folders = {name: unpack(wheel, Path(scratch, name)) for name, wheel in wheels.items()}
        for round_number in range(1, rounds + 1):
            for name, folder in folders.items():
                if name in died:
                    continue
                log(f"round {round_number}/{rounds}: {name}")
                result = one_process(folder, runs, threads)
                if "died" in result:
                    died[name] = result
                else:
                    result.pop("tokens")
                    per_round[name].append(result)
    results: dict[str, dict[str, Any]] = {}
    base = per_round.get("portable") or []
    for name in wheels:
        if name in died:
            results[name] = died[name]
            continue
        rows = per_round[name]
        results[name] = {
            "features": rows[0]["features"],
            "prompt_tokens": rows[0]["prompt_tokens"],
            "prompt_tps": median([r["prompt_tps"] for r in rows]),
            "gen_tps": median([r["gen_tps"] for r in rows]),
            "rounds": len(rows),
        }
        if base and len(base) == len(rows):
            for key in ("prompt_tps", "gen_tps"):
                results[name][f"{key}_ratio"] = median([r[key] / b[key] for r, b in zip(rows, base, strict=True)])
    return results


def host_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "cpu"


def qemu(cpu: str) -> tuple[tuple[str, ...], str]:
    """The command prefix that runs a program as `cpu` (a QEMU CPU model such as EPYC-Rome), and the model's
    vendor ("AMD", "Intel") from QEMU's description of it or of its first version."""
    program = shutil.which("qemu-x86_64")
    if program is None:
        sys.exit("bench.cpu_builds: --emulate needs QEMU's user-mode emulator: apt-get install qemu-user")
    models = subprocess.run([program, "-cpu", "help"], capture_output=True, text=True).stdout
    described = dict(re.findall(r"^x86 (\S+)\s+(.*)$", models, re.MULTILINE))
    if cpu not in described:
        sys.exit(f"bench.cpu_builds: QEMU has no CPU model {cpu!r}: see `qemu-x86_64 -cpu help`")
    words = f"{described.get(cpu + '-v1', '')} {described[cpu]}".split()
    vendor = next((word for word in words if word in ("AMD", "Intel", "Hygon", "Zhaoxin")), "")
    return (program, "-cpu", cpu), vendor


def emulated(cpu: str, wheels: dict[str, Path], threads: int | None) -> dict[str, Any]:
    """Every build under QEMU as `cpu`: does it run, and does it generate what it generates on this CPU?"""
    emulator, vendor = qemu(cpu)
    version = subprocess.run([emulator[0], "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    host: dict[str, Any] = {"cpu": f"{vendor} {cpu} (emulated)".lstrip(), "emulated_by": f"{version} on {cpu_model()}",
                            "measured": time.strftime("%Y-%m-%d %H:%M %Z"), "builds": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cpu-builds-") as scratch:
        folders = {name: unpack(wheel, Path(scratch, name)) for name, wheel in wheels.items()}
        for name, folder in folders.items():
            log(f"{cpu}: {name}, on this CPU and then emulated")
            here = one_process(folder, 1, threads, PROMPT_PARAGRAPH, EMULATED_TOKENS)
            with Timer() as timer:
                result = one_process(folder, 1, threads, PROMPT_PARAGRAPH, EMULATED_TOKENS, emulator)
            if "died" in result:  # a build that dies before its system info is printed died loading the library
                result["outcome"] = result["died"] + ("" if result["features"] else " as the library loaded")
            elif "tokens" not in here:
                result["outcome"] = "runs (it dies on the real CPU: no tokens to compare)"
            else:
                same = result["tokens"] == here["tokens"]
                result["outcome"] = f"runs; {'the same' if same else '**other**'} tokens as on the real CPU"
                host["prompt_tokens"] = result["prompt_tokens"]
            result["features"] = result["features"] or here["features"]  # what it was compiled with, all the same
            host["builds"][name] = {"flags": BUILDS[name][1], "seconds": round(timer.seconds), **result}
    return host


def save_host(host: dict[str, Any]) -> None:
    HOSTS.mkdir(parents=True, exist_ok=True)
    path = HOSTS / f"{host_slug(host['cpu'])}.json"
    if path.exists():  # a note written by hand about this CPU (what gdb showed, say) outlives a new run
        host["note"] = json.loads(path.read_text()).get("note", "")
    path.write_text(json.dumps(host, indent=1) + "\n", encoding="utf-8")


def run(rounds: int, names: list[str], threads: int | None = None, runs: int = 3, emulate: Sequence[str] = ()
        ) -> Section:  # fmt: skip
    """`rounds` of the speed measurement on this CPU (0: none, keep the last), then the check under emulation
    of each CPU model in `emulate`."""
    with Timer() as timer:
        if "avx512f" not in cpu_flags():
            names = [n for n in names if n != "avx512"]
        if emulate and "portable" not in names:
            names = ["portable", *names]
        wheels = {name: build(name) for name in names}
        path = HOSTS / f"{host_slug(cpu_model())}.json"
        if rounds:
            host = {"cpu": cpu_model(), "amx": kernel_amx(), "threads": threads or "llama-cpp-python's default",
                    "rounds": rounds, "runs": runs, "measured": time.strftime("%Y-%m-%d %H:%M %Z"), "builds": {}}
            results = measure(wheels, rounds, runs, threads)
            host["builds"] = {name: {"flags": BUILDS[name][1], **results[name]} for name in names}
            save_host(host)
        elif not path.exists():
            sys.exit(f"bench.cpu_builds: --rounds 0 keeps the speeds measured before, and {path} has none")
        this_host = json.loads(path.read_text())
        checked = [emulated(cpu, wheels, threads) for cpu in emulate]
        for host in checked:
            save_host(host)
    hosts = [json.loads(p.read_text()) for p in sorted(HOSTS.glob("*.json"))]
    return timer.stamp(report(hosts, this_host, checked))


def _rate(result: dict[str, Any], key: str) -> str:
    if "died" in result:
        return f"**{result['died']}**"
    ratio = result.get(f"{key}_ratio")
    return f"{result[key]:.0f}" + (f" ({ratio:.2f}x)" if ratio is not None else "")


def emulated_table(host: dict[str, Any]) -> str:
    rows = []
    for name, result in host["builds"].items():
        features = ", ".join(result.get("features", [])) or "?"
        outcome = result["outcome"] if "died" not in result else f"**{result['outcome']}**"
        rows.append((name, features, outcome, f"{result['seconds']} s"))
    return (
        f"**{host['cpu']}**: {host['emulated_by']}, measured {host['measured']}. The CPU model's instruction set, "
        f"not its speed: {EMULATED_TOKENS} tokens generated greedily after a "
        f"{host.get('prompt_tokens', 'short')}-token prompt, compared with what the same build generates on the "
        "real CPU.\n\n"
        + md_table(("build", "compiled CPU features", "under emulation", "time"), rows)
        + (f"\n\n{host['note']}" if host.get("note") else "")
    )


def report(hosts: list[dict[str, Any]], this_host: dict[str, Any], checked: Sequence[dict[str, Any]] = ()
           ) -> Section:  # fmt: skip
    section = Section("cpu_builds", "Portable and native llama.cpp builds", ".venv/bin/python -m bench.cpu_builds")
    texts = [
        "SmolLM2-135M Q4_1 through llama-cpp-python 0.3.36, one fresh process per build: a "
        f"{this_host['builds'].get('portable', {}).get('prompt_tokens', '~1,000')}-token prompt evaluated, then "
        f"{GENERATED_TOKENS} tokens generated greedily, {this_host['runs']} times per process; the builds take "
        f"turns, one process each per round, {this_host['rounds']} rounds. Tokens per second from llama.cpp's own "
        "counters, medians; in brackets the median of the per-round ratios to the portable build on the same CPU.",
    ]
    for host in sorted(hosts, key=lambda host: "emulated_by" in host):  # real CPUs first
        if "emulated_by" in host:
            texts.append(emulated_table(host))
            continue
        rows = []
        for name, result in host["builds"].items():
            features = ", ".join(result.get("features", [])) or "?"
            rates = _rate(result, "prompt_tps"), _rate(result, "gen_tps")
            rows.append((name, result["flags"], features, *rates))
        headers = ("build", "CMake flags", "compiled CPU features", "prompt tokens/s", "generated tokens/s")
        texts.append(
            f"**{host['cpu']}** ({host['amx']}; {host['threads']} threads; measured {host['measured']}):\n\n"
            + md_table(headers, rows)
            + (f"\n\n{host['note']}" if host.get("note") else "")
        )
    measured = ", ".join(host["cpu"] for host in hosts if "emulated_by" not in host)
    emulated = ", ".join(host["cpu"].removesuffix(" (emulated)") for host in hosts if "emulated_by" in host)
    texts.append(
        f"CPUs measured so far: {measured}; emulated: {emulated or 'none'}. Each kind of host the project runs "
        "on (AMD EPYC, Intel Xeon) adds its own table when `make bench ARGS=\"--only cpu_builds\"` runs there; "
        "`--emulate MODEL` adds a QEMU CPU model's."
    )
    section.body = paragraphs(texts)
    portable = this_host["builds"].get("portable", {})
    cpu = this_host["cpu"]
    if portable and "died" not in portable:
        rates = f"{portable['prompt_tps']:.0f} prompt / {portable['gen_tps']:.0f} generated tok/s"
        section.summary.append(f"{cpu}: portable {rates}")
    for name, result in this_host["builds"].items():
        if name == "portable":
            ran = "died" not in result
            outcome = "runs" if ran else result["died"]
            section.targets.append(Target(f"portable build runs on {cpu}", "runs", outcome, ran))
            continue
        value = result.get("died") or (
            f"{result['gen_tps_ratio']:.2f}x generation, {result['prompt_tps_ratio']:.2f}x prompt of portable"
            if "gen_tps_ratio" in result else "measured"
        )
        section.targets.append(Target(f"{name} build on {this_host['cpu']}", "(measured)", value, None))
        section.summary.append(f"{name}: {value}")
    for host in checked:
        for name, result in host["builds"].items():
            outcome = result["outcome"]
            if name == "portable":
                ran = outcome.startswith("runs; the same")
                section.targets.append(Target(f"portable build on {host['cpu']}", "runs, same tokens", outcome, ran))
                section.summary.append(f"{host['cpu']}: portable {'runs' if ran else outcome}")
            else:
                section.targets.append(Target(f"{name} build on {host['cpu']}", "(measured)", outcome, None))
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="prompt + generation runs per process")
    parser.add_argument("--builds", default=",".join(BUILDS), help=f"from: {', '.join(BUILDS)}")
    parser.add_argument("--threads", type=int, default=None, help="default: llama-cpp-python's, as in a chat")
    parser.add_argument("--emulate", default="", help="QEMU CPU models to run every build as, e.g. EPYC-Rome")
    args = parser.parse_args()
    names = [n for n in args.builds.split(",") if n]
    unknown = set(names) - set(BUILDS)
    if unknown:
        parser.error(f"unknown build(s): {', '.join(sorted(unknown))}")
    emulate = [cpu for cpu in args.emulate.split(",") if cpu]
    section = run(args.rounds, names, args.threads, args.runs, emulate)
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
