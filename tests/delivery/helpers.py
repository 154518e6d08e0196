"""Shared helpers for the delivery tests: repository paths and the linters shipped in the virtualenv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A linter binary: next to the running Python first (the project's .venv), else on PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: it is pinned in pyproject.toml's [dev] extra (make venv installs it)")
    return found
