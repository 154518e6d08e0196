"""Turn what each source reads (a data file row, a JSON line, an X API v2 tweet) into a `TweetEvent`.

Every converter validates through `buzzwatch.schema` and raises `SchemaError` with a message a person can
act on; the sources report such input and skip it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from buzzwatch.schema import AUTHOR_FIELDS, SchemaError, TweetEvent, first_filled
from buzzwatch.zones import BRAND_FIELDS
from ingest.brands import BrandBook

# The X API v2 fields BuzzWatch asks for on the stream and on recent search.
TWEET_FIELDS = ("created_at", "lang", "author_id", "referenced_tweets")
EXPANSIONS = ("author_id",)
USER_FIELDS = ("username",)


def event_from_record(record: Mapping[str, Any], brands: BrandBook, source: str) -> TweetEvent:
    """A flat record (a CSV row or a JSON object with id, created_at, text, optional brand(s)/airline and an
    author: `AUTHOR_FIELDS`).

    A JSON object in the X API v2 shape (`{"data": {...}, "includes": ...}`) is accepted too.
    """
    if isinstance(record.get("data"), Mapping):
        return event_from_x(record["data"], brands, source, includes=record.get("includes"))
    if "errors" in record and "text" not in record:  # what X sends instead of a tweet (a disconnect, a 4xx)
        raise SchemaError(f"an X API error message, not a tweet: {str(record['errors'])[:200]}")
    declared = first_filled(record, BRAND_FIELDS)
    named_elsewhere = {*BRAND_FIELDS, *AUTHOR_FIELDS}
    payload = {key: value for key, value in record.items() if key not in named_elsewhere}
    listed = isinstance(declared, list | tuple) and all(isinstance(item, str) for item in declared)
    if declared is not None and not isinstance(declared, str) and not listed:  # a string: the book splits it
        raise SchemaError("field 'brand' must be a string or a list of strings")
    payload["author_id"] = first_filled(record, AUTHOR_FIELDS)
    payload["source"] = source
    event = TweetEvent.from_dict(payload)
    return replace(event, brands=brands.attribute(event.text, declared=declared))


def event_from_x(
    tweet: Mapping[str, Any],
    brands: BrandBook,
    source: str,
    includes: Mapping[str, Any] | None = None,
    rule_tags: Sequence[str] = (),
    received_at: datetime | None = None,
) -> TweetEvent:
    """An X API v2 tweet object (plus `includes.users` for the author's handle and the stream's rule tags).

    One without `created_at` is a SchemaError, unless `received_at` is given (the live stream's receipt:
    a tweet it sends was just posted); a file's or a search page's tweet has no such time to stand in."""
    if not isinstance(tweet, Mapping):
        raise SchemaError("an X API tweet must be a JSON object")
    retweet_of = None
    for reference in _list_field(tweet.get("referenced_tweets"), "referenced_tweets"):
        if isinstance(reference, Mapping) and reference.get("type") == "retweeted":
            retweet_of = reference.get("id")
    if includes is not None and not isinstance(includes, Mapping):
        raise SchemaError("field 'includes' must be an object")
    author_username = None
    for user in _list_field((includes or {}).get("users"), "includes.users"):
        if isinstance(user, Mapping) and user.get("id") == tweet.get("author_id"):
            author_username = user.get("username")
    if author_username is not None and not isinstance(author_username, str):
        raise SchemaError("field 'includes.users[].username' must be a string")
    payload = {
        "id": tweet.get("id"),
        "created_at": tweet.get("created_at") or received_at,
        "text": tweet.get("text"),
        "lang": tweet.get("lang"),
        "author_id": tweet.get("author_id"),
        "retweet_of": retweet_of,
        "source": source,
    }
    event = TweetEvent.from_dict(payload)
    return replace(
        event, brands=brands.attribute(event.text, rule_tags=rule_tags, author_username=author_username)
    )


def _list_field(value: Any, name: str) -> Sequence[Any]:
    """An optional list field of an X API tweet (absent or null: empty); any other type is a SchemaError."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SchemaError(f"field {name!r} must be a list")
    return value
