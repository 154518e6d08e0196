"""Build the detection benchmark's streams: one multi-brand week per seed, drawn from a family of streams.

Every tweet is a real labelled tweet from data/ (see data/SOURCES.md); only the times, brands, authors and
"RT @x:" prefixes are synthetic. Each seed draws its own stream from the same recipe, so no two seeds share
a schedule, a base rate, a time zone or a buzz:

Brands (seven per seed; each an "airline" or a "general" brand, with at least one of each):
- two QUIET brands at 0.15-0.3 tweets a minute (log-uniform): one for the whole week, one ADDED AT NIGHT
  (its first tweet at 21:00-01:00 local, on day 2-5) with a bad buzz 10-60 minutes after its first tweet
  and, when the first leaves room, another one before its sixth hour;
- three MID brands at 0.5-2 a minute: one for the week, one ADDED IN THE MORNING (first tweet at 06:00-09:00
  local, day 2-5, buzzes placed as the night brand's) and one whose DAILY RHYTHM SHIFTS by 3-9 hours
  (a time zone) at midnight UTC of day 3 or 4, a decoy for the next 48 hours;
- one BUSY brand at 2-10 a minute for the week;
- one HUGE brand at 100-400 a minute for only 3 hours (its first tweet at 08:00-12:00 local, day 2-6), with
  one non-topical buzz 60-100 minutes in and a volume surge at the usual share 10-30 minutes in.
Each brand has its own UTC offset (-8 to +9 hours), a day/night rhythm in its local time (quiet nights, busy
days; quieter weekends) and its own usual negative share (0.15-0.45, flat over the day).

Texts:
- "general" brands draw every tweet from the general human-labelled sets: SemEval 2013-2016 (all files),
  the Kaggle Tweet Sentiment Extraction train and test files and Sanders (deduplicated by text);
- "airline" brands draw half their normal tweets from the airline tweets of data/airline_us (their airline
  @handle rewritten to the brand's) and half from the general sets; their buzz negatives are 70% airline
  negatives and 30% general negatives.
Within a seed each pool is read as a shuffled cycle, so a text repeats only after its whole pool was used,
and then as a tweet of its own (`reused`: marked with its pass, scored as its words), not as a copy.
The label of a normal tweet is drawn first (negative at the brand's share, else neutral or positive half
and half), then a text with that label. Normal tweets are 3% retweets of a recent one. Most texts are the
champion model's own training data, so its per-tweet errors are smaller than on new tweets;
`load_pools("unseen")` (`bench/detection.py --texts unseen`) draws only from the texts it never trained on
(its held-out splits: 1,812 airline negatives of 7,247, 6,713 general ones of 17,069), the same schedule
with other texts.

Bad buzzes (`episodes.csv`): extra NEGATIVE tweets at `m` times the brand's mean rate (m log-uniform in
1.5-5; 0.4-1.2 on the huge brand): SHARP ones reach their peak within 0-10 minutes and last 30-150 minutes;
SLOW RAMPS (30%) climb linearly for 45-120 minutes at m in 1.5-3, then stay flat for 30-90. Half the buzzes
off the huge brand are TOPICAL: 75% of their new negatives mention the topic (a keyword pattern, `TOPICS`),
the rest are any negatives of the brand's kind. Of a buzz's tweets 15% are retweets of its earlier ones and
8% are non-negative replies. A week-long brand gets three buzzes, one of them starting at night (00:00-05:00
local); the new brands get one or two in their first hours and one later.
Authors: a tweet is by someone who already tweeted in the same conversation (the brand's normal traffic, a
buzz, a decoy) in the hour before with probability 0.25, else by a new author.

Decoys (`decoys.csv`; none may alert), one of each kind per week-long brand, placed like the buzzes:
- `volume_surge`: normal traffic x3-5 (at the usual share) for 30-90 minutes;
- `positive_buzz`: extra positive (and some neutral) tweets at 3-10x the mean rate (1 a minute or more);
- `rant`: one author's 6-20 negative tweets within 10-60 minutes;
- `retweet_storm`: one neutral tweet retweeted by distinct authors at 5-20x the mean rate (2 a minute or
  more) for 20-60 minutes;
- `rhythm_shift` (one brand a seed, see above).
Events of a brand never overlap: each keeps 30 minutes before and 90 after it free.

Files per seed: `tweets.csv` (the replay input: id, created_at, text, brand, label, author; no negative
reason, so explanations name reasons the same way with either labels), `truth.csv` (id, kind, event: which
buzz or decoy a tweet belongs to), `episodes.csv`, `decoys.csv` and `brands.csv`.

`real_week` writes the real airline week itself (data/airline_us, Feb 2015, nothing injected) as a replay
file with its authors, for the false alerts on real traffic.

Usage: .venv/bin/python bench/detection_data.py --seed 1 --out var/bench/detection/seed1
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from buzzwatch.schema import format_timestamp, parse_timestamp

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "data"
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
# 3: families of multi-brand streams; 4: a second buzz in a new brand's first hours; 5: pool texts `reused`
DATA_VERSION = 5
REUSE_MARK = "\u2063"  # INVISIBLE SEPARATOR: a reused pool text's mark (`reused`)
DAYS = 7.0
AIRLINE_HANDLE_RE = re.compile(
    r"@(AmericanAir|JetBlue|SouthwestAir|USAirways|united|VirginAmerica|DeltaAssist|delta)\b", re.IGNORECASE
)
GENERAL_FILES = (
    *(
        f"semeval2017_task4a/twitter-{split}.csv"
        for split in (
            "2013train",
            "2013dev",
            "2013test",
            "2014sarcasm",
            "2014test",
            "2015train",
            "2015test",
            "2016train",
            "2016dev",
            "2016devtest",
            "2016test",
        )
    ),
    "tweet_sentiment_extraction/train.csv",
    "tweet_sentiment_extraction/test.csv",
    "sanders/all.csv",
)
AIRLINE_NAMES = ("AirNova", "SkyLark", "BlueHeron", "Cirrus", "Meridian", "Polaris", "Zephyr", "Altair")
GENERAL_NAMES = ("Nimbus", "Quokka", "Verdant", "Halcyon", "Tessera", "Orbital", "Fennel", "Lumen")


@dataclass(frozen=True)
class Topic:
    """What a topical buzz is about: its tweets match `pattern`; an alert names it with a matching term."""

    name: str
    pattern: str  # matched as a whole word in texts, and in full against an alert's terms and hashtags
    reason: str = ""  # the airline negative reason that also names it (lower case), if any


TOPICS = {
    "airline": (
        Topic("luggage", r"bags?|luggage|baggage", "lost luggage"),
        Topic("delays", r"delay(?:ed|s)?|late", "late flight"),
        Topic("cancellations", r"cancel(?:led|ed|lation|lations|ling)?", "cancelled flight"),
        Topic("on hold", r"hold"),
        Topic("seats", r"seats?|seating"),
    ),
    "general": (
        Topic("apple devices", r"iphone|ipad|apple|ios"),
        Topic("school", r"school|exams?"),
        Topic("illness", r"sick|headache|flu|ill"),
        Topic("sleep", r"sleep|sleepy|tired"),
        Topic("work", r"work|job"),
    ),
}
TOPIC_BY_NAME = {topic.name: topic for topics in TOPICS.values() for topic in topics}
FIRST_HOURS = 6.0  # a buzz this soon after its brand's first tweet is a first-hours buzz
NIGHT_HOURS = (0, 1, 2, 3, 4)  # local hours that count as night
NEW_ROLES = ("quiet_new_night", "mid_new_morning")  # the brands added during the week
TEXT_SETS = ("all", "unseen")  # `load_pools`: every labelled text, or only those the model never trained on
# Relative tweet rate by local hour: quiet nights, a morning rise, busy days and evenings (mean 1.0).
_PROFILE = (0.12, 0.08, 0.06, 0.06, 0.08, 0.2, 0.5, 0.9, 1.3, 1.5, 1.6, 1.6)
_PROFILE += (1.6, 1.6, 1.5, 1.5, 1.5, 1.6, 1.7, 1.7, 1.5, 1.1, 0.6, 0.3)
HOUR_PROFILE = tuple(p * 24 / sum(_PROFILE) for p in _PROFILE)
WEEKEND_FACTOR = 0.8
RETWEET_SHARE = 0.03
FOLLOW_UP_SHARE = 0.25
BUZZ_RETWEET_SHARE = 0.15
BUZZ_REPLY_SHARE = 0.08
TOPIC_SHARE = 0.75
BEFORE_GAP = timedelta(minutes=30)
AFTER_GAP = timedelta(minutes=90)


@dataclass
class Brand:
    """One brand of a stream: who it is, how busy, when it exists."""

    name: str
    family: str  # "airline" or "general"
    role: str  # quiet, quiet_new_night, mid, mid_new_morning, mid_shifted, busy, huge
    rate: float  # mean tweets a minute over a week
    utc_offset: int
    negative_share: float
    start: datetime
    end: datetime
    shift_at: datetime | None = None  # from then on the rhythm follows utc_offset + shift_hours
    shift_hours: int = 0
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)  # events' kept-free spans

    def local_hour(self, moment: datetime) -> int:
        """The hour of the day that sets the brand's rhythm at `moment` (shifted after `shift_at`)."""
        shifted = self.shift_at is not None and moment >= self.shift_at
        return (moment + timedelta(hours=self.utc_offset + (self.shift_hours if shifted else 0))).hour

    def expected_per_minute(self, moment: datetime) -> float:
        """Normal tweets expected in the minute starting at `moment`."""
        local = moment + timedelta(hours=self.utc_offset)
        weekend = WEEKEND_FACTOR if local.weekday() >= 5 else 1.0
        return self.rate * HOUR_PROFILE[self.local_hour(moment)] * weekend


@dataclass(frozen=True)
class Pools:
    """The labelled texts the generator draws from (deduplicated by lower-cased text across all sets)."""

    airline: dict[str, list[str]]  # label -> airline texts
    general: dict[str, list[str]]  # label -> general texts


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load_pools(texts: str = "all") -> Pools:
    """Read the airline and general tweets, each text once (the first label met wins).

    `texts="unseen"`: only the texts the shipped champion never trained on, its held-out rows
    (`models.data.Splits.held_out`: early stop, validation, test and the shifted hold-out), matched by
    normalised text, so that the model's per-tweet errors are those of tweets it meets for the first time
    (about a fifth of the airline texts and half the general ones; topical buzzes repeat their topic's
    texts sooner)."""
    if texts not in TEXT_SETS:
        raise ValueError(f"texts must be one of {TEXT_SETS}, not {texts!r}")
    allowed = _held_out_keys() if texts == "unseen" else None
    seen: set[str] = set()
    airline: dict[str, list[str]] = {"negative": [], "neutral": [], "positive": []}
    general: dict[str, list[str]] = {"negative": [], "neutral": [], "positive": []}
    for target, names in ((airline, ("airline_us/train.csv",)), (general, GENERAL_FILES)):
        for name in names:
            for row in _read(DATA / name):
                key = " ".join(row["text"].lower().split())
                if not key or key in seen or row["label"] not in target:
                    continue
                if allowed is not None and _model_key(row["text"]) not in allowed:
                    continue
                seen.add(key)
                target[row["label"]].append(row["text"])
    return Pools(airline, general)


def _model_key(text: str) -> str:
    """The key the model's splits tell texts apart by (`models.data.dedupe_key` of the normalised text)."""
    from models.data import dedupe_key
    from models.text import normalise

    return dedupe_key(normalise(text))


def _held_out_keys() -> set[str]:
    """The keys of every text no model trains on (`Splits.held_out` of the training data's splits)."""
    from models.data import dedupe_key, load_labelled, make_splits

    return {dedupe_key(norm) for norm in make_splits(load_labelled()).held_out()["norm_text"]}


def topic_texts(texts: Sequence[str], topic: Topic) -> list[str]:
    """The texts that mention the topic (a whole-word match of its pattern, any case)."""
    found = re.compile(rf"\b(?:{topic.pattern})\b", re.IGNORECASE)
    return [text for text in texts if found.search(text)]


def names_topic(terms: Sequence[str], reason: str | None, topic: Topic) -> bool:
    """Whether an alert names the topic: a word of one of its terms, phrases or hashtags matches the topic's
    pattern in full, or the reason it names is the topic's."""
    pattern = re.compile(topic.pattern, re.IGNORECASE)
    if any(pattern.fullmatch(word.lstrip("#")) for term in terms for word in term.split()):
        return True
    return bool(topic.reason) and (reason or "").lower() == topic.reason


class _Cycle:
    """A pool read in a seed's shuffled order, reshuffled each time it is used up; from the second pass on
    each text is `reused` (marked with the pass), so that it is a tweet of its own, not a copy."""

    def __init__(self, texts: Sequence[str], rng: random.Random) -> None:
        if not texts:
            raise ValueError("empty text pool")
        self._texts = list(texts)
        self._rng = rng
        self._order: Iterator[str] = iter(())
        self._passes = 0

    def next(self) -> str:
        """The next text of the cycle."""
        text = next(self._order, None)
        if text is None:
            self._rng.shuffle(self._texts)
            self._order = iter(self._texts)
            self._passes += 1
            text = next(self._order)
        return text if self._passes == 1 else reused(text, self._passes)


def reused(text: str, passes: int) -> str:
    """A pool text drawn on its `passes`-th pass through the pool: the text, an invisible separator and the
    pass number. The detector would take a pool text drawn again within the hour for a copy of the first
    (one opinion amplified, `worker.detection.explain.copy_key`), where the world has another person
    writing the same complaint: the huge brand draws its pools' negatives several times an hour. The mark
    is no term (a number) and `original_text` takes it off, so the benchmark scores the words alone."""
    return f"{text} {REUSE_MARK}{passes}"


def original_text(text: str) -> str:
    """The pool text a stream's text was drawn as (`reused` takes a reuse's mark off)."""
    mark = text.rfind(f" {REUSE_MARK}")
    return text[:mark] if mark >= 0 and text[mark + 2 :].isdigit() else text


def rebrand(text: str, brand: Brand) -> str:
    """Point an airline tweet at the brand (its airline @handle replaced); general texts stay as they are."""
    return AIRLINE_HANDLE_RE.sub(f"@{brand.name}", text) if brand.family == "airline" else text


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _poisson(rng: random.Random, mean: float) -> int:
    threshold, count, product = math.exp(-mean), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def _iso(moment: datetime) -> str:
    return format_timestamp(moment)


class Generator:
    """Draws one seed's stream: brands, normal traffic, bad buzzes and decoys."""

    def __init__(self, pools: Pools, seed: int, days: float = DAYS) -> None:
        if days < 4:
            raise ValueError(
                "a stream needs 4 days or more (new brands start on day 2-5, a rhythm on day 3-4)"
            )
        self.rng = random.Random(seed)
        self.seed = seed
        self.days = days
        self.end = START + timedelta(days=days)
        self._cycles: dict[tuple[str, ...], _Cycle] = {}
        self.pools = pools
        self._recent: dict[str, deque[tuple[datetime, str]]] = {}
        self._authors = 0
        self._ids = 0
        self.rows: list[dict[str, str]] = []
        self.episodes: list[dict[str, str]] = []
        self.decoys: list[dict[str, str]] = []
        self.brands: list[Brand] = []

    # ---- texts and authors ----------------------------------------------------------------------
    def _cycle(self, key: tuple[str, ...], texts: Callable[[], Sequence[str]]) -> _Cycle:
        """The seed's cycle over a pool (`texts` is called once, when the pool is first used)."""
        if key not in self._cycles:
            self._cycles[key] = _Cycle(texts(), random.Random(f"{self.seed}-{'-'.join(key)}"))
        return self._cycles[key]

    def _text(self, brand: Brand, label: str) -> str:
        """A normal tweet's text with that label, from the brand's kind of pool."""
        source = "airline" if brand.family == "airline" and self.rng.random() < 0.5 else "general"
        return rebrand(self._cycle((source, label), lambda: getattr(self.pools, source)[label]).next(), brand)

    def _negative(self, brand: Brand, topic: Topic | None) -> str:
        """A buzz negative: on the topic (at TOPIC_SHARE when topical) or any negative of the brand's kind."""
        if topic is not None and self.rng.random() < TOPIC_SHARE:
            negatives = getattr(self.pools, brand.family)["negative"]
            cycle = self._cycle((brand.family, "topic", topic.name), lambda: topic_texts(negatives, topic))
            return rebrand(cycle.next(), brand)
        source = "airline" if brand.family == "airline" and self.rng.random() < 0.7 else "general"
        return rebrand(
            self._cycle((source, "negative"), lambda: getattr(self.pools, source)["negative"]).next(), brand
        )

    def _normal_label(self, brand: Brand) -> str:
        if self.rng.random() < brand.negative_share:
            return "negative"
        return "neutral" if self.rng.random() < 0.5 else "positive"

    def _new_author(self) -> str:
        self._authors += 1
        return f"user{self.seed}-{self._authors}"

    def _author(self, conversation: str, moment: datetime) -> str:
        """Someone of the conversation's last hour (FOLLOW_UP_SHARE), else a new author."""
        recent = self._recent.setdefault(conversation, deque())
        while recent and recent[0][0] < moment - timedelta(hours=1):
            recent.popleft()
        if recent and self.rng.random() < FOLLOW_UP_SHARE:
            author = self.rng.choice(recent)[1]
        else:
            author = self._new_author()
        recent.append((moment, author))
        return author

    def _add(
        self, moment: datetime, brand: Brand, text: str, label: str, kind: str, event: str, author: str
    ) -> None:
        self._ids += 1
        self.rows.append(
            {
                "id": f"s{self.seed}-{self._ids}",
                "created_at": _iso(moment),
                "text": text,
                "brand": brand.name,
                "label": label,
                "author": author,
                "kind": kind,
                "event": event,
            }
        )

    # ---- brands ---------------------------------------------------------------------------------
    def _local_time(self, offset: int, day: int, low: float, high: float) -> datetime:
        """A UTC moment at a local hour in [low, high) of day `day` (hours past 24 run into the next day)."""
        local_midnight = START + timedelta(days=day) - timedelta(hours=offset)
        return local_midnight + timedelta(hours=self.rng.uniform(low, high))

    def draw_brands(self) -> None:
        """Seven brands with drawn families, rates, zones and shares (see the module docstring)."""
        rng = self.rng
        roles = ("quiet", "quiet_new_night", "mid", "mid_new_morning", "mid_shifted", "busy", "huge")
        families = ["airline", "general"] + [rng.choice(("airline", "general")) for _ in roles[2:]]
        rng.shuffle(families)
        names = {"airline": list(AIRLINE_NAMES), "general": list(GENERAL_NAMES)}
        for family_names in names.values():
            rng.shuffle(family_names)
        last_day = max(1, min(4, int(self.days) - 2))  # new brands: day 2-5 of a week, 2+ days to live
        for role, family in zip(roles, families, strict=True):
            offset = rng.randint(-8, 9)
            if role.startswith("quiet"):
                rate = _log_uniform(rng, 0.15, 0.3)
            elif role == "busy":
                rate = _log_uniform(rng, 2.0, 10.0)
            elif role == "huge":
                rate = _log_uniform(rng, 100.0, 400.0)
            else:
                rate = _log_uniform(rng, 0.5, 2.0)
            start, end = START, self.end
            if role == "quiet_new_night":
                start = self._local_time(offset, rng.randint(1, last_day), 21, 25)
            elif role == "mid_new_morning":
                start = self._local_time(offset, rng.randint(1, last_day), 6, 9)
            elif role == "huge":
                start = self._local_time(offset, rng.randint(1, max(1, min(5, int(self.days) - 1))), 8, 12)
                end = start + timedelta(hours=3)
            brand = Brand(
                name=names[family].pop(),
                family=family,
                role=role,
                rate=rate,
                utc_offset=offset,
                negative_share=rng.uniform(0.15, 0.45),
                start=start,
                end=min(end, self.end),
            )
            if role == "mid_shifted":
                brand.shift_at = START + timedelta(days=rng.randint(2, 3))
                brand.shift_hours = rng.choice((-1, 1)) * rng.randint(3, 9)
            self.brands.append(brand)

    # ---- traffic --------------------------------------------------------------------------------
    def background(self, brand: Brand) -> None:
        """Normal traffic minute by minute (Poisson counts, uniform times within the minute)."""
        rng = self.rng
        recent: deque[tuple[str, str]] = deque(maxlen=50)
        minute = brand.start
        while minute < brand.end:
            for _ in range(_poisson(rng, brand.expected_per_minute(minute))):
                moment = minute + timedelta(seconds=rng.uniform(0, 60))
                if moment >= brand.end:
                    continue
                if recent and rng.random() < RETWEET_SHARE:
                    text, label = rng.choice(recent)
                    text = f"RT @fan{rng.randrange(1000)}: {text}"
                else:
                    label = self._normal_label(brand)
                    text = self._text(brand, label)
                    recent.append((text, label))
                self._add(moment, brand, text, label, "normal", "", self._author(brand.name, moment))
            minute += timedelta(minutes=1)

    def _times(self, start: datetime, minutes: float, peak: float, ramp: float) -> list[datetime]:
        """Event times of a Poisson process at `peak` a minute, rising linearly over `ramp` minutes first."""
        times, t = [], 0.0
        while True:
            t += self.rng.expovariate(peak)
            if t >= minutes:
                return [start + timedelta(minutes=x) for x in times]
            if ramp <= 0 or t >= ramp or self.rng.random() < t / ramp:
                times.append(t)

    def _reserve(self, brand: Brand, start: datetime, minutes: float) -> bool:
        """Keep [start - 30 min, end + 90 min] for one event if free and inside the brand's life."""
        end = start + timedelta(minutes=minutes)
        if start < brand.start or end > brand.end:
            return False
        span = (start - BEFORE_GAP, end + AFTER_GAP)
        if any(span[0] < other[1] and other[0] < span[1] for other in brand.busy):
            return False
        brand.busy.append(span)
        return True

    def _place(self, brand: Brand, minutes: float, night: bool = False, tries: int = 500) -> datetime | None:
        """A free start time anywhere in the brand's life (at a local night hour when `night`)."""
        span = (brand.end - brand.start).total_seconds() / 60 - minutes
        for _ in range(tries):
            if span <= 0:
                return None
            start = brand.start + timedelta(minutes=self.rng.uniform(0, span))
            if night and brand.local_hour(start) not in NIGHT_HOURS:
                continue
            if self._reserve(brand, start, minutes):
                return start
        return None

    def _buzz_shape(self, brand: Brand) -> tuple[str, float, float, float]:
        """(kind, extra negatives a minute at the peak, minutes, ramp minutes) of a bad buzz."""
        rng = self.rng
        if brand.role == "huge":
            return "sharp", _log_uniform(rng, 0.4, 1.2) * brand.rate, rng.uniform(20, 60), rng.uniform(0, 10)
        if rng.random() < 0.3:
            ramp = rng.uniform(45, 120)
            return "slow", _log_uniform(rng, 1.5, 3.0) * brand.rate, ramp + rng.uniform(30, 90), ramp
        return "sharp", _log_uniform(rng, 1.5, 5.0) * brand.rate, rng.uniform(30, 150), rng.uniform(0, 10)

    def episode(self, brand: Brand, shape: tuple[str, float, float, float], start: datetime) -> None:
        """A bad buzz: extra negatives (topical or not), some retweets of its own, a few replies."""
        rng = self.rng
        kind, peak, minutes, ramp = shape
        topics = TOPICS[brand.family]
        topic = rng.choice(topics) if brand.role != "huge" and rng.random() < 0.5 else None
        episode_id = f"{brand.name}#e{len(self.episodes)}"
        sent: list[str] = []
        times = self._times(start, minutes, peak, ramp)
        for moment in times:
            roll = rng.random()
            if roll < BUZZ_REPLY_SHARE:
                label = "neutral" if rng.random() < 0.5 else "positive"
                text, kind_of_tweet = self._text(brand, label), "episode-reply"
            elif sent and roll < BUZZ_REPLY_SHARE + BUZZ_RETWEET_SHARE:
                label, text, kind_of_tweet = (
                    "negative",
                    f"RT @angry{rng.randrange(200)}: {rng.choice(sent)}",
                    "episode",
                )
            else:
                label, text, kind_of_tweet = "negative", self._negative(brand, topic), "episode"
                sent.append(text)
            self._add(moment, brand, text, label, kind_of_tweet, episode_id, self._author(episode_id, moment))
        first = times[0] if times else start
        local = first + timedelta(hours=brand.utc_offset)
        self.episodes.append(
            {
                "episode_id": episode_id,
                "brand": brand.name,
                "family": brand.family,
                "role": brand.role,
                "rate": f"{brand.rate:.3f}",
                "start": _iso(first),
                "end": _iso(start + timedelta(minutes=minutes)),
                "kind": kind,
                "peak_per_minute": f"{peak:.3f}",
                "minutes": f"{minutes:.0f}",
                "ramp_minutes": f"{ramp:.1f}",
                "tweets": str(len(times)),
                "topic": topic.name if topic else "",
                "hours_after_brand_start": f"{(first - brand.start).total_seconds() / 3600:.2f}",
                "local_hour": str(brand.local_hour(first)),
                "local_time": local.strftime("%a %H:%M"),
            }
        )

    def decoy(self, brand: Brand, kind: str, start: datetime, minutes: float, size: float) -> None:
        """A burst that is not a bad buzz (`size`: the kind's multiplier, or a rant's tweet count)."""
        rng = self.rng
        event = f"{brand.name}#d{len(self.decoys)}"
        if kind == "volume_surge":
            for moment in self._times(
                start, minutes, (size - 1) * brand.expected_per_minute(start) + 1e-6, 5
            ):
                label = self._normal_label(brand)
                self._add(
                    moment, brand, self._text(brand, label), label, kind, event, self._author(event, moment)
                )
        elif kind == "positive_buzz":
            for moment in self._times(start, minutes, max(size * brand.rate, 1.0), 5):
                label = "positive" if rng.random() < 0.8 else "neutral"
                self._add(
                    moment, brand, self._text(brand, label), label, kind, event, self._author(event, moment)
                )
        elif kind == "retweet_storm":
            original = self._text(brand, "neutral")
            source = rng.choice(("News", "Daily", "Official"))
            for moment in self._times(start, minutes, max(size * brand.rate, 2.0), 3):
                text = f"RT @{brand.name}{source}: {original}"
                self._add(moment, brand, text, "neutral", kind, event, self._new_author())
        else:  # rant: one author's negatives
            author = self._new_author()
            for _ in range(round(size)):
                moment = start + timedelta(minutes=rng.uniform(0, minutes))
                self._add(moment, brand, self._negative(brand, None), "negative", kind, event, author)
        self._decoy_row(brand, kind, event, start, start + timedelta(minutes=minutes))

    def _decoy_row(self, brand: Brand, kind: str, event: str, start: datetime, end: datetime) -> None:
        self.decoys.append(
            {"event": event, "brand": brand.name, "kind": kind, "start": _iso(start), "end": _iso(end)}
        )

    def _decoy_shape(self, kind: str) -> tuple[float, float]:
        """(minutes, size) of a decoy of that kind."""
        rng = self.rng
        if kind == "volume_surge":
            return rng.uniform(30, 90), rng.uniform(3, 5)
        if kind == "positive_buzz":
            return rng.uniform(30, 120), rng.uniform(3, 10)
        if kind == "retweet_storm":
            return rng.uniform(20, 60), rng.uniform(5, 20)
        return rng.uniform(10, 60), rng.randint(6, 20)

    def schedule(self, brand: Brand) -> None:
        """The brand's bad buzzes and decoys (see the module docstring)."""
        rng = self.rng
        if brand.role == "huge":  # three hours: a short surge, then a buzz (no room for the usual gaps)
            surge, minutes = brand.start + timedelta(minutes=rng.uniform(10, 30)), rng.uniform(10, 20)
            self.decoy(brand, "volume_surge", surge, minutes, rng.uniform(1.5, 2.0))
            kind, peak, minutes, ramp = self._buzz_shape(brand)
            start = brand.start + timedelta(minutes=rng.uniform(60, 100))
            self.episode(
                brand, (kind, peak, min(minutes, (brand.end - start).total_seconds() / 60), ramp), start
            )
            return
        if brand.role in NEW_ROLES:
            shape = self._buzz_shape(brand)
            start = brand.start + timedelta(minutes=rng.uniform(10, 60))
            if self._reserve(brand, start, shape[2]):
                self.episode(brand, shape, start)
            shape = self._buzz_shape(brand)
            free = max(span[1] for span in brand.busy) + BEFORE_GAP
            latest = brand.start + timedelta(hours=FIRST_HOURS, minutes=-15)
            if free < latest and self._reserve(
                brand, start := free + (latest - free) * rng.random(), shape[2]
            ):
                self.episode(brand, shape, start)
            self._place_episode(brand)
            kinds = rng.sample(("volume_surge", "positive_buzz", "retweet_storm", "rant"), 2)
        else:
            self._place_episode(brand, night=True)
            self._place_episode(brand)
            self._place_episode(brand)
            kinds = ["volume_surge", "positive_buzz", "retweet_storm", "rant"]
        for kind in kinds:
            minutes, size = self._decoy_shape(kind)
            start = self._place(brand, minutes)
            if start is not None:
                self.decoy(brand, kind, start, minutes, size)
        if brand.shift_at is not None:
            event = f"{brand.name}#d{len(self.decoys)}"
            self._decoy_row(
                brand, "rhythm_shift", event, brand.shift_at, brand.shift_at + timedelta(hours=48)
            )

    def _place_episode(self, brand: Brand, night: bool = False) -> None:
        shape = self._buzz_shape(brand)
        start = self._place(brand, shape[2], night)
        if start is not None:
            self.episode(brand, shape, start)

    def build(self) -> None:
        """The whole stream."""
        self.draw_brands()
        for brand in self.brands:
            self.background(brand)
            self.schedule(brand)
        self.rows.sort(key=lambda r: (r["created_at"], r["id"]))

    def write(self, out: Path) -> None:
        """tweets.csv (replay input) and the truth: truth.csv, episodes.csv, decoys.csv, brands.csv."""
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(out / "tweets.csv", self.rows, ["id", "created_at", "text", "brand", "label", "author"])
        _write_csv(out / "truth.csv", self.rows, ["id", "kind", "event"])
        _write_csv(out / "episodes.csv", self.episodes, list(self.episodes[0]))
        _write_csv(out / "decoys.csv", self.decoys, ["event", "brand", "kind", "start", "end"])
        brands = []
        for brand in self.brands:
            row = {k: v for k, v in asdict(brand).items() if k != "busy"}
            for key in ("start", "end", "shift_at"):
                row[key] = _iso(row[key]) if row[key] else ""
            brands.append(row)
        _write_csv(out / "brands.csv", brands, list(brands[0]))


def past(seed: int, out: Path, hours: float, pools: Pools | None = None) -> Path:
    """`past-<hours>h.csv` in the seed's folder: `hours` of ordinary traffic of each brand added during the
    week (its day rhythm and share, no event) before its first tweet, what recent search gives when the
    brand is added; drawn apart from the week (ids and authors of their own), written once."""
    path = out / f"past-{hours:g}h.csv"
    if path.exists():
        return path
    week = Generator(pools or load_pools(), seed)
    week.draw_brands()  # the seed's first draws: its brands, as the week has them
    drawn = Generator(week.pools, seed)
    drawn.rng = random.Random(f"past-{seed}-{hours:g}")
    drawn._ids = drawn._authors = 10**9  # never a week's id or author
    for brand in week.brands:
        if brand.role in NEW_ROLES:
            before = brand.start - timedelta(hours=hours)
            drawn.background(replace(brand, start=before, end=brand.start, busy=[]))
    drawn.rows.sort(key=lambda r: (r["created_at"], r["id"]))
    _write_csv(path, drawn.rows, ["id", "created_at", "text", "brand", "label", "author"])
    return path


def real_week(out: Path) -> Path:
    """The real airline week as a replay file (one row per id, UTC times, brand = airline, author = name)."""
    path = out / "tweets.csv"
    if path.exists():
        return path
    rows = {}
    for row in _read(DATA / "airline_us" / "train.csv"):
        rows.setdefault(
            row["id"],
            {
                "id": row["id"],
                "created_at": format_timestamp(parse_timestamp(row["created_at"])),
                "text": row["text"],
                "brand": row["airline"],
                "label": row["label"],
                "negativereason": row["negativereason"],
                "author": row["name"],
            },
        )
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows.values(), key=lambda r: (r["created_at"], r["id"]))
    _write_csv(path, ordered, ["id", "created_at", "text", "brand", "label", "negativereason", "author"])
    return path


def _write_csv(path: Path, rows: Sequence[dict[str, str]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def build(seed: int, out: Path, pools: Pools | None = None, days: float = DAYS) -> Path:
    """Generate and write one seed's files; returns the folder."""
    generator = Generator(pools or load_pools(), seed, days)
    generator.build()
    generator.write(out)
    return out


def main() -> None:
    """Command line: build one seed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=DAYS)
    parser.add_argument("--out", type=Path, default=None, help="default var/bench/detection/seed<N>")
    args = parser.parse_args()
    out = args.out or REPO_ROOT / "var" / "bench" / "detection" / f"seed{args.seed}"
    build(args.seed, out, days=args.days)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
