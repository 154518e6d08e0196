"""The tracked MiniLM comparison run: train the variants on the shared splits, evaluate, time, log to MLflow.

`train_bert(BertExperiment(...))` is what `python -m models.bert` runs (`models.bert.cli`); the settings
live in one `BertExperiment` so a run is described, logged and reproduced from a single value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.bert.model import ENCODER_NAME, ENCODER_PACKAGE, BertSentiment, EncodedTexts
from models.bert.text import PREPARE_VERSION
from models.bert.training import fine_tune, fit_frozen_head

if TYPE_CHECKING:
    from buzzwatch.settings import CommonSettings


def measure_speed(
    model: BertSentiment, texts: Sequence[str], batch_size: int = 64, single: int = 100
) -> dict[str, float]:
    """Inference speed on raw tweets: batch throughput and one-tweet-per-call latency (after a warm-up).

    Returns `tweets_per_s` and `ms_per_tweet` (batched, whole pipeline: preparation, tokenizer, encoder,
    head), and `single_p50_ms` / `single_p99_ms` over `single` calls of one tweet each.
    """
    import torch

    timed = _timed(lambda batch: model.predict_proba(batch, batch_size=batch_size), texts, batch_size, single)
    return {**timed, "batch_size": float(batch_size), "threads": float(torch.get_num_threads())}


def _timed(
    predict_proba: Callable[[list[str]], Any], texts: Sequence[str], warm_up: int, single: int
) -> dict[str, float]:
    """Throughput of one call on all `texts` and the latency of `single` one-tweet calls, after a warm-up."""
    texts = list(texts)
    if not texts:
        raise ValueError("timing needs at least one text")
    predict_proba(texts[:warm_up])
    start = time.perf_counter()
    predict_proba(texts)
    batch_s = time.perf_counter() - start
    latencies = []
    for text in texts[:single]:
        started = time.perf_counter()
        predict_proba([text])
        latencies.append((time.perf_counter() - started) * 1000.0)
    return {
        "tweets_per_s": len(texts) / batch_s,
        "ms_per_tweet": batch_s * 1000.0 / len(texts),
        "single_p50_ms": float(np.percentile(latencies, 50)),
        "single_p99_ms": float(np.percentile(latencies, 99)),
    }


VARIANTS: tuple[str, ...] = ("frozen", "finetuned")
_SPEED_METRICS = ("tweets_per_s", "ms_per_tweet", "single_p50_ms", "single_p99_ms")


def _log(message: str) -> None:
    import sys

    print(f"[bert {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _sample(frame: Any, size: int | None, seed: int) -> Any:
    """A seeded random sample of `size` rows (all rows when `size` is None or larger than the frame)."""
    if size is None or len(frame) <= size:
        return frame.reset_index(drop=True)
    return frame.sample(n=size, random_state=seed).reset_index(drop=True)


def _selection_score(reports: dict[str, dict]) -> float:
    """Validation-only choice, as the LSTM: mean of airline validation macro-F1 and TweetEval macro-recall."""
    return float(
        np.mean([reports["validation_airline"]["macro_f1"], reports["tweeteval_val"]["macro_recall"]])
    )


def _reports(model: BertSentiment, probas: dict[str, np.ndarray], frames: dict[str, Any]) -> dict[str, dict]:
    from models.evaluate import evaluation_report

    return {
        name: evaluation_report(list(frames[name]["label"]), [model.labels[i] for i in proba.argmax(axis=1)])
        for name, proba in probas.items()
    }


def _log_reports(model: BertSentiment, probas: dict[str, np.ndarray], frames: dict[str, Any]) -> dict:
    """Log every set's report (metrics, JSON, confusion PNG) to the active run; returns the reports."""
    from models import tracking

    reports = {}
    for name, proba in probas.items():
        predicted = [model.labels[i] for i in proba.argmax(axis=1)]
        reports[name] = tracking.log_evaluation(name, list(frames[name]["label"]), predicted)
        _log(
            f"  {name:<20} n={reports[name]['n']:>6}  macro_f1={reports[name]['macro_f1']:.4f}  "
            f"macro_recall={reports[name]['macro_recall']:.4f}"
        )
    return reports


@dataclass(frozen=True)
class BertExperiment:
    """What one comparison run trains and measures; the defaults are the README's run.

    - Data: the shared splits (`models.data.make_splits`). Training uses a seeded sample of `train_size`
      rows of the train split (None: all of it). Each evaluation set (airline validation, airline test,
      SemEval 2016test, TweetEval val) is capped at `eval_size` rows by a seeded sample (None: whole sets;
      only SemEval 2016test, 19.6k rows, exceeds the default cap). Each run logs the rows used.
    - `variants`: `frozen` (logistic-regression head, C chosen from `c_grid` by the LSTM's validation
      selection score: airline validation macro-F1 and TweetEval val macro-recall) and/or `finetuned`
      (the last `top_layers` layers + head, warm-started from the frozen head, `epochs` epochs on the kept
      lower-layer states; per-epoch loss and validation scores are logged).
    - `batch_size`: encoding and fine-tuning batch; `speed_texts`: airline test tweets timed.
    - `threads`: torch threads (default 1: on a shared, busy 2-core machine one thread wastes no time
      waiting for a descheduled partner and leaves a core to others). The speed figures use the same
      count, and the shipped ONNX champion is timed on the same tweets in the same process
      (`speed_reference_onnx_*`) so the comparison holds whatever the machine's load.
    - `quick`: a few hundred tweets and one epoch (seconds; for tests): see `effective`.
    - `output_dir`: where each run's model folder goes (default `<var>/bert/<run id>`).
    """

    variants: tuple[str, ...] = VARIANTS
    train_size: int | None = 12_000
    eval_size: int | None = 4_000
    top_layers: int = 2
    epochs: int = 2
    batch_size: int = 32
    c_grid: tuple[float, ...] = (0.3, 1.0, 3.0)
    speed_texts: int = 1_000
    seed: int = 13
    quick: bool = False
    threads: int = 1
    output_dir: Path | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        if not 1 <= self.top_layers <= 5:
            raise ValueError("top_layers must be between 1 and 5")

    def effective(self) -> BertExperiment:
        """The settings a run uses: `quick` shrinks the data, the epochs, the timing and the C grid."""
        if not self.quick:
            return self
        return replace(
            self, train_size=200, eval_size=40, epochs=1, speed_texts=16, c_grid=self.c_grid[:1] or (1.0,)
        )


def train_bert(
    experiment: BertExperiment | None = None, frame: Any = None, settings: CommonSettings | None = None
) -> dict[str, Any]:
    """Train the MiniLM comparison models on the shared splits; one MLflow run per variant.

    `frame` defaults to `models.data.load_labelled()`. Every run logs parameters, the evaluation reports
    with confusion matrices, `train_seconds`, inference speed (`speed_tweets_per_s`, `speed_ms_per_tweet`,
    `speed_single_p50_ms`, `speed_single_p99_ms`; same network for both variants) and the model directory
    (config, tokenizer, head, tuned layers) as the `model` artifact. Nothing is registered: the serving
    champion stays the ONNX LSTM.

    Returns `{variant: {"run_id", "artifact_dir", "metrics"}}`, plus `"timing"` (seconds per stage).
    """
    import torch

    from buzzwatch.settings import CommonSettings

    config = (experiment or BertExperiment()).effective()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train_bert(config, frame, settings or CommonSettings.from_env())
    finally:
        torch.set_num_threads(previous_threads)


def _train_bert(config: BertExperiment, frame: Any, settings: CommonSettings) -> dict[str, Any]:
    from models import data, tracking

    timing: dict[str, float] = {}
    fine = "finetuned" in config.variants

    started = time.perf_counter()
    splits = data.make_splits(data.load_labelled() if frame is None else frame)
    proxies = splits.proxies()
    frames = {
        "validation_airline": splits.validation[splits.validation["source"] == "airline"],
        **{name: proxies[name] for name in ("airline_test", "semeval2016test", "tweeteval_val")},
    }
    frames = {name: _sample(frame, config.eval_size, config.seed) for name, frame in frames.items()}
    train = _sample(splits.train, config.train_size, config.seed)
    timing["data_seconds"] = time.perf_counter() - started
    _log(f"train {len(train)} tweets; " + ", ".join(f"{k} {len(v)}" for k, v in frames.items()))

    started = time.perf_counter()
    model = BertSentiment()
    model.predict_proba(["warm-up"])
    timing["cold_start_seconds"] = time.perf_counter() - started
    split_layer = model.n_layers - config.top_layers if fine else None

    def encode(texts: list[str], what: str) -> EncodedTexts:
        from tqdm import tqdm

        with tqdm(total=len(texts), unit="tweet", desc=f"encode {what}", mininterval=5.0) as bar:
            return model.encode(
                texts, batch_size=config.batch_size, keep_layer=split_layer, progress=bar.update
            )

    started = time.perf_counter()
    encoded_train = encode(list(train["text"]), "train")
    timing["encode_train_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    encoded_eval = {name: encode(list(frame["text"]), name) for name, frame in frames.items()}
    timing["encode_eval_seconds"] = time.perf_counter() - started

    # Frozen head: choose C on validation only.
    started = time.perf_counter()
    best_c, best_score, tried = None, -1.0, []
    for c in config.c_grid:
        fit_frozen_head(model, encoded_train.embeddings, list(train["label"]), c=c, seed=config.seed)
        probas = {
            name: model.proba_from_embeddings(encoded_eval[name].embeddings)
            for name in ("validation_airline", "tweeteval_val")
        }
        score = _selection_score(_reports(model, probas, frames))
        tried.append((c, score))
        if score > best_score:
            best_c, best_score = c, score
    fit_frozen_head(model, encoded_train.embeddings, list(train["label"]), c=best_c, seed=config.seed)
    timing["head_fit_seconds"] = time.perf_counter() - started
    _log(f"frozen head: C={best_c} (selection scores {', '.join(f'{c}: {s:.4f}' for c, s in tried)})")

    speed_frame = _sample(proxies["airline_test"], config.speed_texts, config.seed)
    started = time.perf_counter()
    speed = measure_speed(
        model, list(speed_frame["text"]), batch_size=64, single=min(100, config.speed_texts)
    )
    reference = _reference_speed(
        list(speed_frame["text"]), int(speed["threads"]), min(100, config.speed_texts)
    )
    timing["speed_seconds"] = time.perf_counter() - started
    _log(
        f"speed: {speed['tweets_per_s']:.0f} tweets/s batched, single p50 {speed['single_p50_ms']:.1f} ms; "
        f"ONNX champion in the same run: {reference.get('tweets_per_s', float('nan')):.0f} tweets/s"
    )

    base_params = {
        "model": "minilm-l6+linear",
        "encoder": ENCODER_NAME,
        "encoder_package": f"{ENCODER_PACKAGE}=={model.config['encoder_package_version']}",
        "prepare_version": PREPARE_VERSION,
        "pooling": "mean+l2",
        "max_length": model.max_length,
        "batch_size": config.batch_size,
        "train_rows": len(train),
        "train_size_cap": config.train_size,
        "eval_size_cap": config.eval_size,
        "seed": config.seed,
        "quick": config.quick,
        "head": "logistic_regression(class_weight=balanced)",
        "C": best_c,
        "C_grid": ",".join(str(c) for c in config.c_grid),
    }
    frozen_train_seconds = timing["encode_train_seconds"] + timing["head_fit_seconds"]
    common_metrics = {f"speed_{key}": speed[key] for key in _SPEED_METRICS}
    common_metrics.update({f"speed_reference_onnx_{key}": reference[key] for key in reference})
    common_metrics.update(
        {"speed_threads": speed["threads"], "cold_start_seconds": timing["cold_start_seconds"]}
    )
    results: dict[str, Any] = {}
    output_root = Path(config.output_dir) if config.output_dir else settings.var_dir / "bert"

    if "frozen" in config.variants:
        with tracking.start_run(
            "minilm-frozen",
            params={**base_params, "variant": "frozen", "trainable_layers": 0},
            tags={"family": "bert"},
            settings=settings,
        ) as run:
            for step, (c, score) in enumerate(tried):
                tracking.log_epoch({"C": c, "selection_score_C": score}, step)
            probas = {name: model.proba_from_embeddings(enc.embeddings) for name, enc in encoded_eval.items()}
            reports = _log_reports(model, probas, frames)
            metrics = {
                **common_metrics,
                "train_seconds": frozen_train_seconds,
                "encode_train_seconds": timing["encode_train_seconds"],
                "head_fit_seconds": timing["head_fit_seconds"],
                "selection_score": _selection_score(reports),
            }
            results["frozen"] = _close_run(model, run, metrics, reports, 0, output_root)

    if fine:
        params = {
            **base_params,
            "variant": "finetuned",
            "trainable_layers": config.top_layers,
            "epochs": config.epochs,
            "lr_layers": 3e-5,
            "lr_head": 1e-3,
            "weight_decay": 0.01,
            "loss": "class-balanced CE",
            "warm_start": f"frozen head C={best_c}",
            "kept_states": f"float16 entering layer {split_layer}",
        }
        with tracking.start_run(
            f"minilm-ft{config.top_layers}", params=params, tags={"family": "bert"}, settings=settings
        ) as run:
            from tqdm import tqdm

            def on_epoch(epoch: int, loss: float) -> None:
                probas = {
                    name: model.proba_from_cached(encoded_eval[name])
                    for name in ("validation_airline", "tweeteval_val")
                }
                reports = _reports(model, probas, frames)
                tracking.log_epoch(
                    {
                        "train_loss": loss,
                        "val_airline_macro_f1": reports["validation_airline"]["macro_f1"],
                        "val_tweeteval_macro_recall": reports["tweeteval_val"]["macro_recall"],
                        "selection_score_epoch": _selection_score(reports),
                    },
                    epoch,
                )
                selection = _selection_score(reports)
                _log(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, selection {selection:.4f}")

            steps = config.epochs * len(encoded_train.chunks)
            with tqdm(total=steps, unit="step", desc="fine-tune", mininterval=5.0) as bar:
                result = fine_tune(
                    model,
                    encoded_train,
                    list(train["label"]),
                    epochs=config.epochs,
                    seed=config.seed,
                    on_step=lambda step, loss: bar.update(1),
                    on_epoch=on_epoch,
                )
            timing["finetune_seconds"] = result.seconds
            started = time.perf_counter()
            probas = {name: model.proba_from_cached(enc) for name, enc in encoded_eval.items()}
            timing["finetuned_eval_seconds"] = time.perf_counter() - started
            reports = _log_reports(model, probas, frames)
            parity_texts = list(frames["airline_test"]["text"][:200])
            parity = float(np.abs(model.predict_proba(parity_texts) - probas["airline_test"][:200]).max())
            metrics = {
                **common_metrics,
                "train_seconds": frozen_train_seconds + result.seconds,
                "encode_train_seconds": timing["encode_train_seconds"],
                "finetune_seconds": result.seconds,
                "finetune_steps": result.steps,
                "kept_states_parity_max_abs": parity,
                "selection_score": _selection_score(reports),
            }
            results["finetuned"] = _close_run(model, run, metrics, reports, config.epochs, output_root)
    results["timing"] = timing
    return results


def _close_run(
    model: BertSentiment, run: Any, metrics: dict[str, Any], reports: dict[str, dict], step: int, root: Path
) -> dict[str, Any]:
    """Log a variant's final metrics and its model folder to the active run; its entry in the summary."""
    from models import tracking

    tracking.log_epoch(metrics, step)
    artifact_dir = model.save(root / run.info.run_id)
    tracking.log_model_dir(artifact_dir)
    return {
        "run_id": run.info.run_id,
        "artifact_dir": str(artifact_dir),
        "metrics": {**metrics, **_flat(reports)},
    }


def _reference_speed(texts: list[str], threads: int, single: int) -> dict[str, float]:
    """The shipped ONNX champion timed like `measure_speed` on the same tweets (empty if it cannot load)."""
    try:
        from models.predictor import Predictor

        predictor = Predictor.load(None, threads=threads)
    except Exception as exc:  # the comparison still stands without it; say why it is missing
        _log(f"no ONNX reference timing: {exc}")
        return {}
    return _timed(predictor.predict_proba, texts, 64, single)


def _flat(reports: dict[str, dict]) -> dict[str, float]:
    return {
        f"{name}_{key}": float(report[key])
        for name, report in reports.items()
        for key in ("accuracy", "macro_f1", "macro_recall", "n")
    }
