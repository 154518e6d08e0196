"""score_events with the shipped champion: each scored tweet carries its language; a guess is flagged."""

from __future__ import annotations

from datetime import UTC, datetime

from buzzwatch.schema import ScoredTweet, TweetEvent
from models.predictor import Predictor
from worker.scoring import score_events


class RecordingReasons:
    """A reason model that remembers what it was asked to explain."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def predict(self, texts: list[str]) -> list[str]:
        self.asked.extend(texts)
        return ["Customer Service Issue" for _ in texts]


def event(tweet_id: str, text: str, lang: str = "und") -> TweetEvent:
    return TweetEvent(tweet_id, datetime(2026, 12, 4, tzinfo=UTC), text, ("Air Paradis",), lang=lang)


def test_each_scored_tweet_carries_its_language_and_whether_the_model_reads_it() -> None:
    french = "@AirParadis vol annulé encore une fois, service client nul, jamais plus avec vous"
    english = "@AirParadis flight cancelled again, customer service useless, never again"
    reasons = RecordingReasons()
    scored = score_events(
        [event("1", french), event("2", english), event("3", french + "!", lang="en"), event("4", "😡😡")],
        Predictor.load(),
        reasons,
    )
    languages = [(s.language, s.language_supported) for s in scored]
    assert languages == [("fr", False), ("en", True), ("en", True), ("und", True)]
    assert french not in reasons.asked  # an unreadable tweet gets no reason from an English classifier
    assert scored[0].negative_reason is None
    wire = ScoredTweet.from_dict(scored[0].to_dict())  # what the detection service reads off Pub/Sub
    assert (wire.language, wire.language_supported) == ("fr", False)
