"""The soft-voting ensemble's training side: its weight, its temperature and its one artifact.

The LSTM and the linear model (`models.linear`) are trained on the same train split; the weight of the
linear model is the one with the best selection score on the selection split, and the temperature the one
with the lowest negative log-likelihood there (temperature scaling never changes a label, only how sure
the probabilities say the model is). Optionally (`rebuild(..., class_offsets=True)`; measured and left
out of `buzzwatch train`'s recipe, see the README) a class-prior correction: per-class offsets added to
the tempered log-probabilities (neutral's pinned at 0, as softmax ignores a common shift), the pair with
the best selection score there (ties: the lowest negative log-likelihood, then the smallest offsets). The
selection score is macro-F1 and macro-recall, which reward the minority class that a model trained on
other class shares under-calls; an offset chosen by NLL alone would match the selection split's own
class shares instead. `Predictor` serves the result with `models.predictor.combine`, which every one of
these choices calls too.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.linear import LinearModel, softmax
from models.predictor import META_FILE, ONNX_FILE, write_meta

WEIGHT_GRID: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(0, 21))
TEMPERATURE_GRID: np.ndarray = np.exp(np.linspace(np.log(0.25), np.log(4.0), 161))
OFFSET_GRID: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(-20, 21))


def choose_weight(
    score: Callable[[float], float], grid: Sequence[float] = WEIGHT_GRID
) -> tuple[float, dict[float, float]]:
    """The linear weight with the best `score(weight)` (ties: the smaller weight); every score tried."""
    scores = {weight: score(weight) for weight in grid}
    best = max(grid, key=lambda weight: (scores[weight], -weight))
    return best, scores


def negative_log_likelihood(probabilities: np.ndarray, label_ids: np.ndarray) -> float:
    """Mean -log p(true label)."""
    picked = probabilities[np.arange(len(label_ids)), label_ids]
    return float(-np.mean(np.log(np.maximum(picked, 1e-12))))


def fit_temperature(probabilities: np.ndarray, label_ids: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(log p / T) (a grid from 0.25 to 4, log-spaced)."""
    log_probabilities = np.log(np.maximum(probabilities, 1e-12))
    losses = [
        negative_log_likelihood(softmax(log_probabilities / temperature), label_ids)
        for temperature in TEMPERATURE_GRID
    ]
    return float(TEMPERATURE_GRID[int(np.argmin(losses))])


def choose_class_offsets(
    score: Callable[[np.ndarray], float],
    loss: Callable[[np.ndarray], float],
    n_labels: int,
    pinned: int,
    grid: Sequence[float] = OFFSET_GRID,
) -> tuple[np.ndarray, float]:
    """Per-class logit offsets with the best `score(offsets)`, class `pinned` at 0; and that score.

    Every combination of the grid's values for the other classes is tried; ties go to the lowest
    `loss(offsets)`, then to the smallest total offset.
    """
    candidates = [
        np.insert(np.array(values, dtype=np.float64), pinned, 0.0)
        for values in itertools.product(grid, repeat=n_labels - 1)
    ]
    scores = [score(offsets) for offsets in candidates]
    best_score = max(scores)
    tied = [offsets for offsets, value in zip(candidates, scores, strict=True) if value == best_score]
    best = min(tied, key=lambda offsets: (loss(offsets), float(np.abs(offsets).sum())))
    return best, float(best_score)


def write_ensemble_artifact(
    lstm_artifact_dir: Path,
    linear: LinearModel,
    out_dir: Path,
    *,
    linear_weight: float,
    temperature: float,
    details: Mapping[str, Any],
    class_offsets: np.ndarray | None = None,
) -> dict[str, Any]:
    """The LSTM artifact with the fused ONNX graph, the linear model's files and `meta["ensemble"]`.

    The model version is `ensemble-<first 10 hex of the fused ONNX file's sha256>`: the same models and
    settings give the same version.
    """
    from models.export import file_digest, fuse_ensemble

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(lstm_artifact_dir, out_dir)
    fuse_ensemble(
        lstm_artifact_dir / ONNX_FILE, linear, linear_weight, temperature, out_dir / ONNX_FILE, class_offsets
    )
    linear.save(out_dir)
    meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    offsets = np.zeros(len(meta["labels"])) if class_offsets is None else np.asarray(class_offsets)
    meta.update(
        model_version=f"ensemble-{file_digest(out_dir / ONNX_FILE)[:10]}",
        ensemble={
            "linear_weight": float(linear_weight),
            "temperature": float(temperature),
            "class_offsets": dict(zip(meta["labels"], map(float, offsets), strict=True)),
            "linear_features": len(linear.features),
            "flip_negation": linear.flip_negation,
        },
        input="token_ids, ngram_keys",
        metrics={},
        details={**meta.get("details", {}), **details, "lstm_model_version": meta["model_version"]},
    )
    write_meta(out_dir, meta)
    return meta


def rebuild(
    lstm_artifact_dir: Path, linear_dir: Path, out_dir: Path, class_offsets: bool = False
) -> dict[str, Any]:
    """An ensemble built again from a trained LSTM artifact and the linear half saved in `linear_dir` (an
    ensemble artifact), its settings chosen on the selection split as `buzzwatch train` chooses them (and
    with `class_offsets`, per-class offsets too)."""
    from models.data import load_labelled, make_splits
    from models.train import fit_ensemble

    splits = make_splits(load_labelled())
    linear = LinearModel.load(linear_dir)
    evaluation_sets = {"validation": splits.validation, **splits.proxies()}
    fit = fit_ensemble(lstm_artifact_dir, linear, evaluation_sets, class_offsets=class_offsets)
    settings = {key: fit[key] for key in ("linear_weight", "temperature", "class_offsets")}
    meta = write_ensemble_artifact(
        lstm_artifact_dir,
        linear,
        out_dir,
        **settings,
        details={
            "rebuilt_from": {"lstm": str(lstm_artifact_dir), "linear": str(linear_dir)},
            "selection_score_without_offsets": fit["selection_score_without_offsets"],
            "selection_score_with_offsets": fit["selection_score_with_offsets"],
        },
    )
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.ensemble LSTM_DIR LINEAR_DIR --output OUT`: rebuild an ensemble, print its meta."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.ensemble", description=rebuild.__doc__)
    parser.add_argument("lstm", type=Path, help="the LSTM's artifact directory (var/artifacts/RUN)")
    parser.add_argument("linear", type=Path, help="an ensemble artifact whose linear half is reused")
    parser.add_argument("--output", type=Path, required=True, help="the new artifact's directory")
    parser.add_argument(
        "--class-offsets",
        action="store_true",
        help="also choose per-class logit offsets on the selection split",
    )
    args = parser.parse_args(argv)
    meta = rebuild(args.lstm, args.linear, args.output, class_offsets=args.class_offsets)
    print(json.dumps({key: meta[key] for key in ("model_version", "ensemble", "details")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
