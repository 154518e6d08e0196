"""Alerts and the saved state do not depend on the string hash seed: the same stream, explained and detected
in processes with different `PYTHONHASHSEED` values, gives the same bytes (replay = live, and a restart
renders no alert anew).

Sets of strings iterate in an order that follows the hash seed; where that order reaches an output (a float
summed over a set, ties broken by iteration order, a set turned into saved counts), two runs of one stream
differ. dff7997 mended one such case: two samples tied on the same terms swapped from one run to the next
(their weights were summed over a set of words, `explain._relevance`); the reference's hashtag counts were
saved in the order of a set of each tweet's hashtags.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

from buzzwatch.schema import ScoredTweet
from buzzwatch.settings import REPO_ROOT
from tests.support.streams import START, background, burst, in_order, run, simple_tokenize
from worker.detection import BuzzDetector, TweetRecord, explain
from worker.detection.explain import ReferenceCounts

HASH_SEEDS = ("0", "1", "2", "3")
TOPIC = ("cancelled", "hold", "hours", "refund", "voucher")  # each complaint names three of them
USUAL_TAGS = " #late #stuck #help #again"  # on the usual negatives: the reference counts several tags a tweet
BUZZ = START + timedelta(hours=32)  # day 2, 08:00 UTC


def tied_texts(count: int, seed: int) -> list[str]:
    """Complaints that each name three `TOPIC` words in a shuffled order, and two words of their own: the
    ones that name the same three are tied on relevance (the `-` between words makes no phrase)."""
    rng = random.Random(seed)
    return [" - ".join([*rng.sample(TOPIC, 3), f"own{index}a", f"own{index}b"]) for index in range(count)]


def _with_text(tweet: ScoredTweet, text: str) -> ScoredTweet:
    return replace(tweet, tweet=replace(tweet.tweet, text=text))


def outputs() -> str:
    """What must not change with the hash seed (JSON): every sample of a window of tied complaints in
    order, and a detector's alerts and state over a stream whose buzz is such complaints."""
    window = [
        TweetRecord(START.timestamp() + index, f"w{index:02d}", True, text, 0.9)
        for index, text in enumerate(tied_texts(48, seed=1))
    ]
    explained = explain(
        window,
        ReferenceCounts({}, {}, 100),
        simple_tokenize,
        samples=len(window),
        background=ReferenceCounts({}, {}, 0),
    )
    usual = [
        _with_text(tweet, tweet.tweet.text + USUAL_TAGS) if tweet.label == "negative" else tweet
        for tweet in background(34, seed=3)
    ]
    complaints = burst(BUZZ, minutes=10, per_minute=6)
    buzz = [
        _with_text(tweet, text)
        for tweet, text in zip(complaints, tied_texts(len(complaints), seed=2), strict=True)
    ]
    detector = BuzzDetector(tokenizer=simple_tokenize)
    alerts = run(detector, in_order(usual + buzz))
    return json.dumps(
        {
            "explained": explained,
            "alerts": [alert.to_dict() for alert in alerts],
            "state": detector.state_dict(),
        }
    )


def test_a_stream_gives_the_same_alerts_and_state_under_every_hash_seed() -> None:
    code = f"from {__name__} import outputs; print(outputs())"
    runs = {  # side by side: a few seconds in all
        hash_seed: subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hash_seed in HASH_SEEDS
    }
    results = {}
    for hash_seed, process in runs.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        results[hash_seed] = stdout
    first = json.loads(results[HASH_SEEDS[0]])
    assert first["alerts"] and len(first["explained"]["samples"]) > 20  # the checks below have a subject
    assert any(len(brand["reference_counts"]["tags"]) > 1 for brand in first["state"]["brands"].values())
    differing = [seed for seed, result in results.items() if result != results[HASH_SEEDS[0]]]
    assert not differing, f"PYTHONHASHSEED {', '.join(differing)} gave other bytes than {HASH_SEEDS[0]}"
