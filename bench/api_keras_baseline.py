"""The design BuzzWatch replaces, for bench/api.py: a Flask app calling Keras `model.predict` per request.

Same tokenizer and vocabulary as the champion, the same BiLSTM architecture; the Keras model is the
champion's own saved `.keras` file when this machine trained it (`var/keras/<run id>.keras`), otherwise the
architecture rebuilt from the artifact's details with random weights (speed does not depend on weights).
Served by gunicorn like the real API: `gunicorn --pythonpath bench 'api_keras_baseline:create_app()'`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, request

from buzzwatch.settings import CommonSettings
from models.predictor import Predictor


def _embedding_shape(onnx_path: Path) -> tuple[int, int]:
    """(vocab size, dimension) of the embedding matrix inside the exported model."""
    import onnx

    model = onnx.load(str(onnx_path))
    shapes = [tuple(tensor.dims) for tensor in model.graph.initializer if len(tensor.dims) == 2]
    vocab_rows = [shape for shape in shapes if shape[0] >= 1000]
    return max(vocab_rows or shapes, key=lambda shape: shape[0])  # type: ignore[return-value]


def load_keras_model(predictor: Predictor) -> tuple[Any, str]:
    """The champion's Keras model, or the same architecture rebuilt; and which one it is."""
    import keras

    details = predictor.meta.get("details", {})
    run_id = details.get("mlflow_run_id")
    saved = CommonSettings.from_env().var_dir / "keras" / f"{run_id}.keras"
    if run_id and saved.is_file():
        return keras.saving.load_model(saved, compile=False), f"champion Keras model {saved.name}"
    from models import lstm

    vocab_size, dim = _embedding_shape(predictor.artifact_dir / "model.onnx")
    config = lstm.LstmConfig(
        lstm_units=int(details.get("lstm_units", 64)),
        pooling=str(details.get("pooling", "maxavg")),
        max_length=predictor.max_length,
    )
    embeddings = np.random.default_rng(0).normal(size=(vocab_size, dim)).astype(np.float32)
    return lstm.build_model(
        config, embeddings
    ), f"rebuilt {config.pooling} BiLSTM({config.lstm_units}), random weights"


def create_app() -> Flask:
    """The classic demo: parse JSON, tokenize, pad to the maximum length, `model.predict`, answer."""
    predictor = Predictor.load(os.environ.get("BUZZWATCH_MODEL_URI") or None)
    model, description = load_keras_model(predictor)
    labels = predictor.labels
    app = Flask(__name__)

    @app.post("/v1/predict")
    def predict() -> Any:
        text = request.get_json()["text"]
        ids = predictor.encode([text])[0]
        padded = np.zeros((1, predictor.max_length), dtype=np.int32)
        padded[0, : len(ids)] = ids[: predictor.max_length]
        probabilities = model.predict(padded, verbose=0)[0]
        winner = int(np.argmax(probabilities))
        return {
            "label": labels[winner],
            "probabilities": dict(zip(labels, map(float, probabilities), strict=True)),
        }

    @app.get("/readyz")
    def readyz() -> Any:
        return {"status": "ready", "model": description}

    return app
