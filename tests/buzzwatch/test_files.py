"""The check-or-write mode every generator script shares (buzzwatch.files.check_or_write)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buzzwatch.files import check_or_write


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(up to date, stale, missing) generated files on disk."""
    current, stale, missing = tmp_path / "current.txt", tmp_path / "stale.txt", tmp_path / "missing.txt"
    current.write_text("same\n", encoding="utf-8")
    stale.write_text("old\n", encoding="utf-8")
    return current, stale, missing


def test_check_names_stale_and_missing_files_and_writes_nothing(
    files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    current, stale, missing = files
    expected = {current: "same\n", stale: "new\n", missing: "fresh\n"}

    assert check_or_write(expected, check=True, command="python build.py") == 1

    error = capsys.readouterr().err
    assert "stale.txt" in error and "missing.txt" in error and "current.txt" not in error
    assert "run: python build.py" in error
    assert stale.read_text(encoding="utf-8") == "old\n" and not missing.exists()


def test_write_rewrites_only_stale_files_then_check_passes(
    files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    current, stale, missing = files
    before = current.stat().st_mtime_ns
    expected = {current: "same\n", stale: "new\r\nline\n", missing: "fresh\n"}

    assert check_or_write(expected, check=False, command="python build.py") == 0

    assert stale.read_bytes() == b"new\r\nline\n"  # the text exactly, no newline translation
    assert missing.read_text(encoding="utf-8") == "fresh\n"
    assert current.stat().st_mtime_ns == before
    written = capsys.readouterr().out
    assert "stale.txt" in written and "missing.txt" in written and "current.txt" not in written
    assert check_or_write(expected, check=True, command="python build.py") == 0
