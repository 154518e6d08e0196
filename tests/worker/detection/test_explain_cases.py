"""What an alert names, on tables of cases: the topic against the brand's usual negatives, phrases, voices,
reasons that fit (or none), and the shares the terms and samples stand for."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.support.streams import START, background, burst, in_order, run, scored, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig, TweetRecord, explain
from worker.detection.explain import ReferenceCounts, named_words, reference_counts, standout_reason

NO_BACKGROUND = ReferenceCounts({}, {}, 0)
FILLERS = [f"filler{i}" for i in range(300)]
USUAL_NEGATIVES = [
    "delayed again at the gate, worst airline",
    "i hate waiting, delayed for hours",
    "bad service and rude crew",
    "customer service never answers the phone",
    "lost my bag, terrible",
    "flight cancelled and no rebooking, awful",
]
ALL_TWEETS = [
    *USUAL_NEGATIVES,
    "great crew and a smooth flight",
    "thanks for the upgrade",
    "boarding now at the gate",
    "nice lounge today",
    "landed on time",
    "love the new seats",
]


def _voices(texts: Sequence[str], authors: Sequence[str] | None = None) -> list[TweetRecord]:
    """One negative record per text, each with a filler word of its own so no two are copies."""
    rng = random.Random(1)
    return [
        TweetRecord(
            ts=1000.0 + index,
            id=f"t{index}",
            negative=True,
            text=f"{text} {rng.choice(FILLERS)}{index}",
            p_negative=0.9,
            author=authors[index] if authors else f"user{index}",
        )
        for index, text in enumerate(texts)
    ]


def _reference(texts: Sequence[str], copies: int = 50) -> ReferenceCounts:
    return reference_counts([f"{text} {i}" for i in range(copies) for text in texts], simple_tokenize)


CASES = {
    # name: (reference texts, buzz texts, authors, must be named, must not be named)
    "the topic stands out against the usual negatives": (
        USUAL_NEGATIVES,
        ["the wifi is down again, so bad, i hate it"] * 8 + USUAL_NEGATIVES,
        None,
        {"wifi"},
        {"bad", "hate", "delayed", "gate", "hours"},
    ),
    "everyday complaints are no topic against the usual negatives": (
        USUAL_NEGATIVES,
        USUAL_NEGATIVES * 10,
        None,
        set(),
        {"delayed", "gate", "hours"},
    ),
    "... though against all tweets they would look like one": (
        ALL_TWEETS,
        USUAL_NEGATIVES * 10,
        None,
        {"delayed"},
        set(),
    ),
    "sentiment words are not a topic": (
        USUAL_NEGATIVES,
        ["worst ever, i hate you, terrible and awful"] * 10,
        None,
        set(),
        {"worst", "hate", "terrible", "awful"},
    ),
    "a phrase when its words are weak": (
        ["the gate was crowded", "our agent was late", "gate changed twice", "no agent around"],
        ["the gate agent was shouting"] * 8 + ["the gate was crowded", "no agent around"],
        None,
        {"gate agent"},
        {"gate", "agent"},
    ),
    "a plural and its singular are one term": (
        USUAL_NEGATIVES,
        ["where is my suitcase"] * 2 + ["two suitcases missing"] * 2 + USUAL_NEGATIVES,
        None,
        {"suitcase"},
        set(),
    ),
    "one author's repeated phrase is one voice": (
        USUAL_NEGATIVES,
        ["broken seat recliner again"] * 6 + USUAL_NEGATIVES,
        ["ann"] * 6 + [f"u{i}" for i in range(6)],
        set(),
        {"broken", "seat", "broken seat", "recliner"},
    ),
    "... while many authors saying it are a topic": (
        USUAL_NEGATIVES,
        ["broken seat recliner again"] * 6 + USUAL_NEGATIVES,
        None,
        {"broken", "seat", "recliner"},
        set(),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_what_the_explanation_names(name: str) -> None:
    reference, buzz, authors, named, not_named = CASES[name]
    result = explain(_voices(buzz, authors), _reference(reference), simple_tokenize, background=NO_BACKGROUND)
    words = named_words(result["top_terms"]) | set(result["top_terms"])
    assert named <= words, result["top_terms"]
    assert not (not_named & set(result["top_terms"])), result["top_terms"]
    if not named:
        assert result["terms_share"] is None
    else:
        assert 0 < result["terms_share"] <= 1


@pytest.mark.parametrize(
    ("reasons", "main"),
    [
        ({"lost luggage": 8, "late flight": 2}, "lost luggage"),  # an airline buzz with one complaint
        ({"late flight": 4, "lost luggage": 3, "bad flight": 3}, None),  # spread thin: none stands out
        (
            {"lost luggage": 6, "can't tell": 4, "late flight": 3, "bad flight": 2, "long lines": 2},
            "lost luggage",
        ),
        ({"lost luggage": 5, "late flight": 4, "bad flight": 4, "long lines": 2}, None),  # no clear lead
        ({"can't tell": 7, "customer service issue": 3}, None),  # a non-airline brand: no known reason fits
        ({"Can't Tell": 4, "Lost Luggage": 6}, "Lost Luggage"),  # the oracle file's spelling
        ({}, None),
    ],
)
def test_a_reason_stands_out_or_the_alert_says_none_does(reasons: dict[str, int], main: str | None) -> None:
    total = sum(reasons.values())
    assert standout_reason({reason: n / total for reason, n in reasons.items()}) == main


class ReasonsByWord:
    """Answers as the reason model does: airline words get a reason, anything else "can't tell"."""

    def predict(self, texts: list[str]) -> list[str]:
        return ["lost luggage" if "bag" in text else "can't tell" for text in texts]


def test_a_non_airline_buzz_has_its_topic_and_no_made_up_reason() -> None:
    buzz = ["my phone screen cracked after the update"] * 8 + ["lost my bag"] * 2
    result = explain(
        _voices(buzz), _reference(USUAL_NEGATIVES), simple_tokenize, ReasonsByWord(), background=None
    )
    assert result["main_reason"] is None and result["reasons"]["can't tell"] == pytest.approx(0.8)
    assert {"screen", "cracked"} <= named_words(result["top_terms"])


def test_the_shares_the_samples_and_terms_stand_for() -> None:
    storm = [
        TweetRecord(
            1000.0 + i, f"rt{i}", True, "RT @a: the wifi is down", 0.9, retweet_of="7", author=f"r{i}"
        )
        for i in range(30)
    ]
    result = explain(
        storm + _voices(["the wifi is down again"] * 5 + USUAL_NEGATIVES[:5]),
        _reference(USUAL_NEGATIVES),
        simple_tokenize,
        samples=3,
        background=NO_BACKGROUND,
    )
    assert "wifi" in named_words(result["top_terms"])
    sizes = sum(sample["group_size"] for sample in result["samples"])
    assert result["samples_share"] == pytest.approx(sizes / 40, abs=1e-4) and sizes >= 32
    assert result["terms_share"] == pytest.approx(35 / 40, abs=1e-4)  # the storm and the five wifi tweets


def test_the_detector_compares_a_buzz_with_the_brand_usual_negatives() -> None:
    """A brand whose everyday complaints are delays: a buzz about the wifi names the wifi, not delays, nor
    the brand's own account that the buzz addresses (@acme, in none of its usual complaints)."""
    normal = background(40, seed=3)
    rng = random.Random(4)
    complaints = [  # the brand's usual negatives: delays, every day
        scored(
            f"usual-{i}", START + timedelta(minutes=rng.uniform(360, 2400)), "negative", f"delayed again {i}"
        )
        for i in range(300)
    ]
    spike = START + timedelta(hours=38)
    buzz = burst(spike, 20, 10, text="@acme the wifi is down and we are delayed", reason="Bad Flight")
    detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)
    # The buzz's alert (the complaints start with the first morning, which may alert on the first day).
    alerts = run(detector, in_order(normal + complaints + buzz))
    alert = next(a for a in alerts if a.kind == "new" and a.fired_at >= spike)
    assert "wifi" in named_words(alert.top_terms)
    assert "delayed" not in alert.top_terms and "acme" not in named_words(alert.top_terms)
    assert alert.started_at is not None and abs((alert.started_at - spike).total_seconds()) <= 120
    assert alert.started_at <= alert.fired_at
