"""How much a huge brand's window share strays from its baseline share beyond sampling noise.

The share margin shrinks as 1/sqrt(expected tweets) for windows of thousands of tweets; its floor
(`BrandParams.share_margin_floor`) was chosen from what this prints. Each tuning seed's huge brand (100-400
tweets a minute for three hours) is replayed alone with the file's labels and no floor, through
`buzzwatch replay`'s engine; at each closed minute, each window's share minus the baseline share it is
tested against is compared with the sampling noise the share test allows for (the binomial variance of the
window plus that of the baseline's share, times the brand's dispersion). Only ordinary windows count: from
30 minutes into the brand (a full window before them) to 10 minutes before its bad buzz, surges at the
usual share included. Printed per window length: the RMS of the difference, the RMS sampling noise, the
wobble beyond it (sqrt of the difference of their squares), and the largest difference beyond twice the
noise (what a margin must cover for the share test, z >= 2, not to pass on ordinary traffic).

Usage: .venv/bin/python bench/share_wobble.py [--seeds 1 3 ...]   # tuning seeds only (the default)
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from detection import TUNING_SEEDS, brand_id, read_seed_rows, read_truth, seed_folder  # noqa: E402

from worker.detection import BuzzDetector, DetectorConfig  # noqa: E402
from worker.replay import ReplaySummary, run_replay  # noqa: E402

LEAD_MINUTES = 30  # minutes of the brand before a window counts
BUZZ_GAP_S = 600  # and this far from its buzz


class _Recording(BuzzDetector):
    """The detector, noting each closed minute's window tests: (minute, window, share diff, noise)."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.rows: list[tuple[int, int, float, float]] = []

    def _close_minute(self, state, minute):  # type: ignore[no-untyped-def]
        alerts = super()._close_minute(state, minute)
        for evaluated, expected in zip(state.last_evals, state.window_expected, strict=True):
            if evaluated.volume > 0:
                base = evaluated.baseline_share
                figures = expected.expectation
                noise = (
                    base
                    * (1 - base)
                    * figures.share_dispersion
                    * (1 / evaluated.volume + 1 / (figures.share_tweets + 1))
                )
                diff = evaluated.negatives / evaluated.volume - base
                self.rows.append((minute, evaluated.minutes, diff, math.sqrt(noise)))
        return alerts


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS))
    args = parser.parse_args()
    config = DetectorConfig.from_env(os.environ)
    config = replace(config, defaults=replace(config.defaults, share_margin_floor=0.0))
    kept: list[tuple[int, int, float, float]] = []  # (seed, window, diff, noise)
    for seed in args.seeds:
        folder = seed_folder(seed, None)
        truth = read_truth(folder)
        huge = next(b["name"] for b in truth.brands if b["role"] == "huge")
        buzzes = [
            (e["start"].timestamp(), e["end"].timestamp()) for e in truth.episodes if e["brand"] == huge
        ]
        huge_id = brand_id(huge)
        rows = [r for r in read_seed_rows(folder / "tweets.csv", True, True) if huge_id in r.tweet.brands]
        detector = _Recording(config)
        run_replay(rows, detector, io.StringIO(), ReplaySummary())
        first = min(minute for minute, *_ in detector.rows)
        for minute, window, diff, noise in detector.rows:
            low, high = (minute - window + 1) * 60, (minute + 1) * 60
            if minute - first < LEAD_MINUTES + window:
                continue
            if any(start < high + BUZZ_GAP_S and end > low for start, end in buzzes):
                continue
            kept.append((seed, window, diff, noise))
    for window in config.windows_minutes:
        sel = [r for r in kept if r[1] == window]
        if not sel:
            print(f"{window}-minute windows: none away from the buzzes")
            continue
        square = sum(r[2] ** 2 for r in sel) / len(sel)
        noise = sum(r[3] ** 2 for r in sel) / len(sel)
        worst = max(sel, key=lambda r: r[2] - 2 * r[3])
        print(
            f"{window}-minute windows: {len(sel)} in {len({r[0] for r in sel})} seeds; share - baseline "
            f"{math.sqrt(square):.4f} RMS, sampling noise {math.sqrt(noise):.4f}, beyond it "
            f"{math.sqrt(max(square - noise, 0.0)):.4f}; largest beyond twice the noise "
            f"{worst[2] - 2 * worst[3]:+.4f} (seed {worst[0]})"
        )


if __name__ == "__main__":
    main()
