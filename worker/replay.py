"""Replay a file of tweets (CSV or JSON lines) through the detector in event time: the `buzzwatch replay`
engine.

The same `BuzzDetector` the worker runs is fed here, in (created_at, id) order, so a replay gives the
alerts the live stream would. An optional author column (`author_id`, `author` or `name`: the author's id
or handle) fills `TweetEvent.author_id`, so one author's many tweets weigh as the live stream's would.
Scoring is the shared `Predictor` in large batches (or, with the oracle, the file's own labels, to tell
model error from detector error). Input is validated row by row: a bad row is reported and skipped, never
fatal.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import NamedTuple, Protocol, TextIO

import numpy as np

from buzzwatch.replay import (
    SORT_RUN_ITEMS,
    CsvRow,
    EventTimeOrder,
    ReplayCsv,
    SkippedRows,
    json_lines,
    names_json_lines,
    open_replay_csv,
    open_replay_text,
    paced,
    wait_by_sleeping,
)
from buzzwatch.schema import (
    AUTHOR_FIELDS,
    LABELS,
    Alert,
    SchemaError,
    ScoredTweet,
    TweetEvent,
    first_filled,
    format_timestamp,
    is_blank,
    names_its_offset,
)
from buzzwatch.zones import BRAND_FIELDS, BrandIds, BrandsFile, split_brands
from models.language import UNDETERMINED, Language, LanguageGate, gate_for
from worker.detection import BuzzDetector

INTEGER_ID_FIELDS = frozenset({"id", *AUTHOR_FIELDS})  # JSON integers `TweetEvent` reads as their digits
REQUIRED_COLUMNS = ("id", "created_at", "text")  # and a brand column: one of BRAND_FIELDS
REASON_COLUMNS = ("negative_reason", "negativereason")
LANGUAGE_COLUMN = "lang"
# The fields of a JSON line that are read, each a string (or a number; brands also a list of strings).
READ_FIELDS = frozenset(
    {*REQUIRED_COLUMNS, *BRAND_FIELDS, *REASON_COLUMNS, *AUTHOR_FIELDS, LANGUAGE_COLUMN, "label"}
)
# Distinct texts whose scores a replay keeps; past this many it starts afresh (only the speed changes).
SCORED_TEXTS_KEPT = 200_000
# Distinct brand cells whose brand ids a replay keeps (a file names a few brands in many rows).
BRAND_CELLS_KEPT = 4096
# Allocations between two collections of the youngest generation while a replay runs (Python's default: 700).
REPLAY_GC_YOUNG = 200_000


class ReplayError(ValueError):
    """The input cannot be replayed at all (missing file or columns); the message says what to fix."""


class ProbabilityModel(Protocol):
    """What replay needs from `models.predictor.Predictor`."""

    labels: tuple[str, ...]
    model_version: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class ReplayRow(NamedTuple):
    """One valid input row: its tweet, validated and built once (as the ingester would publish it), and
    what only a file has (a plain tuple: a replay sorts and spills every row)."""

    line: int
    tweet: TweetEvent  # source "replay"; its brand ids ("united,delta": two), the file's `lang` or "und"
    label: str | None
    reason: str | None


@dataclass
class ReplaySummary:
    """What a replay did, printed at the end."""

    rows_read: int = 0
    skipped: SkippedRows = field(default_factory=SkippedRows)
    tweets: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    alerts_by_brand: Counter[str] = field(default_factory=Counter)
    brands: tuple[str, ...] = ()
    label_counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    scoring: str = "oracle"
    detector_stats: dict[str, int] = field(default_factory=dict)
    unsupported_languages: Counter[str] = field(default_factory=Counter)
    without_offset: int = 0  # rows whose created_at names no UTC offset (read as UTC)
    stopped: bool = False  # a signal stopped it before the end of the file
    event_time: datetime | None = None  # the last replayed tweet's

    @property
    def tweets_per_second(self) -> float:
        """Throughput over the whole replay (reading excluded, scoring and detection included)."""
        return self.tweets / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """A human-readable summary."""
        out = [
            f"replayed {self.tweets} tweets ({self.skipped.count} of {self.rows_read} rows skipped) "
            f"in {self.seconds:.2f} s: {self.tweets_per_second:,.0f} tweets/s, scoring: {self.scoring}",
            f"labels: {dict(sorted(self.label_counts.items()))}",
            f"brands tracked: {len(self.brands)} ({', '.join(self.brands)})",
            f"alerts: {self.alerts['new']} new, {self.alerts['update']} updates; by brand: "
            f"{dict(sorted(self.alerts_by_brand.items()))}",
        ]
        if self.unsupported_languages:
            total = sum(self.unsupported_languages.values())
            out.append(
                f"{total} tweets in languages the model does not read, counted apart from the negative "
                f"share: {dict(self.unsupported_languages.most_common())}"
            )
        if self.without_offset:
            out.append(
                f"{self.without_offset} rows gave created_at without a UTC offset (Z, +01:00): read as UTC"
            )
        if self.detector_stats.get("late") or self.detector_stats.get("duplicates"):
            out.append(f"detector: {self.detector_stats}")
        if self.stopped:
            reached = format_timestamp(self.event_time) if self.event_time else "its first tweet"
            out.append(
                f"stopped by a signal at {reached} (event time): the alerts up to then are written, "
                "the rest of the file was not replayed"
            )
        return out


def read_rows(
    path: Path, oracle: bool, summary: ReplaySummary, brand_ids: BrandIds | None = None
) -> list[ReplayRow]:
    """The rows `replay_rows` gives, as a list (the benchmark's and the tests' form)."""
    with replay_rows(path, oracle, summary, run_items=None, brand_ids=brand_ids) as rows:
        return list(rows)


@contextmanager
def replay_rows(
    path: Path,
    oracle: bool,
    summary: ReplaySummary,
    run_items: int | None = SORT_RUN_ITEMS,
    brand_ids: BrandIds | None = None,
) -> Iterator[EventTimeOrder[ReplayRow]]:
    """Valid rows of the file in (created_at, id) order, holding at most `run_items` of them in memory.

    A CSV (any name but .jsonl, .ndjson or .json, also before .gz) or JSON lines, one flat tweet object a
    line with the same fields; gzip-compressed or not, a pipe too (`open_replay_text`). The whole file is
    read on entry: bad rows are recorded in `summary` (the first few in full) and skipped. Each row's
    brands are their brand ids as the ingester names them (`brand_ids`; None: the brands file's,
    BUZZWATCH_BRANDS_FILE or config/brands.toml), so "United", " UNITED " and "united" are one brand.
    """
    ids = brand_ids or BrandsFile.read().ids()

    @functools.lru_cache(maxsize=BRAND_CELLS_KEPT)
    def brands_of(cell: str) -> tuple[str, ...]:
        return ids.resolve_all(split_brands(cell))

    def valid_rows(records: Iterable[CsvRow], reason_fields: Sequence[str]) -> Iterator[ReplayRow]:
        for row in records:
            summary.rows_read += 1
            try:
                if row.problem is not None:
                    raise SchemaError(row.problem)
                parsed = _parse_row(row.values, row.line, oracle, reason_fields, brands_of)
            except SchemaError as exc:
                summary.skipped.add(row.line, str(exc))
                continue
            summary.without_offset += not names_its_offset(row.values["created_at"])
            yield parsed

    reasons = REASON_COLUMNS if oracle else ()
    if names_json_lines(path):
        with open_replay_text(path) as handle:
            rows = EventTimeOrder(valid_rows(_json_rows(handle), reasons), _row_order, run_items)
    else:
        with open_replay_csv(path) as csv_rows:
            _check_header(csv_rows, path, oracle)
            reasons = tuple(column for column in reasons if column in csv_rows.columns)
            rows = EventTimeOrder(valid_rows(csv_rows, reasons), _row_order, run_items)
    with rows:
        yield rows


def _check_header(csv_rows: ReplayCsv, path: Path, oracle: bool) -> None:
    """A ReplayError naming what the CSV's header lacks: id, created_at, text, a brand column (and labels)."""
    brand_column = next((name for name in BRAND_FIELDS if name in csv_rows.columns), "brand")
    missing = csv_rows.header_problem((*REQUIRED_COLUMNS, brand_column, *(["label"] if oracle else [])))
    if not missing:
        return
    hint = ""
    # a ' brand' or 'Brand' is no missing column but a misspelt name, and `missing` says so
    if brand_column not in csv_rows.columns and csv_rows.columns and not csv_rows.padded(BRAND_FIELDS):
        others = [repr(name) for name in BRAND_FIELDS if name != "brand"]
        hint = f" (the brand column may also be called {' or '.join(others)})"
    no_labels = oracle and "label" not in csv_rows.columns and bool(csv_rows.columns)
    if no_labels and not csv_rows.padded(["label"]):
        hint += " (--oracle reads the labels from a 'label' column)"
    raise ReplayError(f"{path}: {missing}{hint}")


def _json_rows(lines: Iterable[str]) -> Iterator[CsvRow]:
    """Each JSON line's tweet as a row's cells (`_json_cells`), or the row's problem."""
    for number, document, problem in json_lines(lines):
        if problem is None:
            try:
                yield CsvRow(number, _json_cells(document))
                continue
            except SchemaError as exc:
                problem = str(exc)
        yield CsvRow(number, {}, problem)


def _json_cells(document: object) -> dict[str, str]:
    """A flat tweet object's fields that a replay reads, as a CSV row's cells (a list of brands joined)."""
    if isinstance(document, list):  # a .json file holding one array of tweets
        raise SchemaError("a JSON array: a replay reads one tweet object a line (`jq -c '.[]'` writes so)")
    if not isinstance(document, dict):
        raise SchemaError(f"a line must be a tweet object {{...}}, not a JSON {_json_kind(document)}")
    if "data" in document and "text" not in document:
        raise SchemaError(
            "an X API v2 object: `buzzwatch ingest --source replay` reads those and finds each tweet's "
            "brands; `buzzwatch replay` reads flat tweets (id, created_at, text, brand)"
        )
    cells = {}
    for key in READ_FIELDS & document.keys():
        value = document[key]
        if key in BRAND_FIELDS and isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = ",".join(value)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and key in INTEGER_ID_FIELDS:
            value = str(value)  # an integer id, as `TweetEvent` takes one (a float would have lost digits)
        if not isinstance(value, str):  # as the ingester refuses it
            raise SchemaError(f"field {key!r} must be a string, not a JSON {_json_kind(value)}")
        cells[key] = value
    return cells


def _row_order(row: ReplayRow) -> tuple[datetime, str]:
    return row.tweet.created_at, row.tweet.id


def _parse_row(
    values: dict[str, str],
    line: int,
    oracle: bool,
    reason_fields: Sequence[str],
    brands_of: Callable[[str], tuple[str, ...]],
) -> ReplayRow:
    """One row as the ingester would publish it (`TweetEvent`'s validation and text rule, the brand ids
    `brands_of` its brand cell: the first non-empty of BRAND_FIELDS), plus its label."""
    cells = {key: value.strip() for key, value in values.items() if key != "text"}
    brand = first_filled(cells, BRAND_FIELDS)
    if not cells.get("id"):
        raise SchemaError("empty 'id'")
    if not brand:
        raise SchemaError("empty 'brand'")
    brands = brands_of(brand)
    if not brands:  # the ingester attributes such a tweet to no brand, and drops it
        raise SchemaError(f"brand {brand!r} has no Latin letter or digit a brand id is made of (a-z, 0-9)")
    if is_blank(values.get("text", "")):
        raise SchemaError("empty 'text'")
    label = None
    if oracle:
        label = cells.get("label", "").lower()
        if label not in LABELS:
            raise SchemaError(f"label {label!r} is not one of {', '.join(LABELS)}")
    tweet = TweetEvent.from_dict(
        {
            "id": cells["id"],
            "created_at": cells.get("created_at"),
            "text": values["text"],
            "brands": list(brands),
            "author_id": first_filled(cells, AUTHOR_FIELDS),
            "lang": cells.get(LANGUAGE_COLUMN),
            "source": "replay",
        }
    )
    return ReplayRow(line, tweet, label, first_filled(cells, reason_fields))


def _json_kind(value: object) -> str:
    """What JSON calls the value's type ("object", "number"; "null", "true" or "false" as written)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return kinds.get(type(value), type(value).__name__)


@contextmanager
def fewer_collections(young: int = REPLAY_GC_YOUNG) -> Iterator[None]:
    """Collect the youngest generation every `young` allocations (Python's default: 700) until the block ends.

    A replay allocates objects by the million, almost none in reference cycles, and keeps hundreds of
    thousands alive (the rows being sorted, each text's verdict, the detector's last hour): at Python's
    default a collection came every 700 allocations and a full one (all of those objects) 22 times on a
    tuning seed, 2 CPU-seconds of the replay process (README, "Fewer garbage collections in a replay").
    Only when cyclic garbage is freed changes, never what is computed. The thresholds are put back after.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(young, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _batches(rows: Iterable[ReplayRow], size: int) -> Iterator[list[ReplayRow]]:
    remaining = iter(rows)
    while batch := list(islice(remaining, size)):
        yield batch


def scored_batches(
    rows: Iterable[ReplayRow], model: ProbabilityModel | None, batch_size: int
) -> Iterator[list[ScoredTweet]]:
    """Scored tweets batch by batch; the model scores batch k+1 in a thread while batch k is detected.

    ONNX Runtime releases the GIL, so detection overlaps the model's matrix work. Each tweet gets its
    language (the file's `lang` column, else detected: CLD2 releases the GIL too, so a batch's new texts
    are read by it in a second thread while the model scores them, not after); with the oracle, people
    labelled every tweet, so only the file's own `lang` column can flag one.
    """
    if model is None:
        trusted = LanguageGate()
        for batch in _batches(rows, batch_size):
            yield [
                _scored(
                    row,
                    row.label or "neutral",
                    {row.label or "neutral": 1.0},
                    "oracle",
                    trusted.identify("", row.tweet.lang),
                )
                for row in batch
            ]
        return
    labels = model.labels
    version = model.model_version
    gate = gate_for(model)
    # Each distinct text's label, probabilities and detected language, for the whole replay: a tweet's
    # probabilities depend on its text alone (padded to its own length bucket, `models.vocab`; the same
    # bits in any batch), so a copy or a retweet hours later is not scored again.
    verdicts: dict[str, _Verdict] = {}

    def score(batch: Sequence[ReplayRow]) -> list[_Verdict]:
        if len(verdicts) >= SCORED_TEXTS_KEPT:
            verdicts.clear()
        texts = [r.tweet.text for r in batch]
        new = [text for text in dict.fromkeys(texts) if text not in verdicts]
        if new:
            languages = pool.submit(gate.identify_many, new)  # found while the model computes
            probabilities = model.predict_proba(new)
            winners = probabilities.argmax(axis=1).tolist()
            found = zip(new, winners, probabilities.tolist(), languages.result(), strict=True)
            for text, winner, probs, language in found:
                verdicts[text] = _Verdict(labels[winner], probs, language)
        return [  # a tweet tagged "und" (or nothing) gets its text's language, as detected
            verdicts[text]._replace(language=gate.identify(text, r.tweet.lang))
            if r.tweet.lang != UNDETERMINED
            else verdicts[text]
            for r, text in zip(batch, texts, strict=True)
        ]

    # Two threads: the one `score` in flight, and the language detection it hands off (a second `score` in
    # flight would wait on a thread the first holds).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-score") as pool:
        batches = _batches(rows, batch_size)  # read as scoring goes: a replay holds two batches, not the file
        batch = next(batches, None)
        pending: Future[list[_Verdict]] | None = None if batch is None else pool.submit(score, batch)
        while batch is not None and pending is not None:
            scored = pending.result()
            following = next(batches, None)
            pending = None if following is None else pool.submit(score, following)
            yield [
                _scored(row, label, dict(zip(labels, probs, strict=True)), version, language)
                for row, (label, probs, language) in zip(batch, scored, strict=True)
            ]
            batch = following


class _Verdict(NamedTuple):
    """What scoring gives one text: its label, its probabilities (the model's label order), its language."""

    label: str
    probabilities: list[float]
    language: Language


def _scored(
    row: ReplayRow, label: str, probabilities: dict[str, float], version: str, language: Language
) -> ScoredTweet:
    return ScoredTweet(
        tweet=row.tweet,
        label=label,
        probabilities=probabilities,
        model_version=version,
        negative_reason=row.reason if label == "negative" else None,
        scored_at=row.tweet.created_at,
        language=language.code,
        language_supported=language.supported,
    )


def alert_json(alert: Alert, detected_at: datetime) -> str:
    """One alerts-out line: the alert plus `detected_at`, the event time at which it was emitted."""
    payload = alert.to_dict()
    payload["detected_at"] = format_timestamp(detected_at)
    return json.dumps(payload, ensure_ascii=False)


def run_replay(
    rows: Iterable[ReplayRow],
    detector: BuzzDetector,
    out: TextIO,
    summary: ReplaySummary,
    model: ProbabilityModel | None = None,
    speed: float = math.inf,
    batch_size: int = 2048,
    on_alert: Callable[[Alert], None] | None = None,
    wait: Callable[[float], bool] = wait_by_sleeping,
    stop: threading.Event | None = None,
) -> None:
    """Feed the rows through scoring and the detector, writing each alert line as it fires.

    `speed` is event seconds per wall second (inf = as fast as possible), paced by `buzzwatch.replay.paced`
    (`wait(seconds)` waits; True stops the replay). Once `stop` is set (a signal: pass `stop.wait` as
    `wait`), the replay stops before its next tweet, `summary.stopped`: the detector is not flushed (the
    stream did not end), so the alerts written are those a whole replay writes up to then.
    """
    summary.scoring = "oracle labels" if model is None else f"model {model.model_version}"
    started = time.perf_counter()
    last_event: datetime | None = None

    def emit(alerts: list[Alert], detected_at: datetime) -> None:
        for alert in alerts:
            out.write(alert_json(alert, detected_at) + "\n")
            summary.alerts[alert.kind] += 1
            summary.alerts_by_brand[alert.brand] += 1
            if on_alert is not None:
                on_alert(alert)
        if alerts:
            out.flush()

    batches = scored_batches(rows, model, batch_size if math.isinf(speed) else min(batch_size, 256))
    for scored in paced(chain.from_iterable(batches), _event_time, speed, wait, time.perf_counter):
        if stop is not None and stop.is_set():
            break
        summary.tweets += 1
        summary.label_counts[scored.label] += 1
        if not scored.language_supported:
            summary.unsupported_languages[scored.language] += 1
        last_event = scored.tweet.created_at
        emit(detector.observe(scored), last_event)
    summary.stopped = stop is not None and stop.is_set()
    summary.event_time = last_event
    if last_event is not None and not summary.stopped:
        emit(detector.flush(), last_event)
    summary.seconds = time.perf_counter() - started
    summary.brands = detector.brands
    summary.detector_stats = dict(detector.stats)


def _event_time(scored: ScoredTweet) -> datetime:
    return scored.tweet.created_at
