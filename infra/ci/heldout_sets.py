"""Writes the held-out evaluation sets (the same seeded splits training uses) as CSV files with text,label.

The retrain workflow evaluates the current champion and the candidate on exactly these files, so the
comparison is like for like:

    python infra/ci/heldout_sets.py --out eval/    # eval/airline_test.csv, eval/semeval2016test.csv, ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_sets(out_dir: Path) -> list[Path]:
    """One CSV per proxy set of models.data's seeded splits; returns the files written."""
    from models.data import load_labelled, make_splits

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in make_splits(load_labelled()).proxies().items():
        path = out_dir / f"{name}.csv"
        frame[["text", "label"]].to_csv(path, index=False)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the sets and list them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    args = parser.parse_args(argv)
    for path in write_sets(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
