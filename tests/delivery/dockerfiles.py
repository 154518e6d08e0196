"""Reading Dockerfiles and .dockerignore the way the Docker builder does, enough for the delivery tests."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from .helpers import REPO_ROOT


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its arguments (line continuations joined)."""

    keyword: str
    arguments: str
    line: int


@dataclass(frozen=True)
class ServiceImage:
    """One image: its Dockerfile, its requirements file, and whether it serves HTTP on $PORT."""

    name: str
    dockerfile: str
    requirements: str
    web: bool
    serving: bool

    @property
    def lock(self) -> str:
        """The file the image installs: every package the requirements pull in, pinned, with hashes."""
        return self.requirements.removesuffix(".txt") + ".lock"


IMAGES: tuple[ServiceImage, ...] = (
    ServiceImage("api", "api/Dockerfile", "requirements/api.txt", web=True, serving=True),
    ServiceImage("worker", "worker/Dockerfile", "requirements/worker.txt", web=True, serving=True),
    ServiceImage("ingest", "ingest/Dockerfile", "requirements/ingest.txt", web=False, serving=True),
    ServiceImage(
        "streamlit", "streamlit_app/Dockerfile", "requirements/streamlit.txt", web=True, serving=True
    ),
    ServiceImage("train", "models/Dockerfile.train", "requirements/train.txt", web=False, serving=False),
)


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions in order; comments and blank lines dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
    return instructions


def copy_sources(instruction: Instruction) -> list[str]:
    """The source paths of a COPY/ADD (flags and the destination left out)."""
    arguments = instruction.arguments
    parts = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    parts = [part for part in parts if not part.startswith("--")]
    return parts[:-1]


def env_values(instructions: list[Instruction]) -> dict[str, str]:
    """Every ENV key=value pair (the modern form)."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.arguments):
                key, sep, value = token.partition("=")
                if sep:
                    values[key] = value
    return values


def dockerignore_patterns(path: Path = REPO_ROOT / ".dockerignore") -> list[tuple[str, bool]]:
    """(pattern, is_exception) pairs in file order."""
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:] if exception else line
        patterns.append((pattern.strip("/"), exception))
    return patterns


def _matches(pattern: str, relative: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.fullmatch(regex, relative) is not None or fnmatch.fnmatchcase(relative, pattern)


def is_ignored(relative: str, patterns: list[tuple[str, bool]]) -> bool:
    """Whether the builder leaves `relative` (or a folder above it) out of the context; last match wins."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern, exception in patterns:
        if any(_matches(pattern, candidate) for candidate in candidates):
            ignored = not exception
    return ignored
