"""`buzzwatch worker`'s command line: what cannot work is refused in one line before the server starts."""

from __future__ import annotations

import pytest

from buzzwatch.cli import build_parser


@pytest.mark.parametrize(
    ("arguments", "variables", "message"),
    [
        (["--threads", "0"], {}, "argument --threads: '0' is not a positive whole number"),
        (["--workers", "-2"], {}, "argument --workers: '-2' is not a positive whole number"),
        (
            [],
            {"WORKER_THREADS": "many"},
            "'many' is not a positive whole number (from the option or $WORKER_THREADS)",
        ),
        (
            [],
            {"WEB_CONCURRENCY": "0"},
            "'0' is not a positive whole number (from the option or $WEB_CONCURRENCY)",
        ),
    ],
)
def test_a_bad_push_worker_count_is_one_clear_error(
    arguments: list[str],
    variables: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """0 or -2 became 1 without a word; a variable that is no number was 'invalid int value'."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["worker", "--mode", "push", *arguments])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
    parsed = build_parser().parse_args(["worker", "--threads", "4", "--workers", "2"])
    assert (parsed.threads, parsed.workers) == (4, 2)
