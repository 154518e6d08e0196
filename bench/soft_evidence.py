"""How much evidence a tweet's negative probability carries for a bad buzz, weighed in different ways.

The detector counts a window's negatives as the SUM of the model's P(negative). A tweet's likelihood ratio
is not linear in p, so another per-tweet weight w(p) could separate a buzz from ordinary traffic better.
This measures, on the tuning seeds' streams (the champion's cached probabilities and the files' labels),
what each weight gives each test per buzz tweet:
- count test (extra tweets on a Poisson stream): E_buzz[w] / sqrt(E_ordinary[w^2]), the z a buzz tweet
  adds against the ordinary traffic's noise;
- share test (a window's mix): (E_buzz[w] - E_ordinary[w]) / sd_ordinary(w).
Weights: the labels (the oracle's 1/0: the ceiling), p (today), p^2, and the best any per-tweet weight
can do, the binned likelihood ratio f_buzz(p) / f_ordinary(p) (20 bins; by Cauchy-Schwarz its efficiency
bounds every w's). Buzz tweets are the episodes' tweets and replies; ordinary ones are the `normal` rows.
Also printed: the model's mean P(negative) of negatives and of other tweets in ordinary traffic, against
the E[p^2]/E[p] and (E[p] - E[p^2]) / (1 - E[p]) the detector estimates them by (the model's confusion).

Usage: .venv/bin/python bench/soft_evidence.py [--seeds 1 3 ...]   # tuning seeds only (the default)
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from detection import TUNING_SEEDS, _scorer, brand_id, load_pools, read_seed_rows, seed_folder  # noqa: E402

from worker.replay import ReplayRow  # noqa: E402

BINS = np.linspace(0.0, 1.0, 21)


def seed_tweets(seed: int, model: object, pools: object) -> dict[str, list[tuple[float, bool, bool]]]:
    """(P(negative), labelled negative, in a buzz) of every ordinary or buzz tweet of a seed, by family."""
    folder = seed_folder(seed, pools)
    rows = read_seed_rows(folder / "tweets.csv", True, authors=False)
    return family_tweets(folder, rows, negative_probabilities(model, rows, folder))


def negative_probabilities(model: object, rows: list[ReplayRow], folder: Path) -> np.ndarray:
    """The model's P(negative) of each of a seed's rows (all of its tweets.csv), from the bench's cache."""
    scorer = _scorer(model, rows, folder)
    return scorer.predict_proba([r.tweet.text for r in rows])[:, list(scorer.labels).index("negative")]


def family_tweets(
    folder: Path, rows: list[ReplayRow], p_negative: np.ndarray
) -> dict[str, list[tuple[float, bool, bool]]]:
    """(P(negative), labelled negative, in a buzz) of the seed's ordinary and buzz tweets, by brand family
    (a tweet naming two brands counts for each); `p_negative` is each row's."""
    with (folder / "truth.csv").open(encoding="utf-8") as handle:
        kind = {row["id"]: row["kind"] for row in csv.DictReader(handle)}
    with (folder / "brands.csv").open(encoding="utf-8") as handle:
        family = {brand_id(row["name"]): row["family"] for row in csv.DictReader(handle)}
    tweets: dict[str, list[tuple[float, bool, bool]]] = {}
    for row, p in zip(rows, p_negative, strict=True):
        if kind[row.tweet.id] in ("normal", "episode", "episode-reply"):
            for brand in row.tweet.brands:
                tweets.setdefault(family[brand], []).append(
                    (float(p), row.label == "negative", kind[row.tweet.id] != "normal")
                )
    return tweets


def efficiencies(ordinary: np.ndarray, buzz: np.ndarray) -> tuple[float, float]:
    """(count-test, share-test) z per buzz tweet of a weight, from its values on each kind of tweet."""
    count = buzz.mean() / np.sqrt((ordinary**2).mean())
    share = (buzz.mean() - ordinary.mean()) / ordinary.std()
    return float(count), float(share)


def weights(p_negative: np.ndarray, negative: np.ndarray, buzz: np.ndarray) -> dict[str, np.ndarray]:
    """Each weighing of the tweets: the labels, p, p^2 and the binned likelihood ratio buzz / ordinary."""
    ordinary_counts = np.histogram(p_negative[~buzz], BINS)[0] / (~buzz).sum()
    buzz_counts = np.histogram(p_negative[buzz], BINS)[0] / buzz.sum()
    ratio = buzz_counts / np.maximum(ordinary_counts, 1e-12)
    best = ratio[np.clip(np.digitize(p_negative, BINS) - 1, 0, len(ratio) - 1)]
    return {
        "labels": negative.astype(float),
        "p": p_negative,
        "p^2": p_negative * p_negative,
        "best (binned LR)": best,
    }


def main() -> None:
    """Print each weight's efficiencies per family, pooled over the seeds."""
    from models.predictor import Predictor

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS))
    args = parser.parse_args()
    model, pools = Predictor.load(None), load_pools()
    pooled: dict[str, list[tuple[float, bool, bool]]] = {}
    for seed in args.seeds:
        for family, tweets in seed_tweets(seed, model, pools).items():
            pooled.setdefault(family, []).extend(tweets)
    print(f"seeds {args.seeds}, model {model.model_version}")
    print("| family | weight | count test z / buzz tweet | share test z / buzz tweet |")
    print("|---|---|---|---|")
    for family, tweets in sorted(pooled.items()):
        table = np.array(tweets, dtype=float)
        p, negative, buzz = table[:, 0], table[:, 1], table[:, 2] == 1.0
        for name, weight in weights(p, negative, buzz).items():
            count, share = efficiencies(weight[~buzz], weight[buzz])
            print(f"| {family} | {name} | {count:.3f} | {share:.3f} |")
        calm = p[~buzz]
        mean, mean_square = calm.mean(), (calm**2).mean()
        print(
            f"{family}: ordinary traffic {negative[~buzz].mean():.3f} negative, mean p {mean:.3f}; mean p of "
            f"its negatives {calm[negative[~buzz] == 1].mean():.3f} (E[p^2]/E[p] {mean_square / mean:.3f}), "
            f"of the rest {calm[negative[~buzz] == 0].mean():.3f} "
            f"((E[p]-E[p^2])/(1-E[p]) {(mean - mean_square) / (1 - mean):.3f}); buzz tweets' mean p "
            f"{p[buzz].mean():.3f}"
        )


if __name__ == "__main__":
    main()
