"""The check-or-write mode every generator script shares (buzzwatch.files.check_or_write), and the atomic
writers under it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from buzzwatch.files import atomic_binary_output, atomic_text_output, check_or_write


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


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_an_atomic_output_replaces_the_file_whole_or_not_at_all(tmp_path: Path, binary: bool) -> None:
    """A block that fails keeps the old file and leaves no temporary beside it; one that completes replaces
    it, keeping the old file's permissions."""
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    target.chmod(0o640)
    output = atomic_binary_output(target) if binary else atomic_text_output(target)
    with pytest.raises(RuntimeError), output as handle:
        handle.write(b"half" if binary else "half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["out.npy"]
    if binary:
        with atomic_binary_output(target) as handle:
            np.save(handle, np.arange(3.0))
        assert np.load(target).tolist() == [0.0, 1.0, 2.0]
    else:
        with atomic_text_output(target) as handle:
            handle.write("new\n")
        assert target.read_bytes() == b"new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [path.name for path in tmp_path.iterdir()] == ["out.npy"]


def test_a_pipe_or_a_device_is_written_as_it_is_not_replaced(tmp_path: Path) -> None:
    """Renamed over, /dev/null became an ordinary file (`score --output /dev/null`, as root); a pipe is
    read by whoever holds its other end. (A pipe stands for every file that is no regular one: a test
    that wrote to /dev/null would break the machine's if this failed.)"""
    fifo = tmp_path / "out.pipe"
    os.mkfifo(fifo)
    read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open returns
    try:
        with atomic_text_output(fifo) as handle:
            handle.write("label\nnegative\n")
        assert os.read(read_end, 100) == b"label\nnegative\n"
    finally:
        os.close(read_end)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not list(tmp_path.glob(".out.pipe.*"))
