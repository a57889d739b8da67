"""The llama.cpp that `make install-test` installed is the portable build, in process and in llama-server:
AVX2 and nothing past it, so it runs on every x86-64 host (issue 12: a -march=native build died with SIGILL on
an Intel Xeon that advertises AMX its kernel has not enabled). Both report the CPU features compiled in."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest
from servers import llama_server_argv, smollm2_path, start_server

# ggml lists only the features it was compiled with: `CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | ...`
FEATURE = re.compile(r"\b([A-Z][A-Z0-9_]*) = 1\b")
PAST_THE_BASELINE = ("AVX512", "AVX_VNNI", "AMX")

x86_64_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the portable baseline is x86-64's AVX2"
)


def compiled_features(system_info: str) -> set[str]:
    cpu = system_info[system_info.index("CPU :") :].splitlines()[0]
    return set(FEATURE.findall(cpu))


def assert_portable(features: set[str]) -> None:
    assert {"AVX2", "FMA", "F16C"} <= features, features
    assert not [f for f in features if f.startswith(PAST_THE_BASELINE)], features


@x86_64_only
@pytest.mark.real_model
def test_the_embedded_llama_cpp_is_built_for_any_x86_64_cpu() -> None:
    import llama_cpp

    assert_portable(compiled_features(llama_cpp.llama_print_system_info().decode()))


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
    assert "CPU :" in log, log[-2000:]
    assert_portable(compiled_features(log))
