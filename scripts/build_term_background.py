"""Build (or check) worker/detection/term_background.json, the prior of the alert explanation's term test.

It counts, once per tweet, the terms, phrases and hashtags of every NEGATIVE US airline tweet in
data/airline_us (the background stands for a brand's usual negatives, what a bad buzz is compared with)
with the explanation's own tokenizer and filters (the accounts a tweet mentions are words), keeping those
seen in at least `--min-docs` tweets. Each tweet's own airline's account (the one its airline's tweets
mention most) is left out first: the explanation never names a brand's own name, and its rate is that
airline's, not a usual complaint's.
It also prints how strongly a brand's own term rates follow the background: the prior weight, in tweets,
of a Beta prior centred on the background rate that matches how much the rates of common terms vary
between brand-days (method of moments); the explanation's BACKGROUND_PRIOR_DOCS is that figure.

    .venv/bin/python scripts/build_term_background.py            # rewrite the file
    .venv/bin/python scripts/build_term_background.py --check    # exit 1 if the file is not what it builds
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from buzzwatch.files import check_or_write  # noqa: E402 - the repository root is on the path first
from worker.detection.explain import (  # noqa: E402
    BACKGROUND_PATH,
    GROUP_MARK,
    ReferenceCounts,
    default_tokenizer,
    mentioned,
    reference_counts,
)

SOURCE = REPO_ROOT / "data" / "airline_us" / "train.csv"


def read_tweets(source: Path = SOURCE) -> list[dict[str, str]]:
    """The unique negative tweets (one per id) of the airline file, each without its own airline's account."""
    with open(source, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        tweets = list(
            {row["id"]: row for row in rows if row.get("text") and row["label"] == "negative"}.values()
        )
    mentions: dict[str, Counter[str]] = defaultdict(Counter)
    for row in tweets:
        mentions[row["airline"]].update(set(mentioned(row["text"])))
    own = {
        airline: re.compile(rf"@{re.escape(counts.most_common(1)[0][0])}\b", re.IGNORECASE)
        for airline, counts in mentions.items()
    }
    # A full stop where the account was: no phrase across it, as the tokenizer's "<user>" ended one.
    return [{**row, "text": own[row["airline"]].sub(" . ", row["text"])} for row in tweets]


def build(tweets: list[dict[str, str]], min_docs: int = 2) -> ReferenceCounts:
    """Term, hashtag and phrase document frequencies over `tweets`, those in fewer than `min_docs` dropped."""
    counts = reference_counts([row["text"] for row in tweets], default_tokenizer())
    return ReferenceCounts(
        {term: n for term, n in sorted(counts.terms.items()) if n >= min_docs},
        {tag: n for tag, n in sorted(counts.tags.items()) if n >= min_docs},
        counts.docs,
        {phrase: n for phrase, n in sorted(counts.phrases.items()) if n >= min_docs},
        counts.groups,
    )


def estimate_prior_docs(tweets: list[dict[str, str]], min_cell: int = 50, min_rate: float = 0.01) -> float:
    """Beta prior weight m such that brand-day term rates vary around the pooled rate p as Beta(mp, m(1-p)).

    Over brand-days with at least `min_cell` tweets and terms with a pooled rate of at least `min_rate`:
    the excess of the between-cell variance of the rates over binomial noise is p(1 - p) / (m + 1).
    """
    tokenizer = default_tokenizer()
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in tweets:
        cells[(row["airline"], row["created_at"][:10])].append(row["text"])
    kept = [reference_counts(texts, tokenizer) for texts in cells.values() if len(texts) >= min_cell]
    total = sum(cell.docs for cell in kept)
    pooled: Counter[str] = Counter()
    for cell in kept:
        pooled.update(cell.terms)
    spread = excess = 0.0
    for term, count in pooled.items():
        rate = count / total
        if rate < min_rate or term.startswith(GROUP_MARK):  # words only: a group is no brand-day term
            continue
        between = sum(cell.docs * (cell.terms.get(term, 0) / cell.docs - rate) ** 2 for cell in kept)
        noise = len(kept) * rate * (1.0 - rate)
        spread += rate * (1.0 - rate)
        excess += (between - noise) / total
    return spread / excess - 1.0


def render(counts: ReferenceCounts) -> str:
    """The file's text: JSON, keys sorted, one count a line (readable diffs)."""
    return json.dumps(counts.to_dict(), indent=0, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the background file, or with --check compare it with a fresh build."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    parser.add_argument("--min-docs", type=int, default=2, help="keep terms seen in this many tweets")
    args = parser.parse_args(argv)
    tweets = read_tweets()
    counts = build(tweets, min_docs=args.min_docs)
    status = check_or_write(
        {BACKGROUND_PATH: render(counts)}, check=args.check, command="python scripts/build_term_background.py"
    )
    if not args.check:
        print(
            f"{counts.docs} tweets, {len(counts.terms)} terms, {len(counts.phrases)} phrases, "
            f"{len(counts.tags)} hashtags; prior weight matching the spread of brand-day term rates: "
            f"{estimate_prior_docs(tweets):.0f} tweets"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
