"""The X API v2 sources, through tweepy 4.17: the filtered stream and a recent-search poller.

`FilteredStream` is a `tweepy.StreamingClient` (still part of tweepy 4.17): tweepy's rule calls
(`get_rules`, `add_rules`, `delete_rules`) and `filter()` are used as they are; the connection loop is
BuzzWatch's own, because tweepy's hard-codes its waits and has no silence watchdog:
- backoff as X asks: network errors wait 0.25 s more each time up to 16 s, HTTP 5xx errors double from
  5 s up to 320 s, HTTP 429 doubles from 60 s (or waits for `x-rate-limit-reset` when it is later);
- a watchdog cuts a connection that sent nothing (no tweet, no keep-alive newline; X sends one every
  20 s) for `heartbeat_timeout_s`, and the loop reconnects;
- `disconnect()` (shutdown) cuts the live connection at once instead of waiting for the next byte.

`RecentSearchPoller` polls `Client.search_recent_tweets` with one query per brand, each with its own
`since_id` (kept in a state file, so a restart neither repeats nor skips tweets), pages through
`next_token`, publishes oldest first, and paces itself by the `x-rate-limit-*` headers.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import tweepy
import urllib3

from buzzwatch.files import atomic_text_output
from buzzwatch.schema import SchemaError, TweetEvent, load_json
from ingest.brands import BrandBook
from ingest.events import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, event_from_x
from ingest.sources import InputReport

log = logging.getLogger("buzzwatch.ingest.x")

X_API_HOST = "https://api.twitter.com"
EventSink = Callable[[TweetEvent], None]


class StreamFatalError(RuntimeError):
    """The stream cannot go on (bad credentials, forbidden, malformed request): reconnecting will not help."""


@dataclass(frozen=True)
class Backoff:
    """Reconnection waits, after X's guidance for the filtered stream (tests scale them down)."""

    network_step_s: float = 0.25
    network_max_s: float = 16.0
    http_initial_s: float = 5.0
    http_max_s: float = 320.0
    rate_limit_initial_s: float = 60.0
    rate_limit_max_s: float = 960.0

    def scaled(self, factor: float) -> Backoff:
        """Every wait multiplied by `factor`."""
        return Backoff(**{name: value * factor for name, value in vars(self).items()})


def _rate_limit_reset_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until `x-rate-limit-reset` (epoch seconds), when the header is there."""
    raw = headers.get("x-rate-limit-reset")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw) - (time.time() if now is None else now))
    except ValueError:
        return None


@dataclass
class StreamStats:
    """What the stream connection did: for logs, tests and the final report."""

    connects: int = 0
    tweets: int = 0
    keep_alives: int = 0
    watchdog_reconnects: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    waits: list[tuple[str, float]] = field(default_factory=list)

    def count_error(self, kind: str) -> None:
        """Count one error by kind (http_429, http_503, network, ...)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1


class FilteredStream(tweepy.StreamingClient):
    """The X API v2 filtered stream as a source of `TweetEvent`s, with rules synced from the brands."""

    def __init__(
        self,
        bearer_token: str,
        brands: BrandBook,
        on_event: EventSink,
        report: InputReport,
        backoff: Backoff | None = None,
        heartbeat_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_retries: float = math.inf,
    ) -> None:
        super().__init__(bearer_token, max_retries=max_retries, chunk_size=1024)
        self.brands = brands
        self.on_event = on_event
        self.report = report
        self.backoff = backoff or Backoff()
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.stats = StreamStats()
        self._wake = threading.Event()
        self._response: requests.Response | None = None
        self._response_lock = threading.Lock()
        self._last_activity = time.monotonic()
        self._watchdog_fired = False
        self.fatal_error: StreamFatalError | None = None

    # ---- rules -------------------------------------------------------------------------------------

    def sync_rules(self, desired: Mapping[str, str]) -> dict[str, list[str]]:
        """Make the stream's rules exactly `desired` (tag -> value): delete others, add missing, keep equal.

        Idempotent: a second call with the same rules sends no change.
        """
        current = self.get_rules().data or []
        wanted = {(value, tag) for tag, value in desired.items()}
        kept = [rule for rule in current if (rule.value, rule.tag) in wanted]
        stale = [rule for rule in current if (rule.value, rule.tag) not in wanted]
        present = {(rule.value, rule.tag) for rule in kept}
        missing = sorted(wanted - present, key=lambda pair: pair[1])
        if stale:
            self.delete_rules([rule.id for rule in stale])
        if missing:
            response = self.add_rules([tweepy.StreamRule(value=value, tag=tag) for value, tag in missing])
            if response.errors:
                raise StreamFatalError(f"the X API refused stream rules: {response.errors}")
        change = {
            "added": [tag for _, tag in missing],
            "deleted": [rule.tag or rule.id for rule in stale],
            "kept": [rule.tag for rule in kept],
        }
        log.info("stream rules synced", extra=change)
        return change

    def sync_rules_with_retry(self, desired: Mapping[str, str], attempts: int = 5) -> dict[str, list[str]]:
        """`sync_rules`, retried with backoff on HTTP 429, 5xx and network errors."""
        wait = self.backoff.http_initial_s
        for _ in range(attempts - 1):
            try:
                return self.sync_rules(desired)
            except (tweepy.TooManyRequests, tweepy.TwitterServerError, requests.ConnectionError) as exc:
                if isinstance(exc, tweepy.TooManyRequests):
                    reset = _rate_limit_reset_wait(exc.response.headers)
                    wait = max(wait, min(reset or 0.0, self.backoff.rate_limit_max_s))
                self._wait(f"rules: {type(exc).__name__}", wait)
                wait = min(self.backoff.http_max_s, wait * 2)
        try:
            return self.sync_rules(desired)
        except requests.ConnectionError as exc:  # the command's one line, not requests' traceback
            raise StreamFatalError(f"the X API cannot be reached ({attempts} attempts): {exc}") from None

    def start(self) -> threading.Thread:
        """Connect in a background thread with the tweet fields BuzzWatch needs."""
        return self.filter(
            threaded=True,
            tweet_fields=list(TWEET_FIELDS),
            expansions=list(EXPANSIONS),
            user_fields=list(USER_FIELDS),
        )

    # ---- connection loop ----------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Stop now: cut the live connection and end any backoff wait."""
        self.running = False
        self._wake.set()
        self._cut_connection()

    def _cut_connection(self) -> None:
        with self._response_lock:
            response = self._response
        if response is None:
            return
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            else:
                response.close()
        except OSError:
            pass

    def _watchdog(self) -> None:
        interval = min(1.0, self.heartbeat_timeout_s / 4)
        while self.running:
            if self._wake.wait(interval):
                return
            with self._response_lock:
                live = self._response is not None
            silent_for = time.monotonic() - self._last_activity
            if live and silent_for > self.heartbeat_timeout_s and not self._watchdog_fired:
                self._watchdog_fired = True
                self.stats.watchdog_reconnects += 1
                log.warning("stream silent, reconnecting", extra={"silent_s": round(silent_for, 1)})
                self._cut_connection()

    def _wait(self, reason: str, seconds: float) -> None:
        self.stats.waits.append((reason, seconds))
        log.warning("stream reconnect after a wait", extra={"reason": reason, "wait_s": seconds})
        self._wake.wait(seconds)

    def _connect(self, method: str, endpoint: str, params: Any = None, **_: Any) -> None:  # tweepy's hook
        url = f"{X_API_HOST}/2/tweets/{endpoint}/stream"
        self.session.headers["Authorization"] = f"Bearer {self.bearer_token}"
        self.session.headers["User-Agent"] = self.user_agent
        self.running = True
        self._wake.clear()
        watchdog = threading.Thread(target=self._watchdog, name="x-stream-watchdog", daemon=True)
        watchdog.start()
        network_wait = 0.0
        http_wait = self.backoff.http_initial_s
        rate_wait = self.backoff.rate_limit_initial_s
        failures = 0
        try:
            while self.running and failures <= self.max_retries:
                try:
                    self._last_activity = time.monotonic()
                    self._watchdog_fired = False
                    with self.session.request(
                        method,
                        url,
                        params=params,
                        stream=True,
                        timeout=(self.connect_timeout_s, self.heartbeat_timeout_s * 2),
                    ) as response:
                        if response.status_code == 200:
                            with self._response_lock:
                                self._response = response
                            self.stats.connects += 1
                            failures, network_wait = 0, 0.0
                            http_wait, rate_wait = (
                                self.backoff.http_initial_s,
                                self.backoff.rate_limit_initial_s,
                            )
                            log.info("stream connected")
                            self._read(response)
                            if not self.running:
                                break
                            # The server closed the stream, or the watchdog cut a silent one: reconnect.
                            self.stats.count_error("watchdog" if self._watchdog_fired else "closed")
                            self._wait("stream ended", network_wait)
                            network_wait = min(
                                self.backoff.network_max_s, network_wait + self.backoff.network_step_s
                            )
                            continue
                        failures += 1
                        status = response.status_code
                        self.stats.count_error(f"http_{status}")
                        body = response.text[:300]
                        if status in (420, 429):
                            wait = rate_wait
                            reset = _rate_limit_reset_wait(response.headers)
                            if reset is not None:
                                wait = min(self.backoff.rate_limit_max_s, max(wait, reset))
                            rate_wait = min(self.backoff.rate_limit_max_s, rate_wait * 2)
                            self._wait(f"HTTP {status}", wait)
                        elif status >= 500 or status == 409:
                            # 409: the stream rules are being applied; X asks for a retry later.
                            self._wait(f"HTTP {status}", http_wait)
                            http_wait = min(self.backoff.http_max_s, http_wait * 2)
                        else:
                            raise StreamFatalError(f"the X API refused the stream: HTTP {status}: {body}")
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError,
                    OSError,
                ) as exc:
                    if not self.running:
                        break
                    failures += 1
                    kind = "watchdog" if self._watchdog_fired else "network"
                    self.stats.count_error(kind)
                    log.warning("stream connection error", extra={"kind": kind, "error": str(exc)[:300]})
                    self._wait(kind, network_wait)
                    network_wait = min(self.backoff.network_max_s, network_wait + self.backoff.network_step_s)
                finally:
                    with self._response_lock:
                        self._response = None
        except StreamFatalError as exc:
            self.fatal_error = exc
            log.error("stream stopped for good", extra={"error": str(exc)})
        finally:
            self.running = False
            self._wake.set()
            self.session.close()
            log.info(
                "stream disconnected", extra={"connects": self.stats.connects, "tweets": self.stats.tweets}
            )

    def _read(self, response: requests.Response) -> None:
        for line in response.iter_lines(chunk_size=self.chunk_size):
            self._last_activity = time.monotonic()
            if not self.running:
                return
            if not line:
                self.stats.keep_alives += 1
                continue
            self._handle_line(line)

    def _handle_line(self, line: bytes) -> None:
        self.report.read += 1
        try:
            message = load_json(line)
        except SchemaError as exc:
            self.report.bad_input("x-stream", str(exc))
            return
        if not isinstance(message, dict) or "data" not in message:
            errors = message.get("errors") if isinstance(message, dict) else None
            self.report.bad_input("x-stream", f"a stream message without a tweet: {errors or message}")
            return
        rules = message.get("matching_rules")  # a hint for attribution: a malformed one is left out
        tags = [
            rule["tag"]
            for rule in (rules if isinstance(rules, list) else ())
            if isinstance(rule, dict) and isinstance(rule.get("tag"), str)
        ]
        try:
            event = event_from_x(  # the stream always sends created_at when asked; else the receipt
                message["data"],
                self.brands,
                "x-stream",
                includes=message.get("includes"),
                rule_tags=tags,
                received_at=datetime.now(UTC),
            )
        except SchemaError as exc:
            self.report.bad_input("x-stream", str(exc))
            return
        self.stats.tweets += 1
        self.on_event(event)


class RecentSearchPoller:
    """Polls recent search for each brand's query, from its own `since_id`, oldest tweet first."""

    def __init__(
        self,
        bearer_token: str,
        brands: BrandBook,
        on_event: EventSink,
        report: InputReport,
        poll_interval_s: float = 60.0,
        state_path: Path | None = None,
        backoff: Backoff | None = None,
        max_pages: int = 20,
        client: tweepy.Client | None = None,
    ) -> None:
        self.client = client or tweepy.Client(bearer_token, return_type=requests.Response)
        self.brands = brands
        self.queries = brands.rules()
        self.on_event = on_event
        self.report = report
        self.poll_interval_s = poll_interval_s
        self.state_path = state_path
        self.backoff = backoff or Backoff()
        self.max_pages = max_pages
        self.since_ids: dict[str, str] = self._load_state()
        self.requests_made = 0
        self.waits: list[tuple[str, float]] = []
        self.fatal_error: StreamFatalError | None = None
        self._stop = threading.Event()

    def _load_state(self) -> dict[str, str]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            state = json.loads(self.state_path.read_text())
            return {str(tag): str(since) for tag, since in dict(state).items()}
        except (ValueError, TypeError) as exc:
            log.warning("search state unreadable, starting fresh", extra={"error": str(exc)})
            return {}

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        with atomic_text_output(self.state_path) as handle:  # a crash mid-write keeps the last state whole
            handle.write(json.dumps(self.since_ids, sort_keys=True))

    def stop(self) -> None:
        """End `run` (and any wait) at once."""
        self._stop.set()

    def _wait(self, reason: str, seconds: float) -> bool:
        """Wait unless stopped; True when stopped."""
        self.waits.append((reason, seconds))
        if seconds > 0:
            log.info("search waits", extra={"reason": reason, "wait_s": round(seconds, 2)})
        return self._stop.wait(seconds)

    def _request(self, query: str, since_id: str | None, next_token: str | None) -> dict[str, Any] | None:
        """One page, retried on 429/5xx/network errors with backoff; None when stopped."""
        http_wait = self.backoff.http_initial_s
        network_wait = self.backoff.network_step_s
        rate_wait = self.backoff.rate_limit_initial_s
        while not self._stop.is_set():
            try:
                self.requests_made += 1
                response = self.client.search_recent_tweets(
                    query,
                    since_id=since_id,
                    next_token=next_token,
                    max_results=100,
                    tweet_fields=list(TWEET_FIELDS),
                    expansions=list(EXPANSIONS),
                    user_fields=list(USER_FIELDS),
                )
            except tweepy.TooManyRequests as exc:
                reset = _rate_limit_reset_wait(exc.response.headers)
                wait = min(self.backoff.rate_limit_max_s, reset if reset is not None else rate_wait)
                rate_wait = min(self.backoff.rate_limit_max_s, rate_wait * 2)
                if self._wait("HTTP 429", wait):
                    return None
                continue
            except tweepy.TwitterServerError as exc:
                if self._wait(f"HTTP {exc.response.status_code}", http_wait):
                    return None
                http_wait = min(self.backoff.http_max_s, http_wait * 2)
                continue
            except requests.RequestException as exc:
                log.warning("search connection error", extra={"error": str(exc)[:300]})
                if self._wait("network", network_wait):
                    return None
                network_wait = min(self.backoff.network_max_s, network_wait + self.backoff.network_step_s)
                continue
            # Pace by the rate-limit headers: when the window is used up, wait for its reset.
            if response.headers.get("x-rate-limit-remaining") == "0":
                reset = _rate_limit_reset_wait(response.headers)
                if reset and self._wait(
                    "rate limit window used up", min(reset, self.backoff.rate_limit_max_s)
                ):
                    return None
            try:
                body = response.json()
            except ValueError:
                self.report.bad_input("x-search", "a search response that is not JSON")
                return {}
            if not isinstance(body, dict) or not isinstance(body.get("meta") or {}, dict):
                self.report.bad_input("x-search", f"a search response without its meta object: {body!s:.200}")
                return {}
            return body
        return None

    def poll_brand(self, tag: str) -> int:
        """Fetch every tweet newer than the brand's since_id, publish them oldest first; returns the count."""
        query = self.queries[tag]
        since_id = self.since_ids.get(tag)
        pages: list[dict[str, Any]] = []
        next_token = None
        for _ in range(self.max_pages):
            try:
                body = self._request(query, since_id, next_token)
            except tweepy.BadRequest as exc:
                # A since_id saved more than 7 days ago is refused (400) by recent search, on every poll.
                if since_id is None or next_token is not None or "since_id" not in str(exc):
                    raise
                log.warning(
                    "the saved since_id is older than recent search reaches: searching all it reaches",
                    extra={"brand": tag, "since_id": since_id, "error": str(exc)[:300]},
                )
                since_id = None
                body = self._request(query, since_id, next_token)
            if body is None:
                return 0  # stopped: since_id unchanged, the next run fetches these again
            pages.append(body)
            next_token = (body.get("meta") or {}).get("next_token")
            if not next_token:
                break
        else:
            log.warning(
                "search page cap reached; older tweets of this poll are skipped", extra={"brand": tag}
            )
        events: list[TweetEvent] = []
        newest = since_id
        for page in pages:
            meta = page.get("meta") or {}
            page_newest = str(meta.get("newest_id") or "")
            if page_newest.isdigit() and (newest is None or int(page_newest) > int(newest)):
                newest = page_newest
            tweets = page.get("data") or []
            if not isinstance(tweets, list):
                self.report.bad_input("x-search", f"a search page whose data is not a list: {tweets!s:.200}")
                continue
            for tweet in tweets:
                self.report.read += 1
                try:
                    events.append(
                        event_from_x(
                            tweet, self.brands, "x-search", includes=page.get("includes"), rule_tags=[tag]
                        )
                    )
                except SchemaError as exc:
                    self.report.bad_input("x-search", str(exc))
        events.sort(key=lambda event: (event.created_at, int(event.id) if event.id.isdigit() else 0))
        for event in events:
            self.on_event(event)
        if newest and newest != since_id:
            self.since_ids[tag] = newest
            self._save_state()
        return len(events)

    def backfill(self, tags: Iterable[str]) -> int:
        """The past of brands new to the filtered stream: one poll of each (up to `max_pages` of its newest
        tweets, as far back as recent search reaches: 7 days), published oldest first, so the detector learns
        each brand from its past before its live tweets come. A brand whose search X refuses is logged and
        left to start without its past: the stream goes on. Returns the tweets published."""
        published = 0
        for tag in tags:
            if self._stop.is_set():
                break
            try:
                published += self.poll_brand(tag)
            except tweepy.HTTPException as exc:
                log.warning(
                    "backfill refused: the brand starts without its past",
                    extra={"brand": tag, "error": str(exc)[:300]},
                )
        return published

    def poll_once(self) -> int:
        """One round over every brand's query."""
        return sum(self.poll_brand(tag) for tag in self.queries if not self._stop.is_set())

    def run(self, max_rounds: int | None = None) -> None:
        """Poll every `poll_interval_s` until stopped (or for `max_rounds`).

        A refusal that asking again will not change (400, 401, 403: a bad query, bad credentials) ends the
        run with `fatal_error` set, which the ingester raises; it ended the thread with a traceback, and the
        ingester then exited 0 as if the search had simply finished.
        """
        rounds = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                count = self.poll_once()
            except tweepy.HTTPException as exc:
                self.fatal_error = StreamFatalError(f"recent search refused: {str(exc)[:500]}")
                log.error("search stopped", extra={"error": str(self.fatal_error)})
                return
            rounds += 1
            log.info("search round done", extra={"tweets": count, "at": datetime.now(UTC).isoformat()})
            if max_rounds is not None and rounds >= max_rounds:
                return
            if self._wait("poll interval", max(0.0, self.poll_interval_s - (time.monotonic() - started))):
                return
