"""`buzzwatch worker` with a model URI that leads to no artifact: one line naming BUZZWATCH_MODEL_URI, exit 2
(pull mode printed ModelLoadError's traceback; push mode crash-looped the server's processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.ports import free_port
from tests.support.commands import assert_a_missing_model_is_refused


@pytest.mark.parametrize("mode", ["pull", "push"])
def test_a_missing_model_path_is_one_line_and_exit_2(tmp_path: Path, mode: str) -> None:
    # The emulator is never reached: the model is checked first.
    emulator = f"127.0.0.1:{free_port()}"
    assert_a_missing_model_is_refused(
        tmp_path, "worker", "--mode", mode, "--host", "127.0.0.1", PUBSUB_EMULATOR_HOST=emulator
    )
