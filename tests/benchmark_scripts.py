"""Import a script of benchmarks/ as a module, so tests can check its pieces (skipped without it)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    script = BENCHMARKS / f"{name}.py"
    if not script.is_file():
        pytest.skip(f"benchmarks/{name}.py is not part of this checkout")
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
