"""The soft-voting ensemble's training side: its weight, its temperature and its one artifact.

The LSTM and the linear model (`models.linear`) are trained on the same train split; the weight of the
linear model is the one with the best selection score on the selection split, and the temperature the one
with the lowest negative log-likelihood there (temperature scaling never changes a label, only how sure
the probabilities say the model is). `Predictor` serves the result with `models.predictor.combine`, which
the weight and temperature choices call too.
"""

from __future__ import annotations

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


def write_ensemble_artifact(
    lstm_artifact_dir: Path,
    linear: LinearModel,
    out_dir: Path,
    *,
    linear_weight: float,
    temperature: float,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """The LSTM artifact with the fused ONNX graph, the linear model's files and `meta["ensemble"]`.

    The model version is `ensemble-<first 10 hex of the fused ONNX file's sha256>`: the same models and
    settings give the same version.
    """
    from models.export import file_digest, fuse_ensemble

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(lstm_artifact_dir, out_dir)
    fuse_ensemble(lstm_artifact_dir / ONNX_FILE, linear, linear_weight, temperature, out_dir / ONNX_FILE)
    linear.save(out_dir)
    meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    meta.update(
        model_version=f"ensemble-{file_digest(out_dir / ONNX_FILE)[:10]}",
        ensemble={
            "linear_weight": float(linear_weight),
            "temperature": float(temperature),
            "linear_features": len(linear.features),
            "flip_negation": linear.flip_negation,
        },
        input="token_ids, ngram_keys",
        metrics={},
        details={**meta.get("details", {}), **details, "lstm_model_version": meta["model_version"]},
    )
    write_meta(out_dir, meta)
    return meta
