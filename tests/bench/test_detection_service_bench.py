"""The detection-service benchmark feeds what it says, and runs end to end on a tiny stream."""

from __future__ import annotations

from collections import Counter
from types import ModuleType

import pytest

from .loading import load_bench


def _bench() -> ModuleType:
    return load_bench("detection_service", "bench_detection_service")


def test_tweets_are_spread_evenly_over_brands_and_event_time() -> None:
    scored = _bench().make_scored(1000, 40, event_minutes=10)
    per_brand = Counter(one.tweet.brands for one in scored)
    assert len(per_brand) == 40 and set(per_brand.values()) == {25}
    assert len({one.tweet.id for one in scored}) == 1000
    times = [one.tweet.created_at for one in scored]
    assert times == sorted(times)
    assert (times[-1] - times[0]).total_seconds() == pytest.approx(600, abs=1)
    assert {one.label for one in scored} == {"negative", "neutral", "positive"}
    assert all(one.negative_reason is None for one in scored if one.label != "negative")


@pytest.mark.integration
@pytest.mark.slow
def test_the_bench_measures_the_real_service_on_both_stores(capsys: pytest.CaptureFixture[str]) -> None:
    _bench().main(["--tweets", "300", "--brands", "3", "6", "--repeat", "1", "--event-minutes", "5"])
    out = capsys.readouterr().out
    for store in ("sqlite", "postgresql"):
        for brands in (3, 6):
            line = next(x for x in out.splitlines() if f"{brands} brands  detection service, {store}" in x)
            assert "counted 300 duplicates 0" in line
        assert f"memory per brand ({store}" in out
    assert out.count("baseline: detector alone") == 2 and out.count("baseline: pull and ack only") == 2
