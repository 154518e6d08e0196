"""Bench scripts loaded as modules for their tests (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(file_stem: str, name: str) -> ModuleType:
    """bench/<file_stem>.py as module `name`, loaded once; the sys.path entries it adds are removed."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{file_stem}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        path = list(sys.path)
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path[:] = path
    return sys.modules[name]
