"""Token speed of llama.cpp built portably (what `make install` builds) against builds for this very CPU.

Each build of llama-cpp-python is made by scripts/portable_wheels.py (kept in its wheel cache, so a second
run builds nothing), unpacked to a folder of its own and run in a fresh process on SmolLM2-135M: a fixed
~1,000-token prompt is evaluated and 128 tokens are generated greedily, `--runs` times; the rates are
llama.cpp's own counters (llama_perf_context), medians of the runs. A build that dies on this CPU is
reported with its signal: that is what a build made with -march=native does on a host whose kernel has not
enabled all that the CPU advertises (AMX on some Intel Xeons).

Builds: `portable` (the AVX2 baseline memagent ships), `native` (GGML_NATIVE=ON, -march=native), and on a CPU
with AVX-512, `avx512` (the AVX-512 and VNNI flags by name, without AMX): as close to native as runs there.
Results are kept per CPU in bench/results/cpu_builds/, and the report shows every CPU measured, so a run on
another host (AMD EPYC, Intel Xeon) adds its rows instead of replacing the others.

    .venv/bin/python -m bench.cpu_builds [--runs 5] [--builds portable,native,avx512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
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

# Runs inside a fresh interpreter with one build first on sys.path. Prints one JSON line per run.
WORKER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import llama_cpp
model, threads, runs, prompt, n_gen = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                      verbose=False, seed=1)
tokens = llm.tokenize(prompt.encode())
for _ in range(runs):
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    llm.eval(tokens)
    for _ in range(n_gen):  # greedy, and on past an end token: every build does the same work
        llm.eval([llm.sample(temp=0.0)])
    perf = llama_cpp.llama_perf_context(llm.ctx)
    print(json.dumps({"prompt_tokens": perf.n_p_eval, "prompt_ms": perf.t_p_eval_ms,
                      "gen_tokens": perf.n_eval, "gen_ms": perf.t_eval_ms}), flush=True)
"""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def kernel_amx() -> str:
    """Whether the CPU advertises AMX, and whether the kernel lets programs use its tile data."""
    if "amx_tile" not in cpu_flags():
        return "no AMX"
    try:
        text = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "AMX advertised; kernel state unknown"
    if "AMX Tile data" in text:
        return "AMX advertised and enabled"
    if "AMX Tile config" in text:
        return "AMX advertised, but the kernel enables only its tile config, not its tile data"
    return "AMX advertised; kernel state unknown"


def build(name: str) -> Path:
    """The wheel for build `name` (built once, then taken from portable_wheels' cache)."""
    extra, _ = BUILDS[name]
    requirement = portable_wheels.pinned_requirement("llama-cpp-python")
    cmake_args = portable_wheels.portable_cmake_args() + portable_wheels.PACKAGE_ARGS["llama-cpp-python"] + extra
    directory = portable_wheels.wheel_dir(requirement, cmake_args)
    wheel = portable_wheels.cached_wheel(directory)
    if wheel is None:
        log(f"building llama-cpp-python ({name}); this takes minutes")
        wheel = portable_wheels.build_wheel(requirement, cmake_args, directory, f"as the {name} build")
    return wheel


def measure(wheel: Path, runs: int, threads: int) -> dict[str, Any]:
    """Rates of one build, or how it died."""
    prompt = PROMPT_PARAGRAPH * 24  # ~1,000 SmolLM2 tokens
    with tempfile.TemporaryDirectory(prefix="cpu-build-") as unpacked:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked)
        for library in Path(unpacked, "llama_cpp", "lib").glob("*.so*"):
            library.chmod(0o755)
        command = [sys.executable, "-c", WORKER, unpacked, str(default_model_path()), str(threads), str(runs),
                   prompt, str(GENERATED_TOKENS)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        code = done.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        return {"died": how, "stderr": done.stderr.strip().splitlines()[-3:]}
    return {
        "prompt_tokens": records[0]["prompt_tokens"],
        "prompt_tps": median([r["prompt_tokens"] / r["prompt_ms"] * 1000 for r in records]),
        "gen_tps": median([r["gen_tokens"] / r["gen_ms"] * 1000 for r in records]),
        "runs": len(records),
    }


def host_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "cpu"


def run(runs: int, names: list[str], threads: int) -> Section:
    with Timer() as timer:
        host = {"cpu": cpu_model(), "amx": kernel_amx(), "threads": threads, "runs": runs,
                "measured": time.strftime("%Y-%m-%d %H:%M %Z"), "builds": {}}  # fmt: skip
        if "avx512f" not in cpu_flags():
            names = [n for n in names if n != "avx512"]
        for name in names:
            wheel = build(name)
            log(f"measuring {name}")
            host["builds"][name] = {"flags": BUILDS[name][1], **measure(wheel, runs, threads)}
        HOSTS.mkdir(parents=True, exist_ok=True)
        (HOSTS / f"{host_slug(host['cpu'])}.json").write_text(json.dumps(host, indent=1) + "\n", encoding="utf-8")
    return timer.stamp(report([json.loads(p.read_text()) for p in sorted(HOSTS.glob("*.json"))], host))


def _rate(result: dict[str, Any], key: str, base: dict[str, Any] | None) -> str:
    if "died" in result:
        return f"**{result['died']}**"
    ratio = ""
    if base and "died" not in base:
        ratio = f" ({result[key] / base[key]:.2f}x)"
    return f"{result[key]:.0f}{ratio}"


def report(hosts: list[dict[str, Any]], this_host: dict[str, Any]) -> Section:
    section = Section("cpu_builds", "Portable and native llama.cpp builds", ".venv/bin/python -m bench.cpu_builds")
    texts = [
        "SmolLM2-135M Q4_1 through llama-cpp-python 0.3.36, one fresh process per build: a "
        f"{this_host['builds'].get('portable', {}).get('prompt_tokens', '~1,000')}-token prompt evaluated, then "
        f"{GENERATED_TOKENS} tokens generated greedily, {this_host['runs']} times; tokens per second from "
        "llama.cpp's own counters, medians, and in brackets the ratio to the portable build on the same CPU.",
    ]
    for host in hosts:
        rows = []
        base = host["builds"].get("portable")
        for name, result in host["builds"].items():
            rows.append((name, result["flags"], _rate(result, "prompt_tps", base), _rate(result, "gen_tps", base)))
        texts.append(
            f"**{host['cpu']}** ({host['amx']}; {host['threads']} threads; measured {host['measured']}):\n\n"
            + md_table(("build", "CMake flags", "prompt tokens/s", "generated tokens/s"), rows)
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
            f"{result['gen_tps'] / portable['gen_tps']:.2f}x generation, "
            f"{result['prompt_tps'] / portable['prompt_tps']:.2f}x prompt of portable"
            if portable and "died" not in portable else "measured"
        )
        section.targets.append(Target(f"{name} build on {this_host['cpu']}", "(measured)", value, None))
        section.summary.append(f"{name}: {value}")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builds", default=",".join(BUILDS), help=f"from: {', '.join(BUILDS)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    names = [n for n in args.builds.split(",") if n]
    unknown = set(names) - set(BUILDS)
    if unknown:
        parser.error(f"unknown build(s): {', '.join(sorted(unknown))}")
    section = run(args.runs, names, args.threads)
    print(section.body)
    print()
    print(targets_table(section.targets))


if __name__ == "__main__":
    main()
