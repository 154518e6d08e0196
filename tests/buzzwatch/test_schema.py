"""The event schema validates at the edge and round-trips."""

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from buzzwatch.schema import (
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    Alert,
    SchemaError,
    ScoredTweet,
    TweetEvent,
    is_blank,
    names_its_offset,
)


def _event_payload(**overrides):
    payload = {
        "id": "42",
        "created_at": "2015-02-24T11:35:52Z",
        "text": "@united late again",
        "brand": "united",
    }
    payload.update(overrides)
    return payload


def test_tweet_event_round_trips_through_json():
    event = TweetEvent.from_dict(_event_payload(lang="en", source="replay"))
    assert event.brands == ("united",)
    assert event.created_at == datetime(2015, 2, 24, 11, 35, 52, tzinfo=UTC)
    assert TweetEvent.from_json(event.to_json()) == event
    assert set(event.to_dict()) == set(TweetEvent.__dataclass_fields__)  # no field forgotten


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"text": ""}, "'text' must not be empty"),
        # zero-width space, non-joiner, joiner, word joiner, BOM: scored as the empty text (neutral, 0.88)
        ({"text": " \u200b\u200c\u200d\u2060\ufeff\n"}, "'text' must not be empty"),
        ({"text": "\ufe0f\U000e0100"}, "'text' must not be empty"),  # variation selectors alone
        ({"text": 7}, "'text' must be a string"),
        ({"created_at": "yesterday"}, "not an ISO 8601"),
        ({"created_at": "9999-12-31T23:59:59-05:00"}, "created_at is out of range once in UTC"),
        ({"created_at": "0001-01-01T00:00:00+05:00"}, "created_at is out of range once in UTC"),
        ({"created_at": "1970-01-01T00:00:00Z"}, "before the first tweet ever"),  # epoch 0: a 10 s stall
        # read as midnight, a day's tweets all fell in its first minute: a replay alerted at 00:00, 14 h early
        ({"created_at": "2026-11-25"}, "created_at '2026-11-25' is a date without a time of day"),
        ({"created_at": " 20261125 "}, "created_at '20261125' is a date without a time of day"),
        ({"brands": "x", "brand": None, "id": None}, "'id' is missing or empty"),  # a CSV's empty cell too
        ({"brands": [1]}, "'brands' must be a list"),
        ({"text": "bad \ud800 tweet"}, "'text' is not valid Unicode"),
        ({"brands": ["ok", "\udfff"]}, "'brands' is not valid Unicode"),
        ({"author_id": "\ud83d"}, "'author_id' is not valid Unicode"),
        ({"lang": "e\udc80"}, "'lang' is not valid Unicode"),
        ({"lang": ["en"]}, "'lang' must be a string"),  # was the language "['en']": counted apart as unread
        ({"source": 7}, "'source' must be a string"),
        # no id is this long: a 70 KB one was published by the ingester, then dead-lettered by the worker
        ({"id": "9" * 65}, "'id' is 65 characters long; an id has at most 64"),
        ({"id": "a\x00b"}, r"'id' holds a control character \('\\x00'\)"),  # PostgreSQL holds no NUL
        ({"retweet_of": "\x00"}, "'retweet_of' holds a control character"),
        # a brand names its alert mail, whose subject may not break a line: the alert was never sent
        ({"brands": ["uni\nted"]}, r"'brands' holds a control character \('\\n'\)"),
        (
            {"brands": ["united", "b" * 65]},
            "'brands' holds a brand of 65 characters; a brand id has at most 64",
        ),
        ({"author_id": "a" * 70_000}, "'author_id' is 70,000 characters long"),
        ({"retweet_of": 10**200}, "'retweet_of' is 201 characters long"),
    ],
)
def test_tweet_event_rejects_bad_fields_with_a_clear_message(overrides, message):
    with pytest.raises(SchemaError, match=message):
        TweetEvent.from_dict(_event_payload(**overrides))


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        (" \t\n\u3000", True),
        ("\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u202e\u2066\u3164\ufe0f\U000e0041", True),
        ("a\u200b", False),
        ("\u2764\ufe0f", False),  # a heart and its emoji variation selector
        ("\u0301", False),  # a combining accent alone still shows (on a dotted circle)
        (".", False),
    ],
)
def test_a_text_is_blank_when_it_shows_no_character(text, blank):
    assert is_blank(text) is blank


def test_a_text_with_a_visible_character_keeps_its_invisible_ones():
    text = "\u200bcoder \U0001f469\u200d\U0001f4bb on board \u2764\ufe0f"  # a ZWJ emoji sequence
    assert TweetEvent.from_dict(_event_payload(text=text)).text == text


def test_an_id_of_the_longest_length_is_accepted():
    longest = "i" * MAX_ID_CHARS
    event = TweetEvent.from_dict(_event_payload(id=longest, author_id=longest, retweet_of=longest))
    assert (event.id, event.author_id, event.retweet_of) == (longest, longest, longest)


def test_ids_are_read_without_surrounding_whitespace():
    """A CSV cell " 42 " was tweet " 42 " to the ingester and tweet 42 to `buzzwatch replay`: one tweet
    counted twice, by two authors, depending on the path."""
    event = TweetEvent.from_dict(_event_payload(id=" 42 ", author_id=" bob\t", retweet_of="  "))
    assert (event.id, event.author_id, event.retweet_of) == ("42", "bob", None)


def test_oversized_and_undecodable_messages_are_refused():
    with pytest.raises(SchemaError, match="larger than"):
        TweetEvent.from_json(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")
    with pytest.raises(SchemaError, match="not valid JSON"):
        TweetEvent.from_json(b"\xff\xfe not json")
    with pytest.raises(SchemaError, match="nested too deeply"):
        TweetEvent.from_json(b"[" * 30_000 + b"]" * 30_000)
    with pytest.raises(SchemaError, match="not readable JSON: Exceeds the limit"):  # was a bare ValueError
        TweetEvent.from_json(b'{"id": ' + b"9" * 5000 + b', "text": "x"}')
    with pytest.raises(SchemaError, match="'text' is not valid Unicode"):  # a JSON escape, then unencodable
        TweetEvent.from_json(json.dumps(_event_payload(text="bad \ud800 tweet")).encode())


def test_midnight_written_out_is_a_time_of_day():
    for written in ("2026-11-25T00:00:00Z", "2026-11-25 00:00", "Wed Nov 25 00:00:00 +0000 2026"):
        assert TweetEvent.from_dict(_event_payload(created_at=written)).created_at == datetime(
            2026, 11, 25, tzinfo=UTC
        )


@pytest.mark.parametrize(
    "written",
    ["Tue Oct 18 21:53:25 +0000 2011", "Tue Oct 18 21:53:25 UTC 2011", "Tue Oct 18 23:53:25 +0200 2011"],
)
def test_twitter_classic_timestamps_are_accepted(written):
    """The X API v1.1 form, also with UTC named for the offset (the Sentiment140 data set's)."""
    event = TweetEvent.from_dict(_event_payload(created_at=written))
    assert event.created_at == datetime(2011, 10, 18, 21, 53, 25, tzinfo=UTC)
    assert names_its_offset(written)


def test_scored_tweet_and_alert_round_trip():
    event = TweetEvent.from_dict(_event_payload())
    scored = ScoredTweet(
        event, "negative", {"negative": 0.9, "neutral": 0.05, "positive": 0.05}, "v1", "Late Flight"
    )
    assert ScoredTweet.from_dict(scored.to_dict()) == scored
    message = replace(scored, tweet=replace(event, text="annulé✈️")).to_json()  # compact, UTF-8 unescaped
    assert b'": ' not in message and b", " not in message and "annulé✈️".encode() in message
    assert ScoredTweet.from_dict(json.loads(message)) == replace(scored, tweet=replace(event, text="annulé✈️"))
    now = datetime(2015, 2, 24, 12, 0, tzinfo=UTC)
    alert = Alert(
        "united", now, now, now, 0.8, 0.3, 40, 6.5, ("delay",), ("42",), reasons={"Late Flight": 0.7}
    )
    assert Alert.from_dict(alert.to_dict()) == alert


def test_scored_tweet_carries_its_language_and_older_messages_default_to_supported():
    event = TweetEvent.from_dict(_event_payload())
    french = ScoredTweet(
        event,
        "negative",
        {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
        "v1",
        language="fr",
        language_supported=False,
    )
    payload = french.to_dict()
    assert (payload["language"], payload["language_supported"]) == ("fr", False)
    assert ScoredTweet.from_dict(payload) == french
    for key in ("language", "language_supported"):
        del payload[key]  # a message from a worker that predates the field
    older = ScoredTweet.from_dict(payload)
    assert (older.language, older.language_supported) == ("und", True)
    with pytest.raises(SchemaError, match="language_supported"):
        ScoredTweet.from_dict({**french.to_dict(), "language_supported": "no"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"probabilities": {"negative": float("nan")}}, "probability 'negative' is nan, not between 0 and 1"),
        ({"probabilities": {"negative": float("inf")}}, "probability 'negative' is inf, not between 0 and 1"),
        ({"probabilities": {"negative": 3.0}}, "probability 'negative' is 3.0, not between 0 and 1"),
        ({"probabilities": {"negative": "0.9"}}, "probability 'negative' must be a number"),
        ({"probabilities": [0.9, 0.1]}, "field 'probabilities' must be an object"),
        ({"negative_reason": ["Late Flight"]}, "field 'negative_reason' must be a string or null"),
    ],
)
def test_a_scored_tweet_that_would_poison_a_baseline_is_refused(overrides, message):
    """The detector sums the negative probability into the brand's saved baseline: a NaN was taken as it
    was, and stayed in the brand's state for good; a reason that is a list broke the explanation counts."""
    payload = {**_event_payload(), "label": "negative", "probabilities": {"negative": 0.9}, **overrides}
    with pytest.raises(SchemaError, match=re.escape(message)):
        ScoredTweet.from_dict(json.loads(json.dumps(payload)))


def test_a_probability_rounded_past_one_is_clamped():
    payload = {
        **_event_payload(),
        "label": "negative",
        "probabilities": {"negative": 1.0000001, "neutral": 0.0},
    }
    assert ScoredTweet.from_dict(payload).probabilities == {"negative": 1.0, "neutral": 0.0}
