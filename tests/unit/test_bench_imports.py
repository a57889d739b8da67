"""Every benchmark module imports: a refactor that moves a name the benchmarks use fails here, not hours into
`make bench`. (Only imports: the benchmarks themselves run real models for minutes to hours.)"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"))
def test_the_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py needs a docstring saying what it measures and how to run it"
