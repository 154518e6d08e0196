"""Decides whether a retrained model replaces the champion (used by .github/workflows/retrain.yml).

Both models are evaluated by `buzzwatch evaluate --json` on the same held-out sets; each input file is a
JSON object {set name: that command's output}. The candidate is promoted only when it beats the champion
on the primary set by a margin, loses no more than a tolerance on every other set, and meets the
project's floors. Exit 0 either way; the decision is printed as JSON and, under GitHub Actions, written
to $GITHUB_OUTPUT as `promote=true|false`.

    python infra/ci/promote.py --champion champion.json --candidate candidate.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Policy:
    """What "beats the current one" means."""

    primary_set: str = "airline_test"
    primary_metric: str = "macro_f1"
    min_gain: float = 0.005
    guard_metric: str = "macro_recall"
    max_guard_loss: float = 0.01
    # The project's floors: airline macro-F1 >= 0.76; on the shifted hold-out (SemEval 2016test whole, never
    # trained or chosen on since the evaluation discipline) macro-recall >= 0.60, what the TF-IDF baseline
    # trained on the same split reads there. The old 0.63 was set on a 10% in-distribution slice of it.
    floors: dict[str, tuple[str, float]] = field(
        default_factory=lambda: {
            "airline_test": ("macro_f1", 0.76),
            "semeval2016test": ("macro_recall", 0.60),
        }
    )


@dataclass(frozen=True)
class Decision:
    """The verdict and every reason behind it."""

    promote: bool
    reasons: list[str]
    primary_champion: float | None
    primary_candidate: float


def _metric(report: dict[str, Any], set_name: str, metric: str, who: str) -> float:
    try:
        return float(report[set_name][metric])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{who} has no {metric} for {set_name}") from exc


def decide(
    champion: dict[str, Any] | None, candidate: dict[str, Any], policy: Policy | None = None
) -> Decision:
    """Promote only if the candidate is better on the primary set and not worse elsewhere."""
    policy = policy or Policy()
    reasons: list[str] = []
    promote = True
    primary_candidate = _metric(candidate, policy.primary_set, policy.primary_metric, "the candidate")
    for set_name, (metric, floor) in policy.floors.items():
        if set_name not in candidate:
            continue
        value = _metric(candidate, set_name, metric, "the candidate")
        if value < floor:
            promote = False
            reasons.append(f"candidate {metric} on {set_name} is {value:.4f}, below the floor {floor}")
    if champion is None:
        if promote:
            reasons.append("no current champion: the candidate becomes the first one")
        return Decision(promote, reasons, None, primary_candidate)
    primary_champion = _metric(champion, policy.primary_set, policy.primary_metric, "the champion")
    gain = primary_candidate - primary_champion
    if gain < policy.min_gain:
        promote = False
        reasons.append(
            f"{policy.primary_metric} on {policy.primary_set}: candidate {primary_candidate:.4f} vs champion "
            f"{primary_champion:.4f} (gain {gain:+.4f} < {policy.min_gain})"
        )
    else:
        reasons.append(f"{policy.primary_metric} on {policy.primary_set} gains {gain:+.4f}")
    for set_name in sorted(set(champion) & set(candidate) - {policy.primary_set}):
        before = _metric(champion, set_name, policy.guard_metric, "the champion")
        after = _metric(candidate, set_name, policy.guard_metric, "the candidate")
        if before - after > policy.max_guard_loss:
            promote = False
            reasons.append(
                f"{policy.guard_metric} on {set_name} drops {before - after:.4f} (> {policy.max_guard_loss})"
            )
    return Decision(promote, reasons, primary_champion, primary_candidate)


def main(argv: list[str] | None = None) -> int:
    """Read both reports, print the decision, export it to GitHub Actions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--champion", type=Path, help="the current champion's reports (absent: none yet)")
    parser.add_argument("--candidate", type=Path, required=True, help="the retrained model's reports")
    args = parser.parse_args(argv)
    champion = None
    if args.champion is not None and args.champion.exists():
        champion = json.loads(args.champion.read_text(encoding="utf-8"))
    candidate = json.loads(args.candidate.read_text(encoding="utf-8"))
    try:
        decision = decide(champion, candidate)
    except ValueError as exc:
        print(f"promote.py: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(decision), indent=2))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"promote={'true' if decision.promote else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
