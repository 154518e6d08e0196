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


def worker_service_present() -> bool:
    """Whether worker/ holds the Pub/Sub push service yet (a Flask app), not only the detector and replay."""
    return any("Flask(" in path.read_text(encoding="utf-8") for path in (REPO_ROOT / "worker").glob("*.py"))


# Until the worker's push service lands (issue 3), the checks that need it are expected to fail, strictly:
# they turn into ordinary tests, that must pass, the moment worker/ contains the service.
AWAITING_WORKER = pytest.mark.xfail(
    not worker_service_present(),
    reason="the worker push service (issue 3) is not in worker/ yet",
    strict=True,
)
