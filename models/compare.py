"""Models side by side on the discipline's evaluation sets, with paired bootstrap intervals.

    .venv/bin/python -m models.compare models/artifacts/champion var/artifacts/RUN [--json]

The first model is the reference: every other one is also reported as its difference from it, with a 95%
interval from 1,000 paired bootstrap resamples of the same rows (a gain is real when the interval stays
above 0). Sets (`models.data.make_splits`): the report sets (in-distribution `test`, `airline_test`,
`semeval_test`; the shifted hold-out `semeval2016test`) and the selection sets. ECE is the expected
calibration error (15 bins); "called negative" is the share of the set's tweets labelled negative, beside
the share that is. A model given as `DIR1+DIR2+...` is the mean of those models' probabilities (a seed
bag, measured before anyone builds one). The previous champion `bilstm-0ed7982b76` was trained before the
shifted hold-out existed, on 90% of SemEval 2016test: its `semeval2016test` figures flatter it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from buzzwatch.schema import LABELS

BAG = "+"  # between the members of a model given as the mean of several

SETS: tuple[str, ...] = (
    "test",
    "airline_test",
    "semeval_test",
    "semeval2016test",
    "validation_airline",
    "tweeteval_val",
)


def compare(model_uris: Sequence[str], resamples: int = 1000) -> dict[str, dict[str, dict]]:
    """Per set, per model: metrics with bootstrap intervals (and the difference from the first model)."""
    from models.data import load_labelled, make_splits
    from models.evaluate import expected_calibration_error, paired_bootstrap
    from models.predictor import Predictor

    bags = [[Predictor.load(member) for member in uri.split(BAG)] for uri in model_uris]  # before the data
    splits = make_splits(load_labelled())
    frames = {"test": splits.test, **splits.proxies()}
    index = {label: position for position, label in enumerate(LABELS)}
    results: dict[str, dict[str, dict]] = {}
    for set_name in SETS:
        frame = frames[set_name]
        truth = np.array([index[label] for label in frame["label"]])
        texts = list(frame["text"])
        probabilities = [bag_probabilities(bag, texts) for bag in bags]
        reference = probabilities[0].argmax(axis=1)
        results[set_name] = {}
        for uri, bag, proba in zip(model_uris, bags, probabilities, strict=True):
            predicted = proba.argmax(axis=1)
            entry = {
                "model_version": BAG.join(predictor.model_version for predictor in bag),
                "n": len(truth),
                "ece": expected_calibration_error(proba, truth),
                "called_negative": float(np.mean(predicted == 0)),
                "negative_share": float(np.mean(truth == 0)),
                **paired_bootstrap(truth, predicted, resamples=resamples),
            }
            if uri != model_uris[0]:
                entry["minus_first"] = paired_bootstrap(truth, predicted, reference, resamples=resamples)
            results[set_name][uri] = entry
    return results


def bag_probabilities(predictors: Sequence[Any], texts: list[str]) -> np.ndarray:
    """The mean of the predictors' probabilities of `texts` (one predictor: its own)."""
    return np.mean([predictor.predict_proba(texts) for predictor in predictors], axis=0)


def format_table(results: dict[str, dict[str, dict]]) -> str:
    """One line per set and model: value [2.5%, 97.5%] of each metric, ECE, and the gain over the first."""
    lines = []
    for set_name, models in results.items():
        for entry in models.values():
            cells = [f"{set_name:<19}{entry['model_version']:<24}{entry['n']:>6}"]
            for key in ("macro_f1", "macro_recall", "accuracy", "negative_recall"):
                value, low, high = entry[key]
                cells.append(f"{key} {value:.3f} [{low:.3f}, {high:.3f}]")
            cells.append(f"ECE {entry['ece']:.3f}")
            cells.append(
                f"called negative {entry['called_negative']:.3f} (true {entry['negative_share']:.3f})"
            )
            if "minus_first" in entry:
                gains = entry["minus_first"]
                cells.append(
                    "gain F1 {:+.3f} [{:+.3f}, {:+.3f}] recall {:+.3f} [{:+.3f}, {:+.3f}] "
                    "negative recall {:+.3f} [{:+.3f}, {:+.3f}]".format(
                        *gains["macro_f1"], *gains["macro_recall"], *gains["negative_recall"]
                    )
                )
            lines.append("  ".join(cells))
    return "\n".join(lines)


def _hundreds(value: str) -> int:
    """An argparse type: a positive multiple of 100 (`--resamples 0` was a traceback, 150 was taken)."""
    count = int(value) if value.strip().isdigit() else 0
    if count < 100 or count % 100:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive multiple of 100")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.compare MODEL [MODEL ...]`: print the table (or JSON)."""
    parser = argparse.ArgumentParser(prog="python -m models.compare", description=__doc__.splitlines()[0])
    parser.add_argument(
        "models",
        nargs="+",
        help="artifact directories or MLflow model URIs (A+B: their mean); first = reference",
    )
    parser.add_argument(
        "--resamples", type=_hundreds, default=1000, help="bootstrap resamples (a multiple of 100)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    from models.predictor import ModelLoadError

    try:
        results = compare(args.models, args.resamples)
    except ModelLoadError as exc:  # a mistyped directory: one line, not a traceback after the data loads
        parser.error(str(exc))
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
