"""The scale-out benchmark injects the bad buzzes it says, and runs end to end on a tiny stream."""

from __future__ import annotations

from types import ModuleType

import pytest

from .loading import load_bench


def _bench() -> ModuleType:
    return load_bench("detection_scale", "bench_detection_scale")


def test_the_bad_buzzes_are_negative_bursts_of_the_named_brands_inside_the_stream() -> None:
    bench = _bench()
    background = bench.make_scored(600, 6, event_minutes=10)
    scored = bench.with_bad_buzzes(background, ["brand00002"], event_minutes=10, per_brand=50)
    extra = [one for one in scored if one.tweet.id.startswith("buzz-")]
    assert len(scored) == 650 and len(extra) == 50
    assert {one.tweet.brands for one in extra} == {("brand00002",)} and {one.label for one in extra} == {
        "negative"
    }
    times = [one.tweet.created_at for one in scored]
    assert (
        times == sorted(times)
        and times[0] <= extra[0].tweet.created_at <= extra[-1].tweet.created_at <= times[-1]
    )


@pytest.mark.integration
@pytest.mark.slow
def test_the_bench_counts_every_tweet_once_with_a_kill_and_a_move(capsys: pytest.CaptureFixture[str]) -> None:
    runs = _bench().main(
        [
            "--tweets",
            "1500",
            "--brands",
            "12",
            "--instances",
            "1",
            "2",
            "--event-minutes",
            "20",
            "--groups",
            "2",
        ]
    )
    assert [run.label for run in runs] == [
        "1 instance",
        "2 instances",
        "2 instances (kill -9 and restart)",
        "2 instances, shared database",
        "2 instances, shared database, groups moved",
    ]
    assert all(run.lost == 0 and run.double == 0 and run.misplaced == 0 for run in runs)
    assert all(sum(run.per_instance) == 1500 + 3 * 200 for run in runs)
    output = capsys.readouterr().out
    assert "killed -9 at" in output and "groups 1 asked for at" in output and "moved " in output
