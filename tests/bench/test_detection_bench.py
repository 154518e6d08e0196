"""The detection benchmark's stream generator keeps its promises, and its scoring counts what it says."""

from __future__ import annotations

import csv
import itertools
import random
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from buzzwatch.schema import TweetEvent, parse_timestamp
from worker.replay import ReplayRow

from .loading import load_bench


def _module(file_stem: str, name: str) -> ModuleType:
    """bench/<file_stem>.py as module `name`; the sys.path entries the script adds for itself are removed.

    `bench/detection.py` is not loaded as `detection`, a name a package may take. `detection_data` keeps
    its name, the one bench/detection.py imports it by.
    """
    return load_bench(file_stem, name)


data = _module("detection_data", "detection_data")
bench = _module("detection", "bench_detection")
DAYS = 4.0


@pytest.fixture(scope="module")
def pools() -> Any:
    return data.load_pools()


@pytest.fixture(scope="module")
def stream(pools: Any) -> Any:
    generator = data.Generator(pools, seed=5, days=DAYS)
    generator.build()
    return generator


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_tuning_and_report_seeds_are_fixed_disjoint_halves() -> None:
    assert len(bench.TUNING_SEEDS) >= 10 and len(bench.REPORT_SEEDS) >= 10
    assert not set(bench.TUNING_SEEDS) & set(bench.REPORT_SEEDS)


def test_same_seed_same_stream_other_seed_other_stream(pools: Any, stream: Any) -> None:
    again = data.Generator(pools, seed=5, days=DAYS)
    again.draw_brands()
    other = data.Generator(pools, seed=6, days=DAYS)
    other.draw_brands()
    assert [(b.name, b.rate, b.start) for b in again.brands] == [
        (b.name, b.rate, b.start) for b in stream.brands
    ]
    assert [(b.rate, b.start) for b in other.brands] != [(b.rate, b.start) for b in stream.brands]


def test_rows_are_ordered_unique_and_inside_their_brands_life(stream: Any) -> None:
    life = {b.name: (b.start, b.end) for b in stream.brands}
    times = [(row["created_at"], row["id"]) for row in stream.rows]
    assert times == sorted(times)
    assert len({row["id"] for row in stream.rows}) == len(stream.rows)
    for row in stream.rows:
        start, end = life[row["brand"]]
        assert start <= parse_timestamp(row["created_at"]) <= end


def test_brands_span_the_base_rates_and_families(stream: Any) -> None:
    roles = {b.role: b for b in stream.brands}
    assert set(roles) == {"quiet", "quiet_new_night", "mid", "mid_new_morning", "mid_shifted", "busy", "huge"}
    assert {b.family for b in stream.brands} == {"airline", "general"}
    normal = Counter(row["brand"] for row in stream.rows if row["kind"] == "normal")
    quiet = roles["quiet"]
    assert 0.1 <= normal[quiet.name] / (DAYS * 1440) <= 0.35  # about 0.2 a minute, weekends quieter
    huge = roles["huge"]
    assert huge.end - huge.start == timedelta(hours=3)
    assert normal[huge.name] / 180 >= 80  # hundreds a minute, for three hours only
    assert 2 <= roles["busy"].rate <= 10
    assert roles["mid_shifted"].shift_at is not None and abs(roles["mid_shifted"].shift_hours) >= 3


def test_new_brands_get_buzzes_in_their_first_hours_and_some_buzzes_are_at_night(stream: Any) -> None:
    for role in ("quiet_new_night", "mid_new_morning", "huge"):
        brand = next(b for b in stream.brands if b.role == role)
        assert brand.start > data.START
        hours = sorted(
            float(e["hours_after_brand_start"]) for e in stream.episodes if e["brand"] == brand.name
        )
        assert hours and hours[0] < 2
    night_brand = next(b for b in stream.brands if b.role == "quiet_new_night")
    assert night_brand.local_hour(night_brand.start) in (21, 22, 23, 0)
    assert any(int(e["local_hour"]) in data.NIGHT_HOURS for e in stream.episodes)


def test_buzzes_are_mostly_negative_and_topical_ones_keep_to_their_topic(stream: Any) -> None:
    by_event: dict[str, list[dict[str, str]]] = {}
    for row in stream.rows:
        by_event.setdefault(row["event"], []).append(row)
    topical, negatives, total = 0, 0, 0
    for episode in stream.episodes:
        tweets = by_event[episode["episode_id"]]
        negatives += sum(t["label"] == "negative" for t in tweets)
        total += len(tweets)
        assert sum(t["label"] == "negative" for t in tweets) / len(tweets) >= 0.6
        if episode["topic"]:
            topical += 1
            topic = data.TOPIC_BY_NAME[episode["topic"]]
            found = re.compile(rf"\b(?:{topic.pattern})\b", re.IGNORECASE)
            fresh = [t for t in tweets if t["kind"] == "episode" and not t["text"].startswith("RT @angry")]
            assert sum(bool(found.search(t["text"])) for t in fresh) / len(fresh) >= 0.5
    assert topical >= 2 and negatives / total >= 0.88  # 8% are replies


def test_decoys_are_what_they_claim(stream: Any) -> None:
    kinds = Counter(d["kind"] for d in stream.decoys)
    assert {"volume_surge", "positive_buzz", "retweet_storm", "rant", "rhythm_shift"} <= set(kinds)
    for decoy in stream.decoys:
        tweets = [row for row in stream.rows if row["event"] == decoy["event"]]
        if decoy["kind"] == "rant":
            assert len({t["author"] for t in tweets}) == 1 and all(t["label"] == "negative" for t in tweets)
        elif decoy["kind"] == "retweet_storm":
            assert len({t["text"] for t in tweets}) == 1 and len({t["author"] for t in tweets}) == len(tweets)
        elif decoy["kind"] == "positive_buzz":
            assert tweets and not any(t["label"] == "negative" for t in tweets)


def test_a_brands_events_never_overlap(stream: Any) -> None:
    for brand in stream.brands:
        if brand.role == "huge":
            continue
        spans = sorted(
            (parse_timestamp(e["start"]), parse_timestamp(e["end"]))
            for e in stream.episodes + [d for d in stream.decoys if d["kind"] != "rhythm_shift"]
            if e["brand"] == brand.name
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end


def test_texts_come_from_the_brands_kind_of_pool(pools: Any, stream: Any) -> None:
    general = {text for texts in pools.general.values() for text in texts}
    family = {b.name: b.family for b in stream.brands}
    for row in stream.rows:
        text = data.original_text(row["text"])  # a pool text drawn again carries its pass (`reused`)
        if family[row["brand"]] == "general":  # a synthetic retweet adds one "RT @x: " prefix
            assert text in general or re.sub(r"^RT @\w+: ", "", text) in general
        else:
            assert not data.AIRLINE_HANDLE_RE.search(row["text"])


def test_a_pool_text_drawn_again_is_a_tweet_of_its_own_scored_as_its_words() -> None:
    from models.text import tokenize
    from worker.detection.explain import TweetRecord, copy_key, is_term

    cycle = data._Cycle(["lost my bag", "score: 3 - 1"], random.Random(1))
    first, second = [cycle.next() for _ in range(2)], [cycle.next() for _ in range(4)]
    assert sorted(first) == ["lost my bag", "score: 3 - 1"]  # the first pass as the pool has them
    assert len(set(second)) == 4 and not set(second) & set(first)
    assert sorted(data.original_text(text) for text in second) == sorted(first * 2)
    assert data.original_text("score: 3 - 1") == "score: 3 - 1"  # a text's own number stays

    def key(text: str) -> str:
        return copy_key(TweetRecord(0.0, "id", True, text, 1.0))

    assert len({key(text) for text in first + second}) == 6  # not copies of each other
    for text in second:  # the mark is no term an explanation could name
        assert [t for t in tokenize(text) if is_term(t)] == [
            t for t in tokenize(data.original_text(text)) if is_term(t)
        ]


def test_no_brand_draws_copies_by_chance_within_an_hour(stream: Any) -> None:
    """The huge brand draws its pools' texts several times over: before `reused`, 2.7% of its tweets (11%
    on the unseen texts) were copies of one an hour before, discounted as one opinion amplified."""
    from worker.detection.explain import _normalised

    seen: set[tuple[str, str, str]] = set()
    drawn, copies = Counter(), Counter()
    for row in stream.rows:
        if row["text"].startswith("RT @"):
            continue  # the stream's own retweets are copies on purpose
        key = (row["brand"], row["created_at"][:13], _normalised(row["text"]))
        drawn[row["brand"]] += 1
        copies[row["brand"]] += key in seen
        seen.add(key)
    assert all(copies[brand] <= 0.005 * drawn[brand] for brand in drawn), copies


def test_the_benchmark_scores_a_reused_text_as_its_words(tmp_path: Path) -> None:
    scored: list[str] = []

    class Model:
        labels, model_version = ("negative", "neutral", "positive"), "m1"

        def predict_proba(self, texts: list[str]) -> Any:
            scored.extend(texts)
            return np.array([[len(text) % 3, 1.0, 0.0] for text in texts], dtype=float)

    def row(text: str) -> ReplayRow:
        when = parse_timestamp("2026-03-02T00:00:00Z")
        return ReplayRow(0, TweetEvent(id=text[:8], created_at=when, text=text, brands=("b",)), None, None)

    texts = ["lost my bag", data.reused("lost my bag", 2), "late again"]
    cached = bench._CachedModel(Model(), [row(text) for text in texts], tmp_path / "p.npy")
    assert scored == ["lost my bag", "late again"]
    assert (cached.predict_proba(texts[:2])[0] == cached.predict_proba(texts[:2])[1]).all()


def test_unseen_pools_hold_only_texts_the_model_never_trained_on(pools: Any) -> None:
    from models.data import dedupe_key, load_labelled, make_splits
    from models.text import normalise

    splits = make_splits(load_labelled())
    trained = {dedupe_key(norm) for norm in splits.train["norm_text"]}
    held_out = {dedupe_key(norm) for norm in splits.held_out()["norm_text"]}
    unseen = data.load_pools("unseen")
    for family in ("airline", "general"):
        for label, texts in getattr(unseen, family).items():
            every = set(getattr(pools, family)[label])
            # a fifth of the airline texts, about half the general ones: enough for a week's stream
            assert 0.15 * len(every) < len(texts) < 0.6 * len(every), (family, label)
            assert set(texts) <= every  # the same texts, with the same labels
            keys = {dedupe_key(normalise(text)) for text in texts}
            assert keys <= held_out and keys.isdisjoint(trained), (family, label)
    with pytest.raises(ValueError, match="texts must be one of"):
        data.load_pools("held-out")


def test_written_files_carry_no_reason_and_the_truth_separately(stream: Any, tmp_path: Path) -> None:
    stream.write(tmp_path)
    tweets = _read(tmp_path / "tweets.csv")
    assert list(tweets[0]) == ["id", "created_at", "text", "brand", "label", "author"]
    assert len(_read(tmp_path / "truth.csv")) == len(tweets)
    truth = bench.read_truth(tmp_path)
    assert len(truth.episodes) == len(stream.episodes) and len(truth.brands) == 7


def test_names_topic_by_a_whole_word_of_a_term_or_the_named_reason() -> None:
    luggage = data.TOPIC_BY_NAME["luggage"]
    assert data.names_topic(("bags", "wait"), None, luggage)
    assert data.names_topic(("#Luggage",), None, luggage)
    assert data.names_topic(("bag lost",), None, luggage)  # a phrase names it by one of its words
    assert not data.names_topic(("bagel", "baggages"), "late flight", luggage)
    assert data.names_topic((), "Lost Luggage", luggage)
    assert not data.names_topic((), None, data.TOPIC_BY_NAME["on hold"])


def test_the_named_reason_is_main_reason_where_alerts_have_it_else_the_largest_share() -> None:
    line = {
        "brand": "A",
        "fired_at": "2026-03-03T10:00:00Z",
        "window_start": "2026-03-03T09:55:00Z",
        "window_end": "2026-03-03T10:00:00Z",
        "negative_share": 0.8,
        "baseline_share": 0.3,
        "volume": 20,
        "score": 5.0,
        "top_terms": ["bag lost"],
        "sample_ids": [],
        "top_hashtags": ["delays"],
        "reasons": {"late flight": 0.6, "lost luggage": 0.4},
    }
    before = bench.fired(line)
    assert before.reason == "late flight" and before.terms == ("bag lost", "delays")
    assert bench.fired({**line, "main_reason": None}).reason is None
    assert bench.fired({**line, "main_reason": "lost luggage"}).reason == "lost luggage"


def _truth() -> Any:
    start = parse_timestamp("2026-03-03T10:00:00Z")
    episode = {
        "episode_id": "A#e0",
        "brand": "A",
        "rate": "0.2",
        "start": start,
        "end": start + timedelta(minutes=60),
        "kind": "sharp",
        "role": "quiet_new_night",
        "topic": "luggage",
        "hours_after_brand_start": "1.5",
        "local_hour": "2",
        "peak_per_minute": "1",
        "minutes": "60",
        "tweets": "60",
        "local_time": "Tue 02:00",
    }
    decoy = {
        "brand": "A",
        "kind": "rant",
        "start": start + timedelta(hours=5),
        "end": start + timedelta(hours=6),
    }
    brand = {"name": "A", "role": "quiet_new_night", "rate": "0.2", "start": "2026-03-03T08:30:00Z"}
    brand["end"] = "2026-03-10T08:30:00Z"
    return bench.SeedTruth([episode], [decoy], [brand]), start


def test_evaluate_matches_alerts_to_buzzes_and_decoys() -> None:
    truth, start = _truth()
    fired = [  # an alert names the brand id `buzzwatch replay` gives the truth's brand "A"
        bench.Fired("a", "new", start + timedelta(minutes=7), ("bags",), None),
        bench.Fired("a", "update", start + timedelta(minutes=30), (), None),
        bench.Fired("a", "new", start + timedelta(hours=5, minutes=20), (), None),  # in the rant
        bench.Fired("a", "update", start + timedelta(hours=9), (), None),  # updates are never false alerts
        bench.Fired("a", "new", start + timedelta(hours=20), (), None),
    ]
    episodes, brands = bench.evaluate(fired, truth, seed=4)
    (outcome,) = episodes
    assert outcome["detected"] and outcome["delay"] == 7 and outcome["explained"] and outcome["first_hours"]
    (brand,) = brands
    assert brand["false_by_decoy"] == {"rant": 1, "none": 1} and brand["weeks"] == 1
    figures = bench.headline(episodes, brands)
    assert figures["recall"] == 1 and figures["false_per_brand_week"] == 2
    assert figures["median_delay quiet (~0.2/min)"] == 7


def test_evaluate_misses_an_alert_after_the_buzz_and_its_grace() -> None:
    truth, start = _truth()
    late = bench.Fired("a", "new", start + timedelta(minutes=60 + 16), ("bags",), None)
    episodes, brands = bench.evaluate([late], truth, seed=4)
    assert not episodes[0]["detected"] and episodes[0]["explained"] is None
    assert brands[0]["false"] == 0  # within 75 minutes of the end: not counted as false either
    interval = bench.bootstrap(episodes, brands, resamples=50)
    assert interval["recall"] == (0.0, 0.0)


def _outcomes(detected: list[bool], false: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    episodes = [
        {
            "seed": 1,
            "episode": f"A#e{i}",
            "detected": hit,
            "delay": 5.0 if hit else None,
            "first_hours": i == 0,
            "band": ">= 1/min",
            "explained": None,
        }
        for i, hit in enumerate(detected)
    ]
    brands = [{"weeks": 1.0, "false": count} for count in false]
    return episodes, brands


def test_paired_differences_cancel_what_both_columns_share() -> None:
    base = _outcomes([True, False, True, False] * 5, [1, 0, 2, 0])
    other = _outcomes([True, True, True, False] * 5, [1, 0, 1, 0])
    differences = bench.paired_differences(base, other, resamples=200)
    value, low, high = differences["recall"]
    assert value == 0.25 and 0 < low <= value <= high  # the same buzzes resampled in both: no zero crossing
    assert differences["false_per_brand_week"][0] == -0.25
    lines = bench.differences_table({"oracle": base, "model a": base, "model b": other})
    assert lines[0] == "| difference | model b - model a |"
    assert any(line.startswith("| recall | +25.00 pt [") for line in lines)
    assert bench.differences_table({"oracle": base, "model": other}) == []
    columns = {"oracle": base, "model": base, "oracle unseen": base, "model unseen": other}
    lines = bench.differences_table(columns)
    assert lines[0] == "| difference | oracle unseen - oracle | model unseen - model |"
    assert any(line.startswith("| recall | +0.00 pt [+0.00, +0.00] | +25.00 pt [") for line in lines)


def test_compared_pairs_are_models_against_the_first_and_each_column_against_itself_on_all_texts() -> None:
    columns = ["oracle", "model a", "model b", "oracle unseen", "model a unseen", "model b unseen"]
    assert bench.compared_pairs(columns) == [
        ("model a", "model b"),
        ("oracle", "oracle unseen"),
        ("model a", "model a unseen"),
        ("model b", "model b unseen"),
    ]
    assert bench.compared_pairs(["oracle unseen", "model unseen"]) == []  # nothing on all texts to compare
    assert bench.compared_pairs(["oracle", "model 0ed7982b76"]) == []  # a version is not a text set


def test_paired_differences_refuse_columns_of_other_seeds() -> None:
    base = _outcomes([True, False], [0])
    other = _outcomes([True, False], [0])
    other[0][1]["seed"] = 3
    with pytest.raises(ValueError, match="same seeds"):
        bench.paired_differences(base, other, resamples=10)


def test_each_column_keeps_its_own_alerts_file(tmp_path: Path) -> None:
    assert bench._alerts_file(tmp_path, "oracle").name == "alerts-oracle.jsonl"
    assert bench._alerts_file(tmp_path, "model").name == "alerts-model.jsonl"
    assert (
        bench._alerts_file(tmp_path, "model ensemble-e35b21c8d4").name
        == "alerts-model-ensemble-e35b21c8d4.jsonl"
    )
    assert bench._alerts_file(tmp_path, "model", "-past168h").name == "alerts-model-past168h.jsonl"


def test_a_replay_returns_its_own_alerts_and_replaces_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "alerts-model.jsonl"
    out.write_text('{"brand": "left by a run alongside"}\n{"bra', encoding="utf-8")  # and half a line

    def replaying(rows: Any, detector: Any, handle: Any, summary: Any, model: Any = None) -> None:
        assert out.read_text(encoding="utf-8").startswith('{"brand": "left')  # nothing written meanwhile
        for brand in ("acme", "globex"):
            handle.write(f'{{"brand": "{brand}"}}\n')

    monkeypatch.setattr(bench, "run_replay", replaying)
    alerts = bench.replay([], None, None, out)
    assert alerts == [{"brand": "acme"}, {"brand": "globex"}]
    assert out.read_text(encoding="utf-8") == '{"brand": "acme"}\n{"brand": "globex"}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == [out.name]  # no partial file left


def test_only_roles_keeps_the_brands_of_those_roles_with_their_buzzes_and_decoys() -> None:
    truth, _ = _truth()
    other = {**truth.brands[0], "name": "B", "role": "mid"}
    both = bench.SeedTruth(
        [*truth.episodes, {**truth.episodes[0], "brand": "B", "episode_id": "B#e1"}],
        [*truth.decoys, {**truth.decoys[0], "brand": "B"}],
        [*truth.brands, other],
    )
    quiet = bench.only_roles(both, {"quiet", "quiet_new_night"})
    assert [b["name"] for b in quiet.brands] == ["A"]
    assert [e["brand"] for e in quiet.episodes] == ["A"] and [d["brand"] for d in quiet.decoys] == ["A"]


def _hourly_tweets(brand: str, hours: dict[int, tuple[int, int]]) -> list[tuple[str, Any, bool]]:
    """(brand, created_at, negative) rows: {hour: (tweets, negatives)} from 2015-02-20 00:00 UTC."""
    start = parse_timestamp("2015-02-20T00:00:00Z")
    return [
        (brand, start + timedelta(hours=hour, minutes=index), index < negatives)
        for hour, (tweets, negatives) in hours.items()
        for index in range(tweets)
    ]


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        # usual hours 10 tweets, 4 negative (median 4): twice that at 75% is a storm hour
        ({h: (10, 4) for h in range(10)} | {3: (12, 9)}, [(3, 4, 12, 9)]),
        # two storm hours with 2 calm hours between are one storm; 3 between are two
        ({h: (10, 4) for h in range(12)} | {2: (12, 9), 5: (11, 9)}, [(2, 6, 23, 18)]),
        ({h: (10, 4) for h in range(12)} | {2: (12, 9), 6: (11, 9)}, [(2, 3, 12, 9), (6, 7, 11, 9)]),
        # twice the negatives at the usual share is a volume surge, not a storm
        ({h: (10, 4) for h in range(10)} | {3: (20, 8)}, []),
        # under 0.7 but the week's share + 0.15 or more: a storm for a brand usually 40% negative
        ({h: (10, 4) for h in range(10)} | {3: (13, 8)}, [(3, 4, 13, 8)]),
        # a brand whose median hour holds no negative: empty hours count, and it takes 5
        ({0: (1, 0), 5: (5, 5), 9: (4, 4)}, [(5, 6, 5, 5)]),
    ],
)
def test_storms_are_runs_of_hours_with_twice_the_usual_negatives_mostly_negative(
    hours: dict[int, tuple[int, int]], expected: list[tuple[int, int, int, int]]
) -> None:
    start = parse_timestamp("2015-02-20T00:00:00Z")
    found = bench.storms(_hourly_tweets("A", hours))
    assert [
        (
            (s.start - start) // timedelta(hours=1),
            (s.end - start) // timedelta(hours=1),
            s.tweets,
            s.negatives,
        )
        for s in found
    ] == expected
    assert all(s.brand == "A" for s in found)


def test_storms_are_found_brand_by_brand() -> None:
    calm = {h: (10, 4) for h in range(10)}
    found = bench.storms(_hourly_tweets("A", calm | {3: (12, 9)}) + _hourly_tweets("B", calm))
    assert [s.brand for s in found] == ["A"]


def test_score_storms_counts_new_alerts_per_storm_and_outside_every_storm() -> None:
    start = parse_timestamp("2015-02-20T10:00:00Z")
    storm = bench.Storm("A", start, start + timedelta(hours=3), 60, 50)

    def alert(brand: str, kind: str, minutes: int) -> Any:
        return bench.Fired(brand, kind, start + timedelta(minutes=minutes), (), None)

    alerts = [
        alert("A", "new", -61),  # before the storm's margin: outside
        alert("A", "update", -30),  # its first alert, in the margin before it
        alert("A", "new", 20),
        alert("A", "new", 180 + 75),  # the last minute of the margin after it
        alert("A", "new", 180 + 76),  # outside
        alert("B", "new", 20),  # another brand's: outside
    ]
    (outcome,), outside = bench.score_storms([storm], alerts)
    assert outcome["new"] == 2 and outcome["delay"] == -30
    assert [(a.brand, a.fired_at) for a in outside] == [
        ("A", start - timedelta(minutes=61)),
        ("A", start + timedelta(minutes=256)),
        ("B", start + timedelta(minutes=20)),
    ]
    (quiet,), _ = bench.score_storms([storm], [])
    assert quiet == {"storm": storm, "new": 0, "delay": None}


def test_a_new_brands_past_is_its_ordinary_traffic_before_it_starts(pools: Any, tmp_path: Path) -> None:
    week = data.Generator(pools, seed=5)
    week.draw_brands()
    rows = _read(data.past(5, tmp_path, 24.0, pools))
    new = {b.name: b for b in week.brands if b.role in data.NEW_ROLES}
    assert {row["brand"] for row in rows} == set(new)  # only the brands added during the week
    for row in rows:
        moment = parse_timestamp(row["created_at"])
        assert new[row["brand"]].start - timedelta(hours=24) <= moment < new[row["brand"]].start
        assert row["id"].startswith("s5-10000")  # never one of the week's ids
    assert data.past(5, tmp_path, 24.0, pools).stat().st_size > 0  # written once, read back


def test_with_past_puts_each_brands_newest_past_just_before_its_first_tweet() -> None:
    def row(tweet_id: str, brand: str) -> ReplayRow:
        moment = parse_timestamp("2026-03-03T00:00:00Z")
        return ReplayRow(0, TweetEvent(id=tweet_id, created_at=moment, text="x", brands=(brand,)), None, None)

    live = [row("a1", "acme"), row("b1", "globex"), row("a2", "acme")]
    past = [row(f"p{i}", "globex") for i in range(5)] + [row("q0", "initech")]
    stream = [r.tweet.id for r in bench.with_past(live, past, newest=3)]
    assert stream == ["a1", "p2", "p3", "p4", "b1", "a2"]  # initech never came live: its past unused
