"""What the detector holds, by name: a brand's closed minutes, window sums, tweets and episodes.

`BuzzDetector` (detector.py) does the counting and testing; this module is its data and how that data is
saved. A saved brand (`brand_state_dict`) is JSON-ready plain data: closed minutes, window sums and tweets
are saved as compact lists (`to_row` / `from_row` give the field order, in one place per type), so the
format read by earlier versions is unchanged and their checkpoints load as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from worker.detection.baseline import SETTLED_TWEETS, DayProfileBaseline, Evidence, Expectation
from worker.detection.config import DetectorConfig
from worker.detection.explain import ReferenceCounts, TweetRecord, copy_key


@dataclass(slots=True)
class ClosedMinute:
    """One closed minute of a brand: its weighted counts and what was expected of it.

    Counts are weighted (copies and one author's tweets count 1 + ln(n), see the detector) and soft
    (`negatives` sums the tweets' negative probabilities, `squares` their squares). A late tweet still
    adds to a retained minute, so the counts can grow after the minute closed.
    """

    minute: int  # minutes since the epoch
    total: float
    negatives: float
    expected_total: float
    expected_negatives: float
    flagged: bool = False  # it looked unusual (inside an episode, or a high score): barely learned
    squares: float = 0.0
    expected_tweets: float = SETTLED_TWEETS  # tweets behind `expected_total` (few while a brand is new)
    # the negative tweets the probabilities stand for, each tweet at most one (`negatives` with hard labels)
    negative_tweets: float = 0.0
    # `evidence`'s last answer and the figures it came from (a minute's evidence is asked for 4 times)
    _evidence: tuple[tuple[Any, ...], Evidence] | None = field(default=None, repr=False, compare=False)

    def to_row(self) -> list[Any]:
        """JSON-ready form: [minute, total, negatives, expected total, expected negatives, flag, squares,
        expected tweets, negative tweets]."""
        return [
            self.minute,
            self.total,
            self.negatives,
            self.expected_total,
            self.expected_negatives,
            1.0 if self.flagged else 0.0,
            self.squares,
            self.expected_tweets,
            self.negative_tweets,
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ClosedMinute:
        """Rebuild from `to_row`; a row saved before squares were kept counted hard labels (p^2 = p), one
        saved before the expectation's tweets were kept had a settled expectation, and one saved before
        negative tweets were kept counts them as its summed probabilities (as the detector then did)."""
        minute, total, negatives, expected_total, expected_negatives, flag = row[:6]
        squares = row[6] if len(row) > 6 else negatives
        expected_tweets = row[7] if len(row) > 7 else SETTLED_TWEETS
        negative_tweets = row[8] if len(row) > 8 else negatives
        return cls(
            minute,
            total,
            negatives,
            expected_total,
            expected_negatives,
            flag >= 1.0,
            squares,
            expected_tweets,
            negative_tweets,
        )

    def evidence(self, config: DetectorConfig, baseline: DayProfileBaseline) -> Evidence:
        """What the minute teaches the baseline (little when it looked unusual: flagged).

        Kept until the minute's counts or flag change (one detector, one config): the same object is
        returned, so callers must not modify it.
        """
        figures = (
            self.total,
            self.negatives,
            self.squares,
            self.flagged,
            self.expected_total,
            self.expected_tweets,
            baseline.utc_offset,  # its exposure reads the day shape, which turns with the brand's clock
        )
        if self._evidence is not None and self._evidence[0] == figures:
            return self._evidence[1]
        # (1 - (1 - w), not w: the weight the baseline was always fed, to the last bit)
        weight = 1.0 - (1.0 - config.anomaly_weight) if self.flagged else 1.0
        evidence = baseline.contribution(
            baseline.hour_of(self.minute),
            self.total,
            self.negatives,
            self.squares,
            self.expected_total,
            weight,
            self.expected_tweets,
        )
        self._evidence = (figures, evidence)
        return evidence


@dataclass(slots=True)
class WindowSums:
    """A window's running sums over its closed minutes (the newest `minutes` of them)."""

    total: float = 0.0
    negatives: float = 0.0
    expected_total: float = 0.0
    expected_negatives: float = 0.0
    negative_tweets: float = 0.0  # see `ClosedMinute.negative_tweets`

    def to_row(self) -> list[float]:
        """JSON-ready form: [total, negatives, expected total, expected negatives, negative tweets]."""
        return [
            self.total,
            self.negatives,
            self.expected_total,
            self.expected_negatives,
            self.negative_tweets,
        ]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> WindowSums:
        """Rebuild from `to_row` (a row saved before negative tweets were kept: its summed probabilities)."""
        total, negatives, expected_total, expected_negatives = row[:4]
        return cls(
            total, negatives, expected_total, expected_negatives, row[4] if len(row) > 4 else negatives
        )

    @classmethod
    def over(cls, closed: Sequence[ClosedMinute], window: int) -> WindowSums:
        """The sums over the last `window` closed minutes (summed again, e.g. for a changed window)."""
        entries = list(closed)[-window:]
        return cls(
            sum(e.total for e in entries),
            sum(e.negatives for e in entries),
            sum(e.expected_total for e in entries),
            sum(e.expected_negatives for e in entries),
            sum(e.negative_tweets for e in entries),
        )


class WindowExpectation(NamedTuple):
    """A window's expected tweets and negatives, re-estimated at each closed minute from the data before
    the window, with the expectation of its newest hour (what its tests' widths and confusion come from)."""

    tweets: float
    negatives: float
    expectation: Expectation


class MinuteTweets(NamedTuple):
    """The tweets of one closed minute still held (inside the longest window), in arrival order."""

    minute: int
    records: list[TweetRecord]


@dataclass(slots=True)
class WindowEval:
    """The test of one window ending at a closed minute."""

    minutes: int
    volume: float  # tweets in the window, n copies (or n tweets of one author) counting 1 + ln(n)
    negatives: float
    expected_volume: float
    baseline_share: float
    expected_negatives: float
    count_z: float
    share_z: float
    score: float
    eligible: bool

    @property
    def negative_share(self) -> float:
        """Observed negative share of the window (0 when empty)."""
        return self.negatives / self.volume if self.volume else 0.0


@dataclass(slots=True)
class Episode:
    """One bad buzz of one brand, from its first alert to its end."""

    episode_id: str
    start_minute: int
    negatives: float  # excess negatives so far: observed minus expected, from the firing window on
    alerted_negatives: float  # the excess at the last alert
    last_alert_minute: int
    quiet_minutes: int = 0
    alerts: int = 1
    ended_minute: int | None = None
    onset_minute: int | None = None  # the estimated start of the buzz (`onset.estimate_onset`)
    lapsed: bool = False  # quiet for `end_quiet_minutes` since its last alert (see `_flaring_up`)


@dataclass(slots=True)
class BrandState:
    """Everything the detector holds for one brand."""

    brand: str
    first_minute: int
    baseline: DayProfileBaseline
    pending: dict[int, list[TweetRecord]] = field(default_factory=dict)  # open minutes' tweets
    closed: deque[ClosedMinute] = field(default_factory=deque)  # retained closed minutes, oldest first
    sums: list[WindowSums] = field(default_factory=list)  # one per window, in the config's order
    chunks: deque[MinuteTweets] = field(default_factory=deque)
    reference: deque[str] = field(default_factory=deque)
    ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tweets held -> their `weight_keys`
    copies: dict[str, int] = field(default_factory=dict)  # copy and author keys -> tweets in `chunks`
    episode: Episode | None = None
    last_episode: Episode | None = None
    last_evals: list[WindowEval] = field(default_factory=list)
    reference_counts: ReferenceCounts | None = None  # cache of the reference corpus (detector._reference)
    reference_hour: int | None = None
    # each reference text's term forms and hashtags, kept between recounts (not saved: rebuilt on use)
    reference_forms: dict[str, tuple[dict[str, str], tuple[str, ...]]] = field(default_factory=dict)
    recent: Evidence = field(default_factory=Evidence)  # closed minutes past the gap, not learned yet
    # Per window: the evidence of the minutes in `recent` that the window holds (left out of its expectation)
    inside: list[Evidence] = field(default_factory=list)
    window_expected: list[WindowExpectation] = field(default_factory=list)  # one per window
    # the open minute's expectation and its windows', between its ticks and its closing (not saved)
    open_expected: tuple[int, Expectation, list[WindowExpectation]] | None = None


def weight_keys(record: TweetRecord) -> tuple[str, ...]:
    """The groups whose earlier tweets discount this one: its copies, and its author's tweets if known."""
    key = copy_key(record)
    return (key,) if record.author is None else (key, f"author:{record.author}")


def _records_to_lists(records: Iterable[TweetRecord]) -> list[list[Any]]:
    return [list(r) for r in records]


def _records_from_lists(rows: Iterable[Sequence[Any]]) -> list[TweetRecord]:
    return [TweetRecord(*row) for row in rows]


def _episode_dict(episode: Episode | None) -> dict[str, Any] | None:
    return None if episode is None else asdict(episode)


def brand_state_dict(state: BrandState) -> dict[str, Any]:
    """One brand's state as JSON-ready plain data (`brand_state_from_dict` reads it back)."""
    return {
        "first_minute": state.first_minute,
        "baseline": state.baseline.state_dict(),
        "pending": [[minute, _records_to_lists(records)] for minute, records in state.pending.items()],
        "closed": [entry.to_row() for entry in state.closed],
        "sums": [sums.to_row() for sums in state.sums],
        "chunks": [[chunk.minute, _records_to_lists(chunk.records)] for chunk in state.chunks],
        "reference": list(state.reference),
        "episode": _episode_dict(state.episode),
        "last_episode": _episode_dict(state.last_episode),
        "last_evals": [asdict(e) for e in state.last_evals],
        "reference_counts": state.reference_counts.to_dict() if state.reference_counts else None,
        "reference_hour": state.reference_hour,
        "recent": state.recent.to_list(),
        "inside": [inside.to_list() for inside in state.inside],
    }


def brand_state_from_dict(config: DetectorConfig, brand: str, payload: dict[str, Any]) -> BrandState:
    """Rebuild a brand from `brand_state_dict` output (or from a state saved by an earlier version)."""
    pending = {int(minute): _records_from_lists(rows) for minute, rows in payload["pending"]}
    chunks = deque(MinuteTweets(int(minute), _records_from_lists(rows)) for minute, rows in payload["chunks"])
    ids = {r.id: weight_keys(r) for records in pending.values() for r in records}
    copies: dict[str, int] = {}
    for chunk in chunks:
        for record in chunk.records:
            ids[record.id] = weight_keys(record)
            for key in ids[record.id]:
                copies[key] = copies.get(key, 0) + 1
    baseline = DayProfileBaseline.from_state(config, payload["baseline"])
    closed = deque(ClosedMinute.from_row(row) for row in payload["closed"])
    if "recent" in payload:
        recent = Evidence(*map(float, payload["recent"]))
    else:  # saved before the closed minutes counted in the expectation: summed again
        recent = recent_sum(closed, config, baseline)
    if len(payload.get("inside", ())) == len(config.windows_minutes):
        inside = [Evidence(*map(float, row)) for row in payload["inside"]]
    else:  # saved before the inside sums were kept: summed again
        inside = inside_sums(closed, config, baseline)
    return BrandState(
        brand=brand,
        first_minute=int(payload["first_minute"]),
        baseline=baseline,
        pending=pending,
        closed=closed,
        sums=[WindowSums.from_row(row) for row in payload["sums"]],
        chunks=chunks,
        reference=deque(payload["reference"], maxlen=config.reference_size),
        ids=ids,
        copies=copies,
        episode=Episode(**payload["episode"]) if payload["episode"] else None,
        last_episode=Episode(**payload["last_episode"]) if payload["last_episode"] else None,
        last_evals=[WindowEval(**e) for e in payload["last_evals"]],
        reference_counts=ReferenceCounts.from_dict(payload["reference_counts"])
        if payload.get("reference_counts")
        else None,
        reference_hour=payload.get("reference_hour"),
        recent=recent,
        inside=inside,
    )


def recent_sum(
    closed: Sequence[ClosedMinute], config: DetectorConfig, baseline: DayProfileBaseline
) -> Evidence:
    """`BrandState.recent`, summed from the closed minutes (between two closings): those at least
    `reference_gap_minutes` older than the newest."""
    entries = list(closed)
    recent = Evidence()
    for entry in entries[: max(len(entries) - config.reference_gap_minutes, 0)]:
        recent.add(entry.evidence(config, baseline))
    return recent


def inside_sums(
    closed: Sequence[ClosedMinute], config: DetectorConfig, baseline: DayProfileBaseline
) -> list[Evidence]:
    """Each window's `BrandState.inside`, summed from the closed minutes (between two closings).

    The next minute's window of `w` minutes holds the closed minutes up to `w - 2` minutes older than the
    newest, and `recent` those at least `reference_gap_minutes` older.
    """
    gap = config.reference_gap_minutes
    entries = list(closed)
    sums = []
    for window in config.windows_minutes:
        inside = Evidence()
        for age in range(gap, min(window - 1, len(entries))):
            inside.add(entries[-age - 1].evidence(config, baseline))
        sums.append(inside)
    return sums
