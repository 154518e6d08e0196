"""Benchmark: tweets/s of `models.text.tokenize` on one core, against NLTK's TweetTokenizer pipeline.

Run: `.venv/bin/python bench/normaliser.py [--tweets 50000] [--repeats 3] [--cpu-time]`. Both tokenizers
see the same real tweets (a fixed-seed sample across every data set in data/), in the same process, pinned
to one CPU core. The NLTK baseline is the usual recipe: `TweetTokenizer(preserve_case=False, reduce_len=True,
strip_handles=True)`, then URLs and numbers replaced per token.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from models.text import NORMALISER_VERSION, tokenize  # noqa: E402

DATA_FILES = (
    "airline_us/train.csv",
    "semeval2017_task4a/twitter-2016test.csv",
    "semeval2017_task4a/twitter-2013train.csv",
    "tweet_sentiment_extraction/train.csv",
    "sentiment140/train_subset_100k.csv",
    "tweeteval_emoji_corpus/train.csv",
    "sanders/all.csv",
)


def load_tweets(count: int, seed: int) -> list[str]:
    """A fixed-seed sample of real tweet texts drawn from every data set."""
    texts: list[str] = []
    for name in DATA_FILES:
        frame = pd.read_csv(REPO_ROOT / "data" / name, dtype=str, keep_default_na=False, usecols=["text"])
        texts.extend(frame["text"].tolist())
    random.Random(seed).shuffle(texts)
    return texts[:count]


def nltk_pipeline() -> Callable[[str], list[str]]:
    """The NLTK baseline: TweetTokenizer plus per-token URL and number replacement."""
    from nltk.tokenize import TweetTokenizer

    tokenizer = TweetTokenizer(preserve_case=False, reduce_len=True, strip_handles=True)
    url_re = re.compile(r"^(?:https?://|www\.)")
    number_re = re.compile(r"^[-+]?\d+(?:[.,:/]\d+)*$")

    def run(text: str) -> list[str]:
        tokens = []
        for token in tokenizer.tokenize(text):
            if url_re.match(token):
                tokens.append("<url>")
            elif number_re.match(token):
                tokens.append("<number>")
            else:
                tokens.append(token)
        return tokens

    return run


def measure(
    fn: Callable[[str], list[str]], texts: list[str], repeats: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """(first-pass tweets/s, median tweets/s over `repeats` passes), timed by `clock`."""
    rates = []
    for _ in range(repeats):
        start = clock()
        for text in texts:
            fn(text)
        rates.append(len(texts) / (clock() - start))
    return rates[0], statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, default=50_000, help="how many real tweets to tokenize")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the tweets (median reported)")
    parser.add_argument("--seed", type=int, default=7, help="sampling seed")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by CPU time, not the wall clock (a loaded machine's wall clock counts the waits)",
    )
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    texts = load_tweets(args.tweets, args.seed)

    start = time.perf_counter()
    tokenize("warm up :)")
    setup_s = time.perf_counter() - start
    ours_first, ours = measure(tokenize, texts, args.repeats, clock)
    nltk_first, nltk = measure(nltk_pipeline(), texts, args.repeats, clock)
    tokens_per_tweet = sum(len(tokenize(text)) for text in texts) / len(texts)

    print(
        f"{len(texts):,} tweets, 1 core, normaliser v{NORMALISER_VERSION}, {tokens_per_tweet:.1f} tok/tweet"
    )
    # Ours keeps each distinct chunk's tokens, so its later passes over the same tweets only look them up:
    # its figure is the first pass (a fresh process reading tweets it has not seen, as a stream does).
    print(
        f"models.text.tokenize : {ours_first:>9,.0f} tweets/s (first pass; the same tweets again "
        f"{ours:,.0f}; setup {setup_s:.2f}s)"
    )
    print(f"NLTK TweetTokenizer  : {nltk:>9,.0f} tweets/s (first pass {nltk_first:,.0f})")
    print(f"speed-up             : {ours_first / nltk:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
