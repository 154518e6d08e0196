"""MLflow helpers shared by every BuzzWatch training run (import mlflow lazily: serving never needs it).

A training run looks like:

    from models import tracking
    with tracking.start_run("lstm-w2v", params={"epochs": 5, "lr": 1e-3}):
        for epoch in ...:
            tracking.log_epoch({"loss": loss, "val_macro_f1": f1}, epoch)
        report = tracking.log_evaluation("airline_test", y_true, y_pred)  # metrics + JSON + PNG
        tracking.log_model_dir(artifact_dir)                              # artifact path "model"
        version = tracking.register_model(alias="champion")                # buzzwatch-sentiment@champion
    path = tracking.resolve_model_uri()  # models:/buzzwatch-sentiment@champion -> local directory

The store comes from `CommonSettings.mlflow_tracking_uri`: `sqlite:///<var_dir>/mlflow.db` by default
(MLflow 3.17 refuses a plain file store), `MLFLOW_TRACKING_URI` overrides. With a local sqlite store the
artifacts live beside the database in `mlartifacts/`, never in the working directory. Registry stages
are deprecated: the best model carries the alias `champion`.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from buzzwatch.schema import LABELS
from buzzwatch.settings import CommonSettings

if TYPE_CHECKING:
    import mlflow

EXPERIMENT = "buzzwatch"
REGISTERED_MODEL = "buzzwatch-sentiment"
CHAMPION_ALIAS = "champion"
CHAMPION_URI = f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}"
MODEL_ARTIFACT_PATH = "model"


def _artifact_root(tracking_uri: str) -> str | None:
    """Where a local sqlite store keeps artifacts (beside the database); None for remote stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (database.parent / "mlartifacts").as_uri()


class StoreError(ValueError):
    """The MLflow store cannot be used (the message names it and says why)."""


# How long a tracking server may take to accept a connection: MLflow's own client retried a closed port
# for minutes (7 tries, exponential back-off), so `train` seemed to hang before its first epoch.
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(uri: str) -> None:
    """For an http(s) store, StoreError unless its server accepts a connection within CONNECT_TIMEOUT_S."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise StoreError(
            f"the MLflow store {uri} (MLFLOW_TRACKING_URI) does not answer: {exc.strerror or exc}"
        ) from None


def configure(settings: CommonSettings | None = None) -> str:
    """Point MLflow (tracking and registry) at the configured store; create the experiment if needed.

    A store that cannot be used (a server that does not answer, a database that cannot be made or read)
    is a StoreError naming it, not a traceback (`train` checks it before any training)."""
    import mlflow

    settings = settings or CommonSettings.from_env()
    uri = settings.mlflow_tracking_uri
    _check_reachable(uri)
    try:
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).resolve().parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = mlflow.MlflowClient()
        if client.get_experiment_by_name(EXPERIMENT) is None:
            client.create_experiment(EXPERIMENT, artifact_location=_artifact_root(uri))
        mlflow.set_experiment(EXPERIMENT)
    except Exception as exc:  # MlflowException, a database error, OSError: whatever the store answers
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise StoreError(f"the MLflow store {uri} (MLFLOW_TRACKING_URI) cannot be used: {reason}") from exc
    return uri


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested parameters as MLflow-friendly flat strings (`{"a": {"b": 1}}` -> `{"a.b": "1"}`)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


@contextmanager
def start_run(
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    settings: CommonSettings | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Configure the store, open a run in experiment `buzzwatch` and log its parameters."""
    import mlflow

    configure(settings)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as run:
        if params:
            mlflow.log_params(flatten_params(params))
        yield run


def log_params(params: Mapping[str, Any]) -> None:
    """Log (possibly nested) parameters to the active run."""
    import mlflow

    mlflow.log_params(flatten_params(params))


def log_epoch(metrics: Mapping[str, float], epoch: int) -> None:
    """Log one epoch's metrics (loss, validation scores...) with the epoch as the step."""
    import mlflow

    mlflow.log_metrics({name: float(value) for name, value in metrics.items()}, step=epoch)


def _metric_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", name)


def log_report(
    name: str, report: Mapping[str, Any], matrix: Any = None, labels: Sequence[str] = LABELS
) -> None:
    """Log an evaluation report: `<name>_<metric>` metrics, `evaluation/<name>.json` and, with a confusion
    matrix, `evaluation/<name>_confusion.png`."""
    import mlflow

    from models.evaluate import write_confusion_matrix_png

    prefix = _metric_name(name)
    metrics = {f"{prefix}_{key}": float(report[key]) for key in ("accuracy", "macro_f1", "macro_recall")}
    for label, scores in report["per_class"].items():
        for key in ("precision", "recall", "f1"):
            metrics[f"{prefix}_{_metric_name(label)}_{key}"] = float(scores[key])
    mlflow.log_metrics(metrics)
    mlflow.log_dict(dict(report), f"evaluation/{prefix}.json")
    if matrix is not None:
        with tempfile.TemporaryDirectory() as scratch:
            png = write_confusion_matrix_png(matrix, Path(scratch) / f"{prefix}_confusion.png", labels, name)
            mlflow.log_artifact(str(png), artifact_path="evaluation")


def log_evaluation(
    name: str, y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS
) -> dict:
    """Evaluate predictions on one named set and log the report, its JSON and confusion-matrix PNG."""
    from models.evaluate import confusion_matrix, report_from_matrix

    matrix = confusion_matrix(y_true, y_pred, labels)
    report = report_from_matrix(matrix, labels)
    log_report(name, report, matrix, labels)
    return report


def log_model_dir(path: str | Path, artifact_path: str = MODEL_ARTIFACT_PATH) -> str:
    """Log a model artifact directory (ONNX, vocabulary, label map, normaliser version...) to the run."""
    import mlflow

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist")
    mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    return mlflow.get_artifact_uri(artifact_path)


def register_model(
    artifact_path: str = MODEL_ARTIFACT_PATH,
    run_id: str | None = None,
    name: str = REGISTERED_MODEL,
    alias: str | None = CHAMPION_ALIAS,
    description: str | None = None,
) -> str:
    """Register a run's logged model directory as a new version of `name`; set `alias` on it if given.

    `run_id` defaults to the active run. Returns the new version number (as a string).
    """
    import mlflow

    client = mlflow.MlflowClient()
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("register_model needs run_id outside an active run")
        run_id = active.info.run_id
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source=source, run_id=run_id, description=description)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def set_alias(version: str, alias: str = CHAMPION_ALIAS, name: str = REGISTERED_MODEL) -> None:
    """Move `alias` (default `champion`) to a registered version."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, alias, str(version))


def current_champion(
    name: str = REGISTERED_MODEL, alias: str = CHAMPION_ALIAS, settings: CommonSettings | None = None
) -> dict | None:
    """The version under `alias` with its run's metrics (to compare a candidate against), or None."""
    import mlflow

    configure(settings)
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    return {"version": str(version.version), "run_id": version.run_id, "metrics": dict(metrics)}


def resolve_model_uri(
    model_uri: str = CHAMPION_URI, dst_dir: str | Path | None = None, settings: CommonSettings | None = None
) -> Path:
    """Download a `models:/...` or `runs:/...` URI to a local directory (default under var_dir)."""
    import mlflow

    settings = settings or CommonSettings.from_env()
    store = settings.mlflow_tracking_uri
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(
            f"no MLflow store at {store.removeprefix('sqlite:///')} (MLFLOW_TRACKING_URI): nothing is "
            f"registered until `buzzwatch train` registers {CHAMPION_URI}; pass an artifact directory instead"
        )
    configure(settings)
    if dst_dir is None:
        dst_dir = settings.var_dir / "model_cache" / re.sub(r"[^A-Za-z0-9_.-]+", "_", model_uri)
    dst_dir = Path(dst_dir)
    created = not dst_dir.exists()
    dst_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst_dir))
    except Exception:
        if created and not any(dst_dir.iterdir()):
            dst_dir.rmdir()  # a failed lookup leaves no empty cache folder behind
        raise
    return Path(local)
