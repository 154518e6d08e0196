"""Prints what each image's requirements install, measured in the current virtualenv.

No Docker engine runs here, so this is the closest figure to each image's size: the installed size of the
distributions requirements/<image>.txt pulls in (its full dependency closure, markers evaluated), next to
the training image's, measured in the same run.

    .venv/bin/python requirements/sizes.py
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS_DIR = Path(__file__).resolve().parent
IMAGES = ("api", "worker", "ingest", "streamlit", "train")


def closure(requirements_file: Path) -> set[str]:
    """The distributions a requirements file installs, as resolved in this environment."""
    pending = []
    for line in requirements_file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    seen: set[str] = set()
    while pending:
        name, extras = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for raw in requires:
            requirement = Requirement(raw)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return seen


def installed_bytes(names: set[str]) -> int:
    """The bytes on disk of those distributions' files."""
    total = 0
    for name in names:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in distribution.files or []:
            try:
                total += os.path.getsize(distribution.locate_file(file))
            except OSError:
                continue
    return total


def main() -> int:
    """One line per image."""
    for image in IMAGES:
        names = closure(REQUIREMENTS_DIR / f"{image}.txt")
        tensorflow = "with TensorFlow" if "tensorflow-cpu" in names else "no TensorFlow"
        print(
            f"{image:10s} {len(names):4d} distributions {installed_bytes(names) / 1e6:7.0f} MB  {tensorflow}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
