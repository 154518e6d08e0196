"""The summer-time bench replays what it says: the shipped brand turns with Paris's clock and the fixed one
keeps the offset before the change; its alerts are counted in the week they fall in; a missed buzz is told."""

from __future__ import annotations

import math
from types import ModuleType

import pytest

from .loading import load_bench


def _bench() -> ModuleType:
    return load_bench("detection_dst", "bench_detection_dst")


def test_the_quiet_weeks_of_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    monkeypatch.setattr(bench, "DAYS_BEFORE", 3)
    monkeypatch.setattr(bench, "DAYS_AFTER", 2)
    change, fixed = bench.CHANGES["summer time (29 Mar)"]
    weeks = bench.quiet_weeks(change, fixed, 0, rate=1.0)
    assert set(weeks) == {"followed", "fixed", "no change"}
    assert weeks["followed"]["error"] < weeks["fixed"]["error"] / 2  # 0.063 against 0.138
    assert weeks["no change"]["error"] < weeks["fixed"]["error"] / 2  # its own clock, kept
    for figures in weeks.values():
        assert figures["week_before"] >= 0 and figures["week_after"] >= 0


def test_a_buzz_after_the_change_is_timed_from_its_start() -> None:
    bench = _bench()
    change, fixed = bench.CHANGES["winter time (25 Oct)"]
    delays = bench.buzz_delay(change, fixed, 1, local_hour=7, per_minute=4.0)
    assert set(delays) == {"followed", "fixed"}
    assert all(0.0 < delay < 30.0 for delay in delays.values())  # a clear buzz: alerted, after its start


def test_the_buzz_line_tells_the_missed_ones() -> None:
    line = _bench()._buzz_line(
        "morning rise", 7, 2.0, [{"followed": 5.0, "fixed": math.nan}, {"followed": 4.0, "fixed": 6.5}]
    )
    assert "median delay followed 4.5 min, fixed 6.5 min" in line
    assert "missed 0 / 1 of 2" in line
    assert line.endswith("buzz by buzz: -2.5")
