"""Files a reader never sees half-written: written beside their final path, synced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def atomic_text_output(path: Path, *, newline: str | None = "") -> Iterator[TextIO]:
    """A text handle whose content replaces `path` only if the block completes (full disk: old file kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp makes 0600
        with os.fdopen(descriptor, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (links and relative paths resolved; a missing one by its name)."""
    try:
        return first.samefile(second)
    except OSError:
        return first.resolve() == second.resolve()
