"""The event schema that travels between ingest, the worker, the API and the app.

`TweetEvent` is what the ingester publishes on the tweets topic (JSON in the message data, with the
attributes `brand`, `lang` and `source`). `ScoredTweet` is what the worker publishes on the scored topic.
`Alert` is a bad-buzz alert as the detector emits it and the app reads it.
Parsing validates at the edge and raises `SchemaError` with a message a person can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

SCHEMA_VERSION = 1
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
MAX_TEXT_CHARS = 10_000
MAX_MESSAGE_BYTES = 64 * 1024
# A tweet, author or retweeted tweet id: X's are at most 19 digits and a handle 15 characters; other sources'
# ids (a UUID, a SHA-256 in hex) fit too. A longer one is no id: a 70 KB id was published by the ingester,
# then dead-lettered by the worker as an oversized message, and every alert that samples it carries it.
# The detection database's seen-id column holds this many (VARCHAR(64) on PostgreSQL): at 128, one tweet with
# a 65-character id failed every checkpoint there, and the stream stopped with it.
MAX_ID_CHARS = 64
# A brand id (`united`, a data file's value slugified): a few words. The detection database keys each alert by
# its brand and times in at most 300 characters (VARCHAR(300) on PostgreSQL): a brand of 280 characters failed
# every checkpoint there once it alerted, and the stream stopped with it.
MAX_BRAND_CHARS = 64
# Pub/Sub takes attribute values of at most 1,024 bytes (the emulator does not check): a tweet's brands travel
# comma-joined in its `brand` attribute, its language in `lang`. At these limits both fit; past them the
# publish was refused by Pub/Sub, and a scoring worker's refused publish fails every push of its group.
MAX_BRANDS = 15  # 15 brands of MAX_BRAND_CHARS and their commas: 974 bytes
MAX_LANG_CHARS = 35  # the longest language tag BCP 47 asks every reader to take; X's are 2 to 5
# The fields (columns) a data file names a tweet's author in, the first non-empty one read as
# `TweetEvent.author_id`: `name` is the Twitter US Airline Sentiment data set's author handle.
AUTHOR_FIELDS = ("author_id", "author", "name")
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")
# What shows nothing: white space and Unicode's Default_Ignorable_Code_Point characters (zero-width space
# and joiners, word joiner, byte-order mark, variation selectors, direction marks, tag characters, Hangul
# fillers). A text of these alone was scored as the empty text is (neutral, 0.88) and counted as a tweet.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# The body of a regular expression's character class (the API's OpenAPI text pattern uses it too).
INVISIBLE_CLASS = "\\s" + "".join(f"{chr(first)}-{chr(last)}" for first, last in _IGNORABLE_RANGES)
INVISIBLE_TEXT = re.compile(f"[{INVISIBLE_CLASS}]*")
# No tweet is older than the first one (Jack Dorsey's, 2006-03-21). An older created_at is a wrong year or an
# epoch 0: as a brand's first tweet, the detector then spent seconds walking to the next real one.
FIRST_TWEET_AT = datetime(2006, 3, 21, tzinfo=UTC)
# How far ahead of the reader's clock a created_at may be: a local time read as UTC (no offset given) is at
# most 14 h ahead (UTC+14). Beyond, it is a wrong year or day; let through, it moved its brand's event time so
# far ahead that the detector dropped every real tweet of that brand as late until then.
MAX_AHEAD = timedelta(hours=15)
PROBABILITY_SLACK = 1e-6  # a float32 softmax may give 1.0000001: rounding, not a wrong probability
# Who wrote a piece of feedback (the `provenance` column of the API's feedback export): the caller had the
# API key, the app's token, or nothing (feedback on a prediction id the API issued). Training takes the
# trusted ones only unless told otherwise; rows from before the column existed have none.
FEEDBACK_PROVENANCES: tuple[str, ...] = ("api_key", "app_token", "anonymous_by_id")
TRUSTED_FEEDBACK_PROVENANCES = frozenset({"api_key", "app_token"})


class SchemaError(ValueError):
    """A message does not follow the event schema."""


def first_filled(record: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The value of the first of the named fields that is filled (not missing, None or empty), else None.

    How every edge reads a field that goes by several names (`AUTHOR_FIELDS`, the brand's)."""
    return next((record[name] for name in names if record.get(name)), None)


def is_blank(text: str) -> bool:
    """Whether a text shows no character (INVISIBLE_TEXT alone): every edge takes it as an empty text. A text
    with a visible character is kept whole, its invisible ones with it (an emoji's zero-width joiners)."""
    return INVISIBLE_TEXT.fullmatch(text) is not None


CLASSIC_ZONE_NAME = re.compile(r" (?:UTC|GMT) (\d{4})$")


def _as_written(value: Any, field_name: str) -> datetime:
    """The timestamp as written: ISO 8601 or Twitter's classic form, with its offset or naive."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{field_name} must be a non-empty ISO 8601 string")
    raw = value.strip()
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:  # "Mon May 11 03:17:40 UTC 2009" (the Sentiment140 data set's) names UTC for the offset
            return datetime.strptime(CLASSIC_ZONE_NAME.sub(r" +0000 \1", raw), "%a %b %d %H:%M:%S %z %Y")
        except ValueError as exc:
            raise SchemaError(f"{field_name} is not an ISO 8601 timestamp: {raw!r}") from exc


def names_its_offset(value: Any) -> bool:
    """Whether a valid timestamp says its UTC offset (Z, +01:00); one that does not is read as UTC."""
    return _as_written(value, "timestamp").tzinfo is not None


def parse_timestamp(value: Any, field_name: str = "created_at") -> datetime:
    """Parse an ISO 8601 (or Twitter's classic) timestamp into an aware UTC datetime (naive: UTC)."""
    parsed = _as_written(value, field_name)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59-05:00 is past the last moment a datetime holds
        raise SchemaError(f"{field_name} is out of range once in UTC: {value!s}") from exc


def _tweet_time(value: Any) -> datetime:
    """A tweet's created_at (`parse_timestamp`); SchemaError when it is a date without a time of day, which
    read as midnight put the whole day's tweets in its first minute (a spreadsheet export cut to dates)."""
    created_at = parse_timestamp(value)
    if isinstance(value, str) and created_at.time() == time():
        try:
            date.fromisoformat(value.strip())
        except ValueError:
            return created_at  # midnight written out
        raise SchemaError(
            f"created_at {value.strip()!r} is a date without a time of day: each tweet needs its time "
            "(2026-11-25T21:00:00Z), or the day's tweets all count in its first minute"
        )
    return created_at


def check_not_ahead(event: TweetEvent, now: datetime) -> TweetEvent:
    """The live edges' rule (the ingester, the scoring worker): the event, or SchemaError when its
    created_at is more than MAX_AHEAD ahead of `now` (a replay of old files has no clock to compare with)."""
    ahead = event.created_at - now
    if ahead > MAX_AHEAD:
        raise SchemaError(
            f"created_at {format_timestamp(event.created_at)} is {ahead / timedelta(hours=1):,.0f} h "
            "ahead of this machine's clock: no tweet comes from the future (a wrong year or day?)"
        )
    return event


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, the one format BuzzWatch writes."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def load_json(
    data: bytes | str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    """Decode one JSON document from outside; SchemaError says why it is unreadable (never another error
    but what `object_pairs_hook`, building each object, raises).

    `json.loads` raises RecursionError, not a decode error, on arrays nested a few thousand levels deep, and
    a bare ValueError on an integer of more digits than Python converts (4,300), whose message goes on to tell
    the reader to raise `sys.set_int_max_str_digits()`: that part is left out.
    """
    try:
        return json.loads(data, object_pairs_hook=object_pairs_hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise SchemaError("not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise SchemaError(f"not readable JSON: {str(exc).split(';')[0]}") from exc


def _unicode(value: str, key: str) -> str:
    """`value`, refused when it cannot be written as UTF-8: a lone surrogate (`\\ud800`) is not text."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise SchemaError(f"field {key!r} is not valid Unicode: {exc.reason} at {exc.start}") from exc
    return value


def _brand(value: str) -> str:
    """`value`, refused when it is longer than any brand id (MAX_BRAND_CHARS) or is not Unicode."""
    if len(value) > MAX_BRAND_CHARS:
        raise SchemaError(
            f"field 'brands' holds a brand of {len(value):,} characters; a brand id has at most "
            f"{MAX_BRAND_CHARS}"
        )
    return _without_control(_unicode(value, "brands"), "brands")


def _language(value: str) -> str:
    """`value`, refused when it is longer than any language tag (MAX_LANG_CHARS) or is not Unicode."""
    if len(value) > MAX_LANG_CHARS:
        raise SchemaError(
            f"field 'lang' is {len(value):,} characters long; a language tag has at most {MAX_LANG_CHARS}"
        )
    return _unicode(value, "lang")


def _without_control(value: str, key: str) -> str:
    """`value`, refused when it holds a control character: ids and brands are keys of the detection database,
    whose PostgreSQL text holds no NUL (one such tweet failed the seen-id lookup, then every checkpoint: the
    stream stopped), and a brand names its alert mail, whose subject may not break a line (the mail was never
    built, the alert never sent)."""
    found = CONTROL_CHARACTER.search(value)
    if found is not None:
        raise SchemaError(f"field {key!r} holds a control character ({found.group()!r}): no id or brand does")
    return value


def _require_str(payload: dict[str, Any], key: str) -> str:
    """The field as a non-blank string (an integer id is taken as its digits)."""
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "id":
        value = str(value)
    if value is None:  # absent, null, or a CSV's empty cell (its rows leave those out)
        raise SchemaError(f"field {key!r} is missing or empty")
    if not isinstance(value, str):
        raise SchemaError(f"field {key!r} must be a string")
    if is_blank(value):
        raise SchemaError(f"field {key!r} must not be empty")
    return _unicode(value, key)


def _id(value: str, key: str) -> str:
    """`value`, refused when it is longer than any id (MAX_ID_CHARS) or holds a control character."""
    if len(value) > MAX_ID_CHARS:
        raise SchemaError(
            f"field {key!r} is {len(value):,} characters long; an id has at most {MAX_ID_CHARS}"
        )
    return _without_control(value, key)


def _compact_json(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON without spaces or escaped non-ASCII: the form of every message BuzzWatch publishes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class TweetEvent:
    """One tweet as published by the ingester."""

    id: str
    created_at: datetime
    text: str
    brands: tuple[str, ...]
    lang: str = "und"
    source: str = "unknown"
    author_id: str | None = None
    retweet_of: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, payload: Any) -> TweetEvent:
        """Validate and build from a decoded JSON object."""
        if not isinstance(payload, dict):
            raise SchemaError("a tweet event must be a JSON object")
        # The one text rule: surrounding whitespace carries no meaning, and a tweet must read the same from
        # the live stream, a replay file or a redelivered message (same scores, same copy keys).
        text = _require_str(payload, "text").strip()
        if len(text) > MAX_TEXT_CHARS:
            raise SchemaError(f"field 'text' is longer than {MAX_TEXT_CHARS} characters")
        brands_raw = payload.get("brands", payload.get("brand", ()))
        if isinstance(brands_raw, str):
            brands_raw = [brands_raw] if brands_raw else []
        if not isinstance(brands_raw, list | tuple) or not all(isinstance(b, str) for b in brands_raw):
            raise SchemaError("field 'brands' must be a list of strings")
        named = [brand for brand in brands_raw if brand]
        if len(named) > MAX_BRANDS:
            raise SchemaError(f"field 'brands' names {len(named)} brands; a tweet names at most {MAX_BRANDS}")
        for key in ("lang", "source"):  # a list or a number was written as its repr: lang "['en']"
            if payload.get(key) is not None and not isinstance(payload[key], str):
                raise SchemaError(f"field {key!r} must be a string")
        optional = {}
        for key in ("author_id", "retweet_of"):  # ids, like `id`, read without surrounding whitespace
            value = payload.get(key)
            if value is not None and not isinstance(value, str | int):
                raise SchemaError(f"field {key!r} must be a string")
            written = None if value is None else str(value).strip()
            optional[key] = _id(_unicode(written, key), key) if written else None
        created_at = _tweet_time(payload.get("created_at"))
        if created_at < FIRST_TWEET_AT:
            raise SchemaError(
                f"created_at {format_timestamp(created_at)} is before the first tweet ever (2006-03-21)"
            )
        return cls(
            id=_id(_require_str(payload, "id").strip(), "id"),  # " 42 " in a CSV cell is tweet 42
            created_at=created_at,
            text=text,
            brands=tuple(map(_brand, named)),
            lang=_language(payload.get("lang") or "und"),
            source=_unicode(payload.get("source") or "unknown", "source"),
            **optional,
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> TweetEvent:
        """Validate and build from JSON bytes, refusing oversized or undecodable messages."""
        if len(data) > MAX_MESSAGE_BYTES:
            raise SchemaError(f"message is larger than {MAX_MESSAGE_BYTES} bytes")
        return cls.from_dict(load_json(data))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, written out by hand: `asdict` deep-copies and cost most of a publish."""
        return {
            "id": self.id,
            "created_at": format_timestamp(self.created_at),
            "text": self.text,
            "brands": list(self.brands),
            "lang": self.lang,
            "source": self.source,
            "author_id": self.author_id,
            "retweet_of": self.retweet_of,
            "schema_version": self.schema_version,
        }

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, the Pub/Sub message data."""
        return _compact_json(self.to_dict())


def _probabilities(value: Any) -> dict[str, float]:
    """A scored tweet's probabilities: label -> a number in [0, 1] (SchemaError otherwise); none: empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError("field 'probabilities' must be an object of label -> number")
    checked = {}
    for key, probability in value.items():
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise SchemaError(f"probability {key!r} must be a number")
        if not -PROBABILITY_SLACK <= probability <= 1.0 + PROBABILITY_SLACK:  # NaN fails this too
            raise SchemaError(f"probability {key!r} is {probability}, not between 0 and 1")
        checked[key] = min(1.0, max(0.0, float(probability)))
    return checked


@dataclass(frozen=True)
class ScoredTweet:
    """A tweet with the model's verdict, as published on the scored topic."""

    tweet: TweetEvent
    label: str
    probabilities: dict[str, float]
    model_version: str
    negative_reason: str | None = None
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    language: str = "und"  # the tweet's language as the scorer decided it (ISO 639-1, or und)
    language_supported: bool = True  # False: the model does not read this language; the verdict is a guess

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the tweet's fields plus the verdict."""
        payload = self.tweet.to_dict()
        payload.update(
            label=self.label,
            probabilities=self.probabilities,
            model_version=self.model_version,
            negative_reason=self.negative_reason,
            scored_at=format_timestamp(self.scored_at),
            language=self.language,
            language_supported=self.language_supported,
        )
        return payload

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, the scored topic's message data."""
        return _compact_json(self.to_dict())

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ScoredTweet:
        """Rebuild from `to_dict` output.

        The detector sums `probabilities["negative"]` into each brand's saved baseline, so one NaN, infinite
        or out-of-range probability would poison that brand for good: each must be a number in [0, 1].
        """
        label = payload.get("label")
        if label not in LABELS:
            raise SchemaError(f"field 'label' must be one of {', '.join(LABELS)}")
        supported = payload.get("language_supported", True)
        if not isinstance(supported, bool):
            raise SchemaError("field 'language_supported' must be true or false")
        reason = payload.get("negative_reason")
        if reason is not None and not isinstance(reason, str):
            raise SchemaError("field 'negative_reason' must be a string or null")
        return cls(
            tweet=TweetEvent.from_dict(payload),
            label=label,
            probabilities=_probabilities(payload.get("probabilities")),
            model_version=str(payload.get("model_version", "")),
            negative_reason=reason,
            scored_at=parse_timestamp(payload.get("scored_at"), "scored_at")
            if payload.get("scored_at")
            else datetime.now(UTC),
            language=str(payload.get("language") or "und"),
            language_supported=supported,
        )


@dataclass(frozen=True)
class Alert:
    """A bad-buzz alert; the first seven fields are the `replay --alerts-out` contract."""

    brand: str
    fired_at: datetime
    window_start: datetime
    window_end: datetime
    negative_share: float
    baseline_share: float
    volume: int
    score: float
    top_terms: tuple[str, ...]
    sample_ids: tuple[str, ...]
    kind: str = "new"  # "new" for the first alert of an episode, "update" when it grows
    episode_id: str = ""
    baseline_volume: float = 0.0
    top_hashtags: tuple[str, ...] = ()
    reasons: dict[str, float] = field(default_factory=dict)
    samples: tuple[dict[str, Any], ...] = ()
    authors: int | None = None  # distinct authors of the window's tweets; None when no author is known
    started_at: datetime | None = None  # the estimated start of the bad buzz (event time, UTC)
    main_reason: str | None = None  # the negative reason that stands out; None when none does
    samples_share: float | None = None  # share of the negative tweets the samples and their copies are
    terms_share: float | None = None  # share of the negative tweets using a reported term or hashtag

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ISO 8601 times (UTC)."""
        payload = asdict(self)
        for key in ("fired_at", "window_start", "window_end"):
            payload[key] = format_timestamp(getattr(self, key))
        payload["started_at"] = format_timestamp(self.started_at) if self.started_at else None
        for key in ("top_terms", "sample_ids", "top_hashtags", "samples"):
            payload[key] = list(payload[key])
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Alert:
        """Rebuild from `to_dict` output."""
        values = dict(payload)
        for key in ("fired_at", "window_start", "window_end"):
            values[key] = parse_timestamp(values[key], key)
        if values.get("started_at"):
            values["started_at"] = parse_timestamp(values["started_at"], "started_at")
        for key in ("top_terms", "sample_ids", "top_hashtags", "samples"):
            values[key] = tuple(values.get(key) or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def identity(self) -> tuple[str, str, str, str]:
        """What makes two alerts the same alert, whichever instance or run fired it: brand, kind, window."""
        return (self.brand, self.kind, self.window_start.isoformat(), self.window_end.isoformat())
