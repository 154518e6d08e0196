"""The state bench streams what it says, and its detector holds as much after day 2 as after day 1."""

from __future__ import annotations

from collections import Counter
from types import ModuleType

import pytest

from .loading import load_bench


def _bench() -> ModuleType:
    return load_bench("detection_state", "bench_detection_state")


def test_the_stream_is_a_busy_brand_with_a_negative_buzz_each_day() -> None:
    bench = _bench()
    day = list(bench.stream(per_minute=20, days=1))
    per_minute = Counter(int((one.tweet.created_at - bench.START).total_seconds() // 60) for one in day)
    assert len(per_minute) == 24 * 60
    buzz = sorted(minute for minute, count in per_minute.items() if count == 60)
    assert set(per_minute.values()) == {20, 60} and len(buzz) == bench.BUZZ_MINUTES
    assert buzz == list(range(buzz[0], buzz[0] + bench.BUZZ_MINUTES))  # one run of 30 minutes
    in_buzz = [
        one
        for one in day
        if buzz[0] <= (one.tweet.created_at - bench.START).total_seconds() // 60 <= buzz[-1]
    ]
    share = sum(one.label == "negative" for one in in_buzz) / len(in_buzz)
    assert share == pytest.approx(0.7, abs=0.05)
    assert len({one.tweet.id for one in day}) == len(day)
    assert 0.05 < sum(one.tweet.retweet_of is not None for one in day) / len(day) < 0.15
    times = [one.tweet.created_at for one in day]
    assert times == sorted(times)
    assert day[0].probabilities[day[0].label] == 0.8 and day[0].tweet.author_id


@pytest.mark.slow
def test_the_state_after_the_second_day_is_the_size_of_the_first() -> None:
    first, second = _bench().simulate(per_minute=10, days=2, report_days=[1, 2])
    assert (first.day, second.day) == (1, 2) and second.tweets == 2 * first.tweets
    assert first.alerts >= 1 and second.alerts > first.alerts  # each day's buzz is alerted
    assert second.brand_bytes <= 1.05 * first.brand_bytes
    assert (second.closed, second.chunks) == (first.closed, first.chunks) == (120, 60)
    assert second.ids <= 1.1 * first.ids and second.reference_forms <= second.reference == 1000
