"""The alert explanation: grouped copies, over-represented terms and hashtags, reasons, and the stats."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from detection.streams import START, background, burst, in_order, run, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig, TweetRecord, copy_key, explain
from worker.detection.explain import reference_counts
from worker.detection.stats import binomial_z, poisson_z, weighted_log_odds

SPIKE = START + timedelta(hours=38)  # day 2: every hour of the day has a baseline


def record(tweet_id: str, text: str, negative: bool = True, **extra: object) -> TweetRecord:
    return TweetRecord(
        ts=SPIKE.timestamp() + len(tweet_id),
        id=tweet_id,
        negative=negative,
        text=text,
        p_negative=0.9 if negative else 0.1,
        **extra,
    )


class FixedReasons:
    """A stand-in for models.reasons.ReasonClassifier that labels by keyword."""

    def predict(self, texts: list[str]) -> list[str]:
        return ["Lost Luggage" if "bag" in text else "Late Flight" for text in texts]


@pytest.mark.parametrize(
    ("first", "second", "same_group"),
    [
        ("My bag is lost http://t.co/x", "my bag is LOST!! https://t.co/y", True),
        ("RT @angry: my bag is lost", "my bag is lost", True),
        ("@united my bag is lost", "@delta my bag is lost", True),
        ("my bag is lost", "my flight is late", False),
    ],
)
def test_copy_key_groups_retweets_and_copies(first: str, second: str, same_group: bool) -> None:
    assert (copy_key(record("1", first)) == copy_key(record("2", second))) is same_group


def test_retweet_of_groups_whatever_the_text() -> None:
    assert copy_key(record("1", "a", retweet_of="9")) == copy_key(record("2", "b", retweet_of="9"))


def test_explanation_groups_copies_and_finds_the_buzz_words() -> None:
    storm = [
        record(f"rt{i}", "RT @angry: lost my bag again #lostbaggage", retweet_of="100") for i in range(30)
    ]
    others = [record(f"n{i}", f"my bag never arrived, lost at the airport {i}") for i in range(8)]
    others += [record(f"d{i}", f"delayed for hours at gate {i}") for i in range(3)]
    calm = [record(f"p{i}", "nice flight today", negative=False) for i in range(5)]
    reference = [f"great crew and a smooth flight number {i}" for i in range(200)]
    counts = reference_counts(reference, simple_tokenize)
    result = explain(storm + others + calm, counts, simple_tokenize, FixedReasons(), samples=5)
    ids = result["sample_ids"]
    assert len(ids) == len(set(ids)) <= 5
    storm_samples = [s for s in result["samples"] if s["id"].startswith("rt")]
    assert len(storm_samples) == 1 and storm_samples[0]["group_size"] == 30
    assert "lost" in result["top_terms"] and "bag" in result["top_terms"]
    assert "flight" not in result["top_terms"]
    assert result["top_hashtags"] == ("#lostbaggage",)
    assert result["reasons"]["Lost Luggage"] == pytest.approx(38 / 41, abs=1e-3)
    assert not any(s["id"].startswith("p") for s in result["samples"])
    assert storm_samples[0]["reason"] == "Lost Luggage"  # classified once for the whole group


def test_reasons_already_on_the_tweets_are_used_without_a_model() -> None:
    window = [record(f"a{i}", f"late again {i}", reason="Late Flight") for i in range(3)]
    window += [record("b", "rude agent", reason="Customer Service Issue")]
    result = explain(window, reference_counts([], simple_tokenize), simple_tokenize, reason_model=None)
    assert result["reasons"] == {"Late Flight": 0.75, "Customer Service Issue": 0.25}


def test_alerts_carry_the_explanation() -> None:
    tweets = background(41, seed=2) + burst(
        SPIKE, 20, 10, text="they lost my bag #lostbaggage", reason="Lost Luggage"
    )
    detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize, reason_model=FixedReasons())
    alert = next(a for a in run(detector, in_order(tweets)) if a.kind == "new")
    assert alert.reasons.get("Lost Luggage", 0) > 0.5
    assert "lost" in alert.top_terms and "#lostbaggage" in alert.top_hashtags
    assert alert.sample_ids and len(alert.samples) == len(alert.sample_ids)
    assert alert.baseline_volume > 0 and alert.episode_id.startswith("acme:")
    payload = alert.to_dict()
    assert payload["fired_at"].endswith("Z") and payload["top_terms"]


def test_a_failing_explanation_never_drops_the_alert() -> None:
    def broken(text: str) -> list[str]:
        raise RuntimeError("tokenizer down")

    tweets = background(41, seed=2) + burst(SPIKE, 20, 5)
    alerts = run(BuzzDetector(DetectorConfig(), tokenizer=broken), in_order(tweets))
    assert [a.kind for a in alerts].count("new") == 1 and alerts[0].top_terms == ()


@pytest.mark.parametrize(
    ("count", "expected", "sign"),
    [(10, 2.0, 1), (0, 5.0, -1), (3, 3.0, 0), (2, 0.5, 1)],
)
def test_poisson_z_sign(count: float, expected: float, sign: int) -> None:
    z = poisson_z(count, expected)
    assert (z > 0) - (z < 0) == sign


def test_poisson_z_is_conservative_for_tiny_counts() -> None:
    assert poisson_z(2, 0.5) < 2.0  # two tweets on a quiet night are not an event
    assert poisson_z(20, 5) > 4.5


def test_binomial_z_matches_the_normal_approximation_for_large_counts() -> None:
    n, share = 10_000, 0.25
    k = n * share + 3 * math.sqrt(n * share * (1 - share))
    assert binomial_z(k, n, share) == pytest.approx(3.0, abs=0.1)
    assert binomial_z(0, 0, 0.3) == 0.0


def test_weighted_log_odds_ranks_distinctive_words_first() -> None:
    focus = {"luggage": 20, "the": 30, "rare": 1}
    reference = {"the": 900, "luggage": 5, "rare": 0}
    scores = weighted_log_odds(focus, 30, reference, 1000)
    assert scores["luggage"] > scores["rare"] > scores["the"]
    assert scores["luggage"] > 5 and scores["the"] < 1.96  # "the" would not be reported


def test_a_failing_reason_model_keeps_the_rest_of_the_explanation() -> None:
    class Broken:
        def predict(self, texts: list[str]) -> list[str]:
            raise RuntimeError("model file missing")

    window = [record(f"a{i}", f"lost bag again {i}") for i in range(4)]
    result = explain(window, reference_counts(["fine"], simple_tokenize), simple_tokenize, Broken())
    assert result["reasons"] == {} and len(result["samples"]) == 4
