"""Build the detection benchmark's replay files from the shared labelled tweets under data/.

For each seed: `tweets.csv` (the replay input: id, created_at, text, brand, label, negativereason, author),
`episodes.csv` (ground truth: the injected bad buzzes) and `decoys.csv` (surges that must NOT alert).

- Brands: the six airlines of the airline data set (its `airline` column).
- Normal traffic: about one tweet a minute per brand on average (0.5 to 1.6 depending on the brand),
  with a day/night cycle in each brand's
  local time (quiet nights, about 0.1 a minute) and quieter weekends. A normal tweet is one of the
  brand's own airline tweets (any label) or a general tweet (SemEval, Kaggle tweet-sentiment, Sanders);
  3% are retweets of a recent normal tweet.
- Bad buzzes: extra NEGATIVE airline tweets (their airline mention rewritten to the brand), some with a
  dominant negative reason; varied intensity (log-uniform extra negatives per minute), duration and
  ramp-up; slow burns among them; 20% of their tweets are retweets of earlier ones, 10% non-negative
  replies. Start times fall at any hour, nights included.
- Decoys: positive/neutral promotions (5-25 tweets a minute), retweet storms of one neutral tweet
  (hundreds of copies), news surges (volume x4 at the usual share) and "night crumbs" (2-4 negative
  tweets within 10 minutes on a quiet night).
- Authors (file version 2), as in the real airline week: a tweet is a follow-up by someone who already
  tweeted in the same conversation (the brand's traffic, an episode, a promotion) within the hour with
  the real week's repeat share (its airline tweets whose author tweeted at that airline in the hour
  before), else by a new author: an airline tweet's real `name`, or a new synthetic one. Retweets of a
  storm and night crumbs each have their own author. "Rants" are a decoy of their own: the real week's
  one-author hours (an author's hour at one airline with `RANT_NEGATIVES` or more negative tweets),
  replayed at the real rate per airline-week, each with its real size and span, real negative tweets,
  one synthetic author, at any hour away from the episodes. Authors and rants come from a random stream
  of their own: every other row of a seed is the same as in version 1 (no author column).

`real_week` writes the real week itself (data/airline_us, Feb 2015, nothing injected) as a replay file
with its authors, for the false alerts on real traffic.

Usage: .venv/bin/python bench/detection_data.py --seed 1 --weeks 4 --out var/bench/detection/seed1
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from buzzwatch.schema import format_timestamp, parse_timestamp

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "data"
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HANDLES = {
    "American": "@AmericanAir",
    "Delta": "@JetBlue",  # the Kaggle file's "Delta" tweets address @JetBlue
    "Southwest": "@SouthwestAir",
    "US Airways": "@USAirways",
    "United": "@united",
    "Virgin America": "@VirginAmerica",
}
UTC_OFFSET_HOURS = {
    "American": -6,
    "Delta": -5,
    "Southwest": -6,
    "US Airways": -5,
    "United": -6,
    "Virgin America": -8,
}
# Mean tweets per minute of each brand (about one a minute; brands differ, as real ones do).
BRAND_RATE = {
    "American": 1.2,
    "Delta": 0.8,
    "Southwest": 1.0,
    "US Airways": 1.4,
    "United": 1.6,
    "Virgin America": 0.5,
}
DATA_VERSION = 2  # 2: authors and rants
RANT_NEGATIVES = 6  # the detector's min_negatives: one author alone could fill a firing window
HANDLE_RE = re.compile("|".join(re.escape(h) for h in HANDLES.values()), re.IGNORECASE)
GENERAL_FILES = (
    "semeval2017_task4a/twitter-2013train.csv",
    "semeval2017_task4a/twitter-2016train.csv",
    "semeval2017_task4a/twitter-2016test.csv",
    "tweet_sentiment_extraction/train.csv",
    "sanders/all.csv",
)
# Relative tweet rate by local hour: quiet nights, a morning rise, busy days and evenings (mean 1.0).
_PROFILE = [
    0.12,
    0.08,
    0.06,
    0.06,
    0.08,
    0.2,
    0.5,
    0.9,
    1.3,
    1.5,
    1.6,
    1.6,
    1.6,
    1.6,
    1.5,
    1.5,
    1.5,
    1.6,
    1.7,
    1.7,
    1.5,
    1.1,
    0.6,
    0.3,
]
HOUR_PROFILE = [p * 24 / sum(_PROFILE) for p in _PROFILE]
OWN_TWEET_SHARE = 0.3
RETWEET_SHARE = 0.03
REASONS_FOR_DOMINANCE = (
    "Lost Luggage",
    "Late Flight",
    "Cancelled Flight",
    "Customer Service Issue",
    "Flight Booking Problems",
)


@dataclass(frozen=True)
class Pools:
    """The labelled texts the generator draws from."""

    airline: dict[str, list[tuple[str, str, str]]]  # brand -> [(text, label, reason)]
    negatives: list[tuple[str, str, str]]  # (text, reason, airline) of every airline negative
    general: dict[str, list[str]]  # label -> texts
    author_of: dict[str, str]  # airline text -> its real author (`name`)
    repeat_share: float  # real week: share of airline tweets whose author tweeted at that airline in the hour
    rants: list[tuple[int, float]]  # real week's one-author hours: (negative tweets, minutes first to last)
    rants_per_week: float  # ... per airline-week


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def load_pools() -> Pools:
    """Read the airline and general tweets (deduplicated by text)."""
    airline: dict[str, list[tuple[str, str, str]]] = {brand: [] for brand in HANDLES}
    negatives = []
    author_of: dict[str, str] = {}
    seen: set[str] = set()
    real_week_rows = _read(DATA / "airline_us" / "train.csv")
    for row in real_week_rows:
        key = row["text"].strip().lower()
        if key in seen or row["airline"] not in airline:
            continue
        seen.add(key)
        airline[row["airline"]].append((row["text"], row["label"], row["negativereason"]))
        author_of[row["text"]] = row["name"]
        if row["label"] == "negative":
            negatives.append((row["text"], row["negativereason"], row["airline"]))
    general: dict[str, list[str]] = {"negative": [], "neutral": [], "positive": []}
    for name in GENERAL_FILES:
        for row in _read(DATA / name):
            key = row["text"].strip().lower()
            if key in seen or row["label"] not in general or not key:
                continue
            seen.add(key)
            general[row["label"]].append(row["text"])
    return Pools(airline, negatives, general, author_of, *_author_figures(real_week_rows))


def _author_figures(rows: list[dict[str, str]]) -> tuple[float, list[tuple[int, float]], float]:
    """The real week's repeat share, one-author hours ("rants") and rants per airline-week (see above)."""
    by_author: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for row in {r["id"]: r for r in rows}.values():
        moment = parse_timestamp(row["created_at"]).timestamp()
        by_author.setdefault((row["name"], row["airline"]), []).append((moment, row["label"] == "negative"))
    repeats, rants = 0, []
    for tweets in by_author.values():
        tweets.sort()
        repeats += sum(b[0] - a[0] <= 3600 for a, b in itertools.pairwise(tweets))
        best: tuple[int, float] = (0, 0.0)
        for index, (start, _) in enumerate(tweets):
            hour = [t for t in tweets[index:] if t[0] - start <= 3600 and t[1]]
            if hour and len(hour) > best[0]:
                best = (len(hour), (hour[-1][0] - hour[0][0]) / 60)
        if best[0] >= RANT_NEGATIVES:
            rants.append(best)
    tweets = sum(len(t) for t in by_author.values())
    times = [t[0] for group in by_author.values() for t in group]
    airline_weeks = len({airline for _, airline in by_author}) * (max(times) - min(times)) / (7 * 86400)
    return repeats / tweets, sorted(rants), len(rants) / airline_weeks


def rebrand(text: str, brand: str) -> str:
    """Point an airline tweet at `brand` (its @handle replaced)."""
    return HANDLE_RE.sub(HANDLES[brand], text)


def local_hour(moment: datetime, brand: str) -> int:
    """The brand's local hour of the day."""
    return (moment + timedelta(hours=UTC_OFFSET_HOURS[brand])).hour


class Generator:
    """Writes one seed's tweets, episodes and decoys."""

    def __init__(self, pools: Pools, seed: int, weeks: float, rate: float = 1.0) -> None:
        self.pools = pools
        self.rng = random.Random(seed)
        self.author_rng = random.Random(f"{seed}-authors")  # authors and rants: the other rows stay as in v1
        self._recent: dict[str, deque[tuple[datetime, str]]] = {}
        self._authors = 0
        self.seed = seed
        self.weeks = weeks
        self.rate = rate
        self.end = START + timedelta(weeks=weeks)
        self.rows: list[dict[str, str]] = []
        self.episodes: list[dict[str, str]] = []
        self.decoys: list[dict[str, str]] = []
        self._ids = 0

    def _new_author(self) -> str:
        self._authors += 1
        return f"user{self.seed}-{self._authors}"

    def _author(self, conversation: str, moment: datetime, own: str | None = None) -> str:
        """A follow-up by someone of the conversation's last hour (real week's repeat share), else `own`
        (an airline tweet's real author) or a new author."""
        recent = self._recent.setdefault(conversation, deque())
        while recent and recent[0][0] < moment - timedelta(hours=1):
            recent.popleft()
        if recent and self.author_rng.random() < self.pools.repeat_share:
            author = self.author_rng.choice(recent)[1]
        else:
            author = own or self._new_author()
        recent.append((moment, author))
        return author

    def _add(
        self,
        moment: datetime,
        brand: str,
        text: str,
        label: str,
        reason: str,
        kind: str,
        author: str,
    ) -> str:
        self._ids += 1
        tweet_id = f"s{self.seed}-{self._ids}"
        self.rows.append(
            {
                "id": tweet_id,
                "created_at": moment.isoformat().replace("+00:00", "Z"),
                "text": text,
                "brand": brand,
                "label": label,
                "negativereason": reason,
                "kind": kind,
                "author": author,
            }
        )
        return tweet_id

    def _normal_tweet(self, brand: str) -> tuple[str, str, str]:
        rng = self.rng
        if rng.random() < OWN_TWEET_SHARE:
            return rng.choice(self.pools.airline[brand])
        roll = rng.random()  # general tweets at a 20% / 40% / 40% mix
        label = "negative" if roll < 0.2 else ("neutral" if roll < 0.6 else "positive")
        return rng.choice(self.pools.general[label]), label, ""

    def background(self, brand: str) -> None:
        """Normal traffic minute by minute (Poisson counts, uniform times within the minute)."""
        rng = self.rng
        recent: list[tuple[str, str, str]] = []
        minute = START
        while minute < self.end:
            weekend = 0.75 if (minute + timedelta(hours=UTC_OFFSET_HOURS[brand])).weekday() >= 5 else 1.0
            expected = self.rate * BRAND_RATE[brand] * HOUR_PROFILE[local_hour(minute, brand)] * weekend
            for _ in range(_poisson(rng, expected)):
                moment = minute + timedelta(seconds=rng.uniform(0, 60))
                if recent and rng.random() < RETWEET_SHARE:
                    text, label, reason = rng.choice(recent)
                    text = f"RT @fan{rng.randrange(1000)}: {text}"
                else:
                    text, label, reason = self._normal_tweet(brand)
                    recent = [*recent[-50:], (text, label, reason)]
                author = self._author(brand, moment, self.pools.author_of.get(text))
                self._add(moment, brand, text, label, reason, "normal", author)
            minute += timedelta(minutes=1)

    def _times(self, start: datetime, minutes: float, peak_per_minute: float, ramp: float) -> list[datetime]:
        """Event times of an inhomogeneous Poisson process: linear ramp-up, then flat."""
        times = []
        t = 0.0
        while True:
            t += self.rng.expovariate(peak_per_minute)
            if t >= minutes:
                return [start + timedelta(minutes=x) for x in times]
            if ramp <= 0 or t >= ramp or self.rng.random() < t / ramp:
                times.append(t)

    def episode(self, brand: str, start: datetime) -> None:
        """A bad buzz: extra negative tweets, some of them retweets, a few non-negative replies."""
        rng = self.rng
        slow = rng.random() < 0.2
        if slow:
            peak, minutes, ramp = rng.uniform(0.8, 1.5), rng.uniform(60, 180), rng.uniform(10, 30)
        else:
            peak, minutes, ramp = (
                math.exp(rng.uniform(math.log(1.5), math.log(15))),
                rng.uniform(20, 120),
                rng.uniform(0, 10),
            )
        dominant = rng.choice(REASONS_FOR_DOMINANCE) if rng.random() < 0.5 else ""
        pool = self.pools.negatives
        focused = [n for n in pool if n[1] == dominant] if dominant else pool
        sent: list[tuple[str, str]] = []
        episode_id = f"{brand}#{len(self.episodes)}"
        times = self._times(start, minutes, peak, ramp)
        for moment in times:
            roll = rng.random()
            if roll < 0.1:
                text, label, _ = self._normal_tweet(brand)
                while label == "negative":
                    text, label, _ = self._normal_tweet(brand)
                self._add(moment, brand, text, label, "", "episode-reply", self._author(episode_id, moment))
                continue
            if sent and roll < 0.3:
                text, reason = rng.choice(sent)
                text = f"RT @angry{rng.randrange(100)}: {text}"
                self._add(
                    moment, brand, text, "negative", reason, "episode", self._author(episode_id, moment)
                )
                continue
            text, reason, _ = rng.choice(focused if rng.random() < 0.7 else pool)
            text = rebrand(text, brand)
            sent.append((text, reason))
            self._add(moment, brand, text, "negative", reason, "episode", self._author(episode_id, moment))
        self.episodes.append(
            {
                "episode_id": episode_id,
                "brand": brand,
                "start": times[0].isoformat() if times else start.isoformat(),
                "end": (start + timedelta(minutes=minutes)).isoformat(),
                "kind": "slow" if slow else "sharp",
                "peak_per_minute": f"{peak:.2f}",
                "minutes": f"{minutes:.0f}",
                "ramp_minutes": f"{ramp:.1f}",
                "tweets": str(len(times)),
                "dominant_reason": dominant,
            }
        )

    def decoy(self, brand: str, start: datetime, kind: str) -> None:
        """A surge that is not a bad buzz."""
        rng = self.rng
        conversation = f"{brand}#{kind}#{len(self.decoys)}"
        if kind == "promo":
            minutes, per_minute = rng.uniform(30, 120), rng.uniform(5, 25)
            for moment in self._times(start, minutes, per_minute, 5):
                if rng.random() < 0.5:
                    text = rng.choice([t for t, label, _ in self.pools.airline[brand] if label == "positive"])
                    label = "positive"
                else:
                    label = rng.choice(("positive", "neutral"))
                    text = rng.choice(self.pools.general[label])
                self._add(moment, brand, text, label, "", "promo", self._author(conversation, moment))
        elif kind == "retweet_storm":
            minutes, per_minute = rng.uniform(30, 90), rng.uniform(5, 25)
            original = rng.choice([t for t, label, _ in self.pools.airline[brand] if label == "neutral"])
            for moment in self._times(start, minutes, per_minute, 3):
                self._add(
                    moment,
                    brand,
                    f"RT @{brand.replace(' ', '')}News: {original}",
                    "neutral",
                    "",
                    "retweet_storm",
                    self._new_author(),
                )
        elif kind == "news_surge":
            minutes = rng.uniform(30, 90)
            for moment in self._times(start, minutes, 4.0 * self.rate * BRAND_RATE[brand] * 1.5, 5):
                text, label, reason = self._normal_tweet(brand)
                author = self._author(conversation, moment, self.pools.author_of.get(text))
                self._add(moment, brand, text, label, reason, "news_surge", author)
        else:  # night crumbs: a few negative tweets on a quiet night
            minutes = 10.0
            for _ in range(rng.randint(2, 4)):
                text, reason, _ = rng.choice(self.pools.negatives)
                moment = start + timedelta(minutes=rng.uniform(0, minutes))
                author = self._new_author()
                self._add(moment, brand, rebrand(text, brand), "negative", reason, "night_crumbs", author)
        self.decoys.append(
            {
                "brand": brand,
                "kind": kind,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=minutes)).isoformat(),
            }
        )

    def rants(self, brand: str) -> None:
        """The real week's one-author hours at its rate, 2 hours or more away from the brand's episodes."""
        rng = self.author_rng
        episodes = [
            (datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"]))
            for e in self.episodes
            if e["brand"] == brand
        ]
        first = START + timedelta(days=2)
        span = (self.end - first).total_seconds()
        margin = timedelta(hours=2)
        for _ in range(round(self.pools.rants_per_week * self.weeks)):
            start = first + timedelta(seconds=rng.uniform(0, span))
            while any(s - margin < start < e + margin for s, e in episodes):
                start = first + timedelta(seconds=rng.uniform(0, span))
            negatives, minutes = rng.choice(self.pools.rants)
            author = self._new_author()
            for _ in range(negatives):
                text, reason, _ = rng.choice(self.pools.negatives)
                moment = start + timedelta(minutes=rng.uniform(0, minutes))
                self._add(moment, brand, rebrand(text, brand), "negative", reason, "rant", author)
            end = start + timedelta(minutes=minutes)
            self.decoys.append(
                {"brand": brand, "kind": "rant", "start": start.isoformat(), "end": end.isoformat()}
            )

    def _slots(self, brand: str, count: int, night: bool = False) -> list[datetime]:
        """Non-overlapping start times after a two-day warm-up, at least 8 hours apart."""
        taken = [
            datetime.fromisoformat(e["start"]) for e in self.episodes + self.decoys if e["brand"] == brand
        ]
        slots: list[datetime] = []
        first = START + timedelta(days=2)
        span = (self.end - timedelta(hours=4) - first).total_seconds()
        while len(slots) < count:
            moment = first + timedelta(seconds=self.rng.uniform(0, span))
            moment = moment.replace(second=0, microsecond=0) + timedelta(seconds=self.rng.uniform(0, 60))
            if night and local_hour(moment, brand) not in (1, 2, 3, 4):
                continue
            if all(abs((moment - other).total_seconds()) > 8 * 3600 for other in taken + slots):
                slots.append(moment)
        return slots

    def build(self, episodes_per_week: float = 2.0) -> None:
        """Everything for every brand."""
        for brand in HANDLES:
            self.background(brand)
            for start in self._slots(brand, round(episodes_per_week * self.weeks)):
                self.episode(brand, start)
            for kind, per_week in (("promo", 1), ("retweet_storm", 1), ("news_surge", 0.5)):
                for start in self._slots(brand, round(per_week * self.weeks)):
                    self.decoy(brand, start, kind)
            for start in self._slots(brand, round(3 * self.weeks), night=True):
                self.decoy(brand, start, "night_crumbs")
        for brand in HANDLES:  # last: the rows above are drawn exactly as in version 1
            self.rants(brand)
        self.rows.sort(key=lambda r: (r["created_at"], r["id"]))

    def write(self, out: Path) -> None:
        """tweets.csv (replay input), episodes.csv and decoys.csv (ground truth)."""
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(
            out / "tweets.csv",
            self.rows,
            ["id", "created_at", "text", "brand", "label", "negativereason", "author"],
        )
        _write_csv(out / "tweets_kind.csv", self.rows, ["id", "kind"])
        _write_csv(out / "episodes.csv", self.episodes, list(self.episodes[0]))
        _write_csv(out / "decoys.csv", self.decoys, ["brand", "kind", "start", "end"])


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


def _poisson(rng: random.Random, mean: float) -> int:
    threshold, count, product = math.exp(-mean), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def _write_csv(path: Path, rows: Sequence[dict[str, str]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def build(seed: int, weeks: float, out: Path, pools: Pools | None = None) -> Path:
    """Generate and write one seed's files; returns the folder."""
    generator = Generator(pools or load_pools(), seed, weeks)
    generator.build()
    generator.write(out)
    return out


def main() -> None:
    """Command line: build one seed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weeks", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=None, help="default var/bench/detection/seed<N>")
    args = parser.parse_args()
    out = args.out or REPO_ROOT / "var" / "bench" / "detection" / f"seed{args.seed}"
    build(args.seed, args.weeks, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
