"""Behavioural tests of the shipped champion (models/artifacts/champion): invariance, direction, minimum
functionality. They load the artifact the services load, through the same Predictor."""

from __future__ import annotations

import numpy as np
import pytest

from models.predictor import Predictor

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def champion() -> Predictor:
    return Predictor.load(None)


@pytest.mark.parametrize(
    "variants",
    [
        [
            "@united thanks for the great flight",
            "@Delta thanks for the great flight",
            "@AmericanAir thanks for the great flight",
            "thanks for the great flight @JetBlue",
        ],
        ["@united lost my bag again, worst service", "@SouthwestAir lost my bag again, worst service"],
        [
            "@VirginAmerica flight 714 to Boston boards at 6pm",
            "@USAirways flight 714 to Boston boards at 6pm",
        ],
    ],
)
def test_invariant_to_mentions(champion, variants):
    probabilities = champion.predict_proba(variants)
    labels = {champion.labels[index] for index in probabilities.argmax(axis=1)}
    assert len(labels) == 1
    assert np.max(np.abs(probabilities - probabilities[0])) < 0.15


@pytest.mark.parametrize(
    "text",
    [
        "@united thanks for the great flight",
        "@united lost my bag again, worst service",
        "new phone comes out on friday",
        "so happy with my new laptop",
    ],
)
def test_invariant_to_urls(champion, text):
    with_urls = [text, f"{text} http://t.co/Ab12Cd", f"{text} https://www.example.com/a?b=c"]
    probabilities = champion.predict_proba(with_urls)
    assert len(set(probabilities.argmax(axis=1))) == 1
    assert np.max(np.abs(probabilities - probabilities[0])) < 0.15


@pytest.mark.parametrize(
    ("positive", "negated"),
    [
        ("the flight was good", "the flight was not good"),
        ("the service was great", "the service was not great"),
        ("I love this airline", "I don't love this airline"),
        ("the crew was helpful", "the crew was not helpful"),
    ],
)
def test_negation_moves_the_label(champion, positive, negated):
    before, after = champion.predict([positive, negated])
    assert before.label == "positive"
    assert after.label != "positive"
    assert after.probabilities["positive"] < before.probabilities["positive"] - 0.3


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("@united thanks for the great flight, the crew was amazing!", "positive"),
        ("I love this airline", "positive"),
        ("This movie is awesome :)", "positive"),
        ("@united worst airline ever, lost my bag and no help", "negative"),
        ("@united my flight was delayed 5 hours. terrible service", "negative"),
        ("so sad that the concert got cancelled :(", "negative"),
        ("What time does the flight leave tomorrow?", "neutral"),
        ("@JetBlue flight 123 from JFK to LAX departs at 5pm", "neutral"),
    ],
)
def test_obvious_cases(champion, text, label):
    assert champion.predict([text])[0].label == label


def test_champion_metadata(champion):
    assert champion.labels == ("negative", "neutral", "positive")
    assert champion.meta["normaliser_version"]
    assert "airline_test_macro_f1" in champion.metrics
