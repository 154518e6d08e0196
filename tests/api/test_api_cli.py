"""`buzzwatch ui` refuses a port that is not one before Streamlit starts (it printed a bind traceback)."""

from __future__ import annotations

import pytest

from buzzwatch.cli import build_parser


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_a_bad_ui_port_is_one_clear_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["ui", "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: '{port}' is not a port number 1-65535" in capsys.readouterr().err
    assert build_parser().parse_args(["ui", "--port", "8502"]).port == 8502
