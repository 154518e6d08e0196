"""Scoring throughput: the Predictor (ONNX Runtime, normalisation included) vs Keras `model.predict`.

Real tweets (airline + SemEval files from data/), batch sizes 1, 32 and 256. The baseline is the design
the Predictor replaces: the same normalisation, then Keras `model.predict` on the same BiLSTM
architecture (loaded from --keras-model, or rebuilt from the artifact's shapes: speed does not depend on
the weights), padded to the fixed max length as a typical Flask demo does.

    .venv/bin/python bench/score.py [--model-uri DIR] [--compare-uri DIR] [--seconds 3] [--threads 2]
        [--skip-keras] [--cpu-time]

--compare-uri measures a second artifact (e.g. the previous champion) in the same run, alternating with
the first at each batch size, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from models.language import gate_for  # noqa: E402
from models.predictor import Predictor  # noqa: E402
from models.text import tokenize  # noqa: E402
from models.vocab import pad_batch  # noqa: E402

BATCH_SIZES = (1, 32, 256)


def load_tweets(limit: int = 20_000) -> list[str]:
    """Real tweets: the airline file and the SemEval files, shuffled with a fixed seed."""
    paths = [
        REPO_ROOT / "data/airline_us/train.csv",
        *sorted((REPO_ROOT / "data/semeval2017_task4a").glob("*.csv")),
    ]
    texts = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False)["text"] for path in paths])
    texts = texts.drop_duplicates().sample(frac=1.0, random_state=7)
    return list(texts[:limit])


def measure(
    score_batch, texts: list[str], batch_size: int, seconds: float, clock=time.perf_counter
) -> dict[str, float]:
    """tweets/s and per-call latency percentiles, cycling over texts for about `seconds` of `clock`."""
    score_batch(texts[:batch_size])  # warm-up
    latencies = []
    done = 0
    position = 0
    started = clock()
    while clock() - started < seconds:
        if position + batch_size > len(texts):
            position = 0
        batch = texts[position : position + batch_size]
        position += batch_size
        call_started = clock()
        score_batch(batch)
        latencies.append(clock() - call_started)
        done += len(batch)
    elapsed = clock() - started
    latencies.sort()
    return {
        "tweets_per_s": done / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def keras_baseline(predictor: Predictor, keras_model: str | None):
    """The Keras model (loaded, or the same architecture rebuilt with random weights) and a scorer."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import onnx

    from models.lstm import LstmConfig, build_model

    if keras_model:
        model = keras.models.load_model(keras_model)
    else:
        graph = onnx.load(str(predictor.artifact_dir / "model.onnx")).graph
        shapes = [tuple(init.dims) for init in graph.initializer]
        embedding_shape = next(
            shape for shape in shapes if len(shape) == 2 and shape[0] == len(predictor.vocab)
        )
        details = predictor.meta.get("details", {})
        config = LstmConfig(
            lstm_units=int(details.get("lstm_units", 64)), pooling=details.get("pooling", "maxavg")
        )
        model = build_model(config, np.zeros(embedding_shape, dtype=np.float32))

    def score(texts: list[str]) -> np.ndarray:
        ids = [predictor.vocab.encode(tokenize(text), predictor.max_length) for text in texts]
        return model.predict(pad_batch(ids, predictor.max_length), verbose=0, batch_size=len(texts))

    return score


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-uri", default=None, help="artifact directory (default: the shipped champion)"
    )
    parser.add_argument("--keras-model", default=None, help="a .keras file of the same model (optional)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    parser.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: CPUs, max 4)"
    )
    parser.add_argument("--skip-keras", action="store_true", help="skip the Keras baseline")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the Predictors by this process's CPU time, not the wall clock (with --threads 1: what a "
        "tweet costs, whatever else the machine runs; a loaded machine's wall clock also counts the waits)",
    )
    parser.add_argument(
        "--compare-uri", default=None, help="a second artifact measured beside the first in the same run"
    )
    args = parser.parse_args()

    texts = load_tweets()
    started = time.perf_counter()
    predictor = Predictor.load(args.model_uri, threads=args.threads)
    predictor.predict_proba(texts[:1])
    cold_start = time.perf_counter() - started
    # The Predictor keeps each distinct chunk of text's ids: its first pass over tweets it has not seen is
    # the figure (the loops below cycle over the same tweets, every chunk known after the first cycle).
    started = time.perf_counter()
    predictor.encode(texts[:5000])
    encode_rate = 5000 / (time.perf_counter() - started)
    lengths = [len(tokenize(text)) for text in texts[:5000]]
    print(
        f"model {predictor.model_version}; {len(texts)} real tweets, mean {np.mean(lengths):.1f} tokens; "
        f"{os.cpu_count()} CPUs; Predictor load + first prediction {cold_start:.2f}s"
    )
    print(f"normalisation + vocabulary lookup alone (first pass): {encode_rate:,.0f} tweets/s")
    gate = gate_for(predictor)
    started = time.perf_counter()
    gate.identify_many(texts[:5000])
    print(
        f"language identification alone (CLD2; the API, replay and score add it): "
        f"{5000 / (time.perf_counter() - started):,.0f} tweets/s"
    )
    paths = [(f"Predictor {predictor.model_version}", predictor)]
    if args.compare_uri:
        other = Predictor.load(args.compare_uri, threads=args.threads)
        other.predict_proba(texts[:1])
        paths.append((f"Predictor {other.model_version}", other))
    clock = time.process_time if args.cpu_time else time.perf_counter
    header = "path (ONNX Runtime, incl. normalisation)" + (", CPU time" if args.cpu_time else "")
    print(f"{header:<44}{'batch':>6}{'tweets/s':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for batch_size in BATCH_SIZES:
        for name, scorer in paths:
            result = measure(scorer.predict_proba, texts, batch_size, args.seconds, clock)
            print(
                f"{name:<44}{batch_size:>6}{result['tweets_per_s']:>11,.0f}"
                f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}"
            )
    if not args.skip_keras:
        started = time.perf_counter()
        score = keras_baseline(predictor, args.keras_model)
        score(texts[:1])
        print(
            f"Keras baseline: TensorFlow import + model + first prediction "
            f"{time.perf_counter() - started:.2f}s"
        )
        for batch_size in BATCH_SIZES:
            result = measure(score, texts, batch_size, args.seconds)
            print(
                f"{'Keras model.predict (incl. normalisation)':<44}{batch_size:>6}"
                f"{result['tweets_per_s']:>11,.0f}"
                f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
