"""`python -m models.bert`: train and track the MiniLM comparison runs; print a JSON summary."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from models.bert.experiment import VARIANTS, BertExperiment, train_bert
from models.bert.model import bert_unavailable_reason


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line into a `BertExperiment`, run it, print the summary; 2 on a usage error."""
    defaults = BertExperiment()
    parser = argparse.ArgumentParser(
        prog="python -m models.bert",
        description="Train the all-MiniLM-L6-v2 comparison models (frozen head, top-layer fine-tuning) on "
        "the shared splits and track each in MLflow. Needs the 'bert' extra.",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: frozen,finetuned")
    parser.add_argument(
        "--train-size", type=int, default=defaults.train_size, help="training tweets (0: the whole split)"
    )
    parser.add_argument(
        "--eval-size", type=int, default=defaults.eval_size, help="cap per evaluation set (0: whole sets)"
    )
    parser.add_argument(
        "--top-layers", type=int, default=defaults.top_layers, help="transformer layers to fine-tune (1-5)"
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="fine-tuning epochs")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="sampling and training seed")
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help="torch threads (default 1: shared machine)"
    )
    parser.add_argument("--quick", action="store_true", help="a few hundred tweets, one epoch (for tests)")
    args = parser.parse_args(argv)
    reason = bert_unavailable_reason()
    if reason:
        parser.error(reason)
    try:
        experiment = BertExperiment(
            variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
            train_size=args.train_size or None,
            eval_size=args.eval_size or None,
            top_layers=args.top_layers,
            epochs=args.epochs,
            seed=args.seed,
            quick=args.quick,
            threads=args.threads,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(train_bert(experiment), indent=2, default=str))
    return 0
