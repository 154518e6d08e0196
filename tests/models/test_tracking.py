"""MLflow helpers against a real local sqlite store in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buzzwatch.settings import CommonSettings

mlflow = pytest.importorskip("mlflow")

from models import tracking  # noqa: E402


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> CommonSettings:
    var_dir = tmp_path_factory.mktemp("mlflow-var")
    return CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(var_dir)})


def test_flatten_params() -> None:
    assert tracking.flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "None",
    }


def test_run_logs_everything_and_champion_resolves(settings: CommonSettings, tmp_path: Path) -> None:
    model_dir = tmp_path / "artifact"
    model_dir.mkdir()
    (model_dir / "meta.json").write_text(json.dumps({"normaliser_version": "1"}))
    with tracking.start_run(
        "unit", params={"model": {"kind": "tiny"}, "epochs": 2}, settings=settings
    ) as run:
        for epoch, loss in enumerate((0.9, 0.5)):
            tracking.log_epoch({"loss": loss}, epoch)
        report = tracking.log_evaluation("val", ["negative", "positive"], ["negative", "neutral"])
        tracking.log_model_dir(model_dir)
        version = tracking.register_model()
    assert tracking.configure(settings).startswith("sqlite:///")
    assert str(settings.var_dir) in tracking.configure(settings)
    client = mlflow.MlflowClient()
    data = client.get_run(run.info.run_id).data
    assert data.params == {"model.kind": "tiny", "epochs": "2"}
    assert data.metrics["val_macro_f1"] == pytest.approx(report["macro_f1"])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.9, 0.5]
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {"evaluation/val.json", "evaluation/val_confusion.png"}
    # Artifacts live beside the sqlite database, never in the working directory.
    assert client.get_run(run.info.run_id).info.artifact_uri.startswith((settings.var_dir).resolve().as_uri())

    champion = tracking.current_champion(settings=settings)
    assert champion is not None and champion["version"] == version
    assert champion["metrics"]["val_accuracy"] == pytest.approx(0.5)
    local = tracking.resolve_model_uri(settings=settings)
    assert json.loads((local / "meta.json").read_text()) == {"normaliser_version": "1"}


def test_alias_moves_to_a_better_version(settings: CommonSettings, tmp_path: Path) -> None:
    model_dir = tmp_path / "artifact"
    model_dir.mkdir()
    (model_dir / "meta.json").write_text("{}")
    with tracking.start_run("first", settings=settings):
        tracking.log_model_dir(model_dir)
        first = tracking.register_model()
    with tracking.start_run("candidate", settings=settings):
        tracking.log_model_dir(model_dir)
        candidate = tracking.register_model(alias=None)
    assert tracking.current_champion(settings=settings)["version"] == first
    tracking.set_alias(candidate)
    assert tracking.current_champion(settings=settings)["version"] == candidate


def test_register_needs_a_run(settings: CommonSettings) -> None:
    tracking.configure(settings)
    with pytest.raises(RuntimeError, match="run_id"):
        tracking.register_model()
