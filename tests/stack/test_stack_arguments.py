"""`buzzwatch demo` and `buzzwatch emulator` refuse bad arguments before anything starts, in one line."""

from __future__ import annotations

import pytest

from buzzwatch.cli import build_parser


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["demo", "--tweets", "-5"], "argument --tweets: '-5' is not a positive number of tweets"),
        (["demo", "--tweets", "0"], "argument --tweets: '0' is not a positive number of tweets"),
        (["demo", "--speed", "fast"], "argument --speed: --speed is a positive number or 'max'"),
        (["demo", "--speed", "-1"], "argument --speed: --speed is a positive number or 'max'"),
        (["emulator", "--port", "99999"], "argument --port: '99999' is not a port number 0-65535"),
        (["emulator", "--port", "-1"], "argument --port: '-1' is not a port number 0-65535"),
    ],
)
def test_a_bad_argument_is_refused_before_the_stack_starts(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """These used to start the whole stack (the ingester failed late) or the emulator (a Java trace)."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(arguments)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_pass_through_as_the_ingester_takes_them() -> None:
    parsed = build_parser().parse_args(["demo", "--tweets", "300", "--speed", "max"])
    assert (parsed.tweets, parsed.speed) == (300, "max")
    assert build_parser().parse_args(["emulator", "--port", "0"]).port == 0  # a free one
