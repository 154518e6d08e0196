"""The tweepy side against a local X API stand-in serving recorded payloads: rules, stream, search."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
import requests
import tweepy

from ingest.brands import BrandBook
from ingest.sources import InputReport
from ingest.xapi import Backoff, FilteredStream, RecentSearchPoller, StreamFatalError
from tests.support.polling import wait_for

FAST = Backoff().scaled(0.001)  # 5 s -> 5 ms, 60 s -> 60 ms: same shape, test-sized


@pytest.fixture
def brands() -> BrandBook:
    return BrandBook.load()


def _stream(fake_x_api, brands, events, **kwargs) -> FilteredStream:
    stream = FilteredStream("test-token", brands, events.append, InputReport(), backoff=FAST, **kwargs)
    fake_x_api.mount(stream.session)
    return stream


def test_rules_sync_deletes_stale_adds_missing_and_is_idempotent(fake_x_api, brands):
    desired = brands.rules()
    fake_x_api.rules = {
        "1": (desired["united"], "united"),  # already right: kept
        "2": ("(@oldbrand)", "oldbrand"),  # not configured any more: deleted
        "3": ("(@jetblue_typo)", "jetblue"),  # same tag, other value: replaced
    }
    stream = _stream(fake_x_api, brands, [])
    change = stream.sync_rules(desired)
    assert sorted(change["deleted"]) == ["jetblue", "oldbrand"]
    assert change["kept"] == ["united"]
    assert sorted(change["added"]) == sorted(set(desired) - {"united"})
    assert {tag: value for value, tag in fake_x_api.rules.values()} == desired
    posts = len(fake_x_api.paths("POST"))

    second = stream.sync_rules(desired)
    assert not second["added"] and not second["deleted"] and sorted(second["kept"]) == sorted(desired)
    assert len(fake_x_api.paths("POST")) == posts, "an in-sync rule set sends no change"


def test_rules_sync_retries_a_503(fake_x_api, brands):
    fake_x_api.rule_errors = [503, 503]
    stream = _stream(fake_x_api, brands, [])
    change = stream.sync_rules_with_retry(brands.rules())
    assert sorted(change["added"]) == sorted(brands.names)
    assert [reason for reason, _ in stream.stats.waits] == ["rules: TwitterServerError"] * 2


def test_rules_sync_that_never_reaches_the_api_is_a_fatal_stream_error(fake_x_api, brands):
    """`buzzwatch ingest --source x-stream` offline printed requests' ConnectionError traceback."""
    stream = _stream(fake_x_api, brands, [])
    fake_x_api.server.shutdown()
    fake_x_api.server.server_close()  # nothing listens any more: every attempt is refused
    with pytest.raises(StreamFatalError, match=r"the X API cannot be reached \(3 attempts\)"):
        stream.sync_rules_with_retry(brands.rules(), attempts=3)
    assert [reason for reason, _ in stream.stats.waits] == ["rules: ConnectionError"] * 2


def test_stream_backs_off_on_429_and_503_then_delivers_attributed_events(fake_x_api, brands):
    lines = fake_x_api.recorded_stream_lines()
    fake_x_api.stream_scripts = [
        fake_x_api.Script(status=429),
        fake_x_api.Script(status=429),
        fake_x_api.Script(status=503),
        fake_x_api.Script(status=503),
        fake_x_api.Script(lines=lines, then="silence"),
    ]
    events: list = []
    stream = _stream(fake_x_api, brands, events)
    thread = stream.start()
    wait_for(lambda: len(events) == 3, 5, "three tweets")
    stream.disconnect()
    thread.join(timeout=5)
    assert not thread.is_alive()
    # X's schedule, scaled: 429 doubles from 60 s, 5xx doubles from 5 s.
    assert stream.stats.waits == [
        ("HTTP 429", pytest.approx(0.06)),
        ("HTTP 429", pytest.approx(0.12)),
        ("HTTP 503", pytest.approx(0.005)),
        ("HTTP 503", pytest.approx(0.01)),
    ]
    assert stream.stats.errors == {"http_429": 2, "http_503": 2}
    united, retweet, french = events
    assert united.brands == ("united",) and united.source == "x-stream" and united.lang == "en"
    assert retweet.retweet_of == "1890999999999999999" and retweet.brands == ("airparadis",)
    assert french.lang == "fr" and french.brands == ("airparadis",)
    query = next(r["query"] for r in fake_x_api.requests if r["path"] == "/2/tweets/search/stream")
    assert "created_at" in query["tweet.fields"][0] and query["expansions"] == ["author_id"]


def test_watchdog_reconnects_a_silent_stream(fake_x_api, brands):
    first, second, third = fake_x_api.recorded_stream_lines()
    fake_x_api.stream_scripts = [
        fake_x_api.Script(lines=[first], then="silence"),  # goes quiet: no tweet, no keep-alive
        fake_x_api.Script(lines=[second, third], then="silence"),
    ]
    events: list = []
    stream = _stream(fake_x_api, brands, events, heartbeat_timeout_s=0.4)
    started = time.monotonic()
    thread = stream.start()
    wait_for(lambda: len(events) == 3, 5, "three tweets")
    elapsed = time.monotonic() - started
    stream.disconnect()
    thread.join(timeout=5)
    assert stream.stats.watchdog_reconnects >= 1
    assert stream.stats.connects >= 2
    assert elapsed < 3.0


def test_keep_alives_keep_a_quiet_stream_connected(fake_x_api, brands):
    fake_x_api.stream_scripts = [fake_x_api.Script(lines=[b""] * 8, line_interval_s=0.1, then="silence")]
    stream = _stream(fake_x_api, brands, [], heartbeat_timeout_s=0.4)
    thread = stream.start()
    wait_for(lambda: stream.stats.keep_alives >= 7, 5, "seven keep-alives")
    stream.disconnect()
    thread.join(timeout=5)
    assert stream.stats.watchdog_reconnects == 0
    assert stream.stats.connects == 1


def test_disconnect_ends_a_silent_connection_at_once(fake_x_api, brands):
    fake_x_api.stream_scripts = [fake_x_api.Script(then="silence")]
    stream = _stream(fake_x_api, brands, [], heartbeat_timeout_s=30)
    thread = stream.start()
    wait_for(lambda: stream.stats.connects == 1, 5, "a connection")
    started = time.monotonic()
    stream.disconnect()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0


def test_bad_stream_messages_are_reported_and_skipped(fake_x_api, brands):
    """Malformed nested fields (includes, referenced_tweets, matching_rules) and an over-long number raised
    TypeError, AttributeError or ValueError, which ended the stream's reader thread."""
    good = fake_x_api.recorded_stream_lines()[0]
    message = json.loads(good)

    def variant(**fields: object) -> bytes:
        return json.dumps({**message, **fields}).encode()

    fake_x_api.stream_scripts = [
        fake_x_api.Script(
            lines=[
                b"{not json",
                b'{"errors":[{"title":"operational-disconnect"}]}',
                b'{"data":{"id":"1"}}',
                variant(includes=["not", "an", "object"]),
                variant(includes={"users": 7}),
                variant(includes={"users": [{"id": message["data"]["author_id"], "username": ["x"]}]}),
                variant(data={**message["data"], "referenced_tweets": 7}),
                good.replace(b'"id"', b'"id": ' + b"9" * 5000 + b', "old_id"', 1),
                variant(matching_rules=7),  # only a hint: the tweet is kept, attributed by its text
                good,
            ],
            then="silence",
        )
    ]
    events: list = []
    stream = _stream(fake_x_api, brands, events)
    thread = stream.start()
    wait_for(lambda: len(events) == 2, 5, "two tweets")
    stream.disconnect()
    thread.join(timeout=5)
    assert (stream.report.bad, stream.report.read) == (8, 10)
    assert events[0].brands == events[1].brands != ()


def test_unauthorized_stream_stops_with_a_clear_error(fake_x_api, brands):
    fake_x_api.stream_scripts = [fake_x_api.Script(status=401)]
    stream = _stream(fake_x_api, brands, [])
    thread = stream.start()
    thread.join(timeout=5)
    assert "HTTP 401" in str(stream.fatal_error)


def _poller(fake_x_api, brands, events, tmp_path, **kwargs) -> RecentSearchPoller:
    client = tweepy.Client("test-token", return_type=requests.Response)
    fake_x_api.mount(client.session)
    only_southwest = BrandBook([brands["southwestair"]])
    return RecentSearchPoller(
        "test-token",
        only_southwest,
        events.append,
        InputReport(),
        state_path=tmp_path / "since.json",
        backoff=FAST,
        client=client,
        **kwargs,
    )


def test_search_pages_publishes_oldest_first_and_resumes_from_since_id(fake_x_api, brands, tmp_path):
    fake_x_api.search_responses = [
        (200, {"x-rate-limit-remaining": "179"}, fake_x_api.recorded_json("search_page1.json")),
        (200, {"x-rate-limit-remaining": "178"}, fake_x_api.recorded_json("search_page2.json")),
        (200, {}, fake_x_api.recorded_json("search_empty.json")),
        (200, {}, fake_x_api.recorded_json("search_empty.json")),
    ]
    events: list = []
    poller = _poller(fake_x_api, brands, events, tmp_path)
    assert poller.poll_once() == 4
    assert [event.id[-3:] for event in events] == ["201", "203", "204", "205"]
    assert all(event.brands == ("southwestair",) and event.source == "x-search" for event in events)
    first, second = (r["query"] for r in fake_x_api.requests[:2])
    assert "since_id" not in first and second["next_token"] == [
        "b26v89c19zqg8o3fpzbkk3ux0ic6jybtbnqd9p2uzb9tp"
    ]
    assert poller.since_ids == {"southwestair": "1891000000000000205"}

    assert poller.poll_once() == 0
    assert fake_x_api.requests[2]["query"]["since_id"] == ["1891000000000000205"]
    restarted = _poller(fake_x_api, brands, [], tmp_path)
    restarted.poll_once()
    assert fake_x_api.requests[3]["query"]["since_id"] == ["1891000000000000205"]


def test_search_waits_for_the_rate_limit_reset_and_backs_off_on_5xx(fake_x_api, brands, tmp_path):
    # Whole epoch seconds: +1 could be past when a loaded machine served the request (a wait of 0.0, a flaky
    # failure); +3 is still ahead, and the wait is capped at FAST's rate-limit maximum (0.96 s).
    reset_at = str(int(time.time()) + 3)
    fake_x_api.search_responses = [
        (
            429,
            {"x-rate-limit-reset": reset_at, "x-rate-limit-remaining": "0"},
            {"title": "Too Many Requests"},
        ),
        (503, {}, {"title": "Service Unavailable"}),
        (200, {}, fake_x_api.recorded_json("search_page2.json")),
    ]
    events: list = []
    poller = _poller(fake_x_api, brands, events, tmp_path)
    assert poller.poll_once() == 2
    (first_reason, first_wait), (second_reason, second_wait) = poller.waits
    assert first_reason == "HTTP 429" and 0 < first_wait <= 2
    assert second_reason == "HTTP 503" and second_wait == pytest.approx(0.005)


def test_search_stop_interrupts_the_poll_interval(fake_x_api, brands, tmp_path):
    fake_x_api.search_responses = [(200, {}, fake_x_api.recorded_json("search_empty.json"))]
    poller = _poller(fake_x_api, brands, [], tmp_path, poll_interval_s=60)
    runner = threading.Thread(target=poller.run)
    runner.start()
    wait_for(lambda: poller.requests_made == 1, 5, "one search request")
    poller.stop()
    runner.join(timeout=2)
    assert not runner.is_alive()


def test_a_since_id_too_old_for_recent_search_is_dropped_not_fatal(fake_x_api, brands, tmp_path):
    """After a week stopped, the saved since_id is refused (400) by recent search on every poll: the poller's
    thread died with a traceback, at every restart, and the ingester exited 0."""
    (tmp_path / "since.json").write_text(json.dumps({"southwestair": "1891000000000000001"}))
    too_old = {
        "errors": [
            {
                "parameters": {"since_id": ["1891000000000000001"]},
                "message": "Invalid 'since_id':'1891000000000000001'. 'since_id' must be a tweet id created "
                "after 2026-11-28T10:00:00Z",
            }
        ],
        "title": "Invalid Request",
    }
    fake_x_api.search_responses = [
        (400, {}, too_old),
        (200, {}, fake_x_api.recorded_json("search_page2.json")),
    ]
    events: list = []
    poller = _poller(fake_x_api, brands, events, tmp_path)
    assert poller.poll_once() == 2
    first, second = (request["query"] for request in fake_x_api.requests)
    assert first["since_id"] == ["1891000000000000001"] and "since_id" not in second
    assert poller.since_ids["southwestair"] != "1891000000000000001"


def test_a_refused_search_ends_the_run_with_a_fatal_error(fake_x_api, brands, tmp_path):
    fake_x_api.search_responses = [(401, {}, {"title": "Unauthorized", "detail": "Unauthorized"})]
    poller = _poller(fake_x_api, brands, [], tmp_path, poll_interval_s=60)
    runner = threading.Thread(target=poller.run)
    runner.start()
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert isinstance(poller.fatal_error, StreamFatalError)
    assert str(poller.fatal_error).startswith("recent search refused: 401 Unauthorized")


def test_a_malformed_search_page_is_bad_input_and_polling_goes_on(fake_x_api, brands, tmp_path):
    page = fake_x_api.recorded_json("search_page2.json")
    fake_x_api.search_responses = [
        (200, {}, {"data": page["data"], "meta": ["not", "an", "object"]}),
        (200, {}, {**page, "data": {"id": "1"}, "meta": {"newest_id": "not-a-number"}}),
        (200, {}, page),
    ]
    events: list = []
    poller = _poller(fake_x_api, brands, events, tmp_path)
    assert poller.poll_once() == 0
    assert poller.poll_once() == 0
    assert poller.poll_once() == 2
    assert poller.report.bad == 2


def test_backfill_publishes_a_new_brands_past_oldest_first_and_a_refusal_skips_it(
    fake_x_api, brands, tmp_path, caplog
):
    fake_x_api.search_responses = [
        (200, {}, fake_x_api.recorded_json("search_page1.json")),
        (200, {}, fake_x_api.recorded_json("search_page2.json")),
        (403, {}, {"title": "Forbidden", "detail": "Forbidden"}),
    ]
    events: list = []
    poller = _poller(fake_x_api, brands, events, tmp_path)
    assert poller.backfill(["southwestair"]) == 4
    assert [event.id[-3:] for event in events] == ["201", "203", "204", "205"]  # oldest first
    assert "since_id" not in fake_x_api.requests[0]["query"]  # from nothing: as far back as search reaches
    with caplog.at_level("WARNING", logger="buzzwatch.ingest.x"):
        assert poller.backfill(["southwestair"]) == 0  # refused: logged, not raised
    assert "backfill refused" in caplog.text


def test_the_stream_source_backfills_brands_new_to_it_before_it_connects(monkeypatch, brands, tmp_path):
    import ingest.xapi
    from ingest.service import IngestSettings, _run_x_source

    order: list = []

    class Stream:
        stats = type("Stats", (), {})()
        fatal_error = None

        def __init__(self, *args, **kwargs) -> None:
            pass

        def sync_rules_with_retry(self, desired):
            # united is new; jetblue's rule was rewritten (deleted, then added): not new
            return {"added": ["united", "jetblue"], "deleted": ["jetblue"], "kept": ["southwestair"]}

        def start(self) -> threading.Thread:
            order.append("stream")
            thread = threading.Thread(target=lambda: None)
            thread.start()
            return thread

        def disconnect(self) -> None:
            pass

    class Poller:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def backfill(self, tags) -> int:
            order.append(("backfill", list(tags)))
            return 3

        def stop(self) -> None:
            pass

    monkeypatch.setattr(ingest.xapi, "FilteredStream", Stream)
    monkeypatch.setattr(ingest.xapi, "RecentSearchPoller", Poller)
    settings = IngestSettings(
        brands_path=tmp_path / "brands.toml",
        failed_path=tmp_path / "failed.jsonl",
        search_state_path=tmp_path / "since.json",
        keep_unattributed=False,
        create_subscriptions=False,
        push_endpoint=None,
        heartbeat_timeout_s=30.0,
        search_poll_interval_s=60.0,
    )
    args = ("x-stream", "token", brands, None, InputReport())
    summary = _run_x_source(*args, settings, threading.Event())
    assert order == [("backfill", ["united"]), "stream"] and summary["backfilled"] == 3
    order.clear()
    off = _run_x_source(*args, replace(settings, backfill_new_brands=False), threading.Event())
    assert order == ["stream"] and off["backfilled"] == 0
