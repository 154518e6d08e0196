"""An image's /app tree rebuilt from its Dockerfile's COPY lines, and Python run against only that tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .dockerfiles import ServiceImage
from .helpers import REPO_ROOT
from .imports import image_files

# Hide the repository's editable install, so only the copied files are importable.
ISOLATE = (
    "import sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if not getattr(f, '__module__', '').startswith('__editable')]; "
    "sys.path[:] = [p for p in sys.path if p not in ('', {repo!r}) and not p.startswith('__editable')]; "
    "sys.path.insert(0, {app!r}); "
)


def build_layout(image: ServiceImage, root: Path) -> Path:
    """Copy what the Dockerfile copies into root/app; returns that folder."""
    app = root / "app"
    for relative, source in image_files(REPO_ROOT / image.dockerfile).items():
        target = app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return app


def _environment(tmp_path: Path, env: dict[str, str] | None) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "BUZZWATCH_VAR_DIR": str(tmp_path / "var"),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }


def start_in_layout(
    app: Path, code: str, tmp_path: Path, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start Python code in the layout as a background process, its output going to `log_path`."""
    prelude = ISOLATE.format(repo=str(REPO_ROOT), app=str(app))
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", prelude + code],
            cwd=app,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(tmp_path, env),
        )


def run_in_layout(
    app: Path, code: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Python code with only the layout (and the virtualenv's packages) importable."""
    prelude = ISOLATE.format(repo=str(REPO_ROOT), app=str(app))
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
        env=_environment(tmp_path, env),
    )
