"""The model-comparison notebook: committed without outputs; runs on an empty store and on a tracked one."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_model_comparison.ipynb"


def _execute(path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors, [f"{error.ename}: {error.evalue}" for error in errors]
    return notebook


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_comparison_notebook_is_committed_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.slow
def test_comparison_notebook_handles_a_missing_store(isolated_var_dir: Path) -> None:
    text = _text(_execute(NOTEBOOK))
    assert "no MLflow store" in text and "nothing to plot yet" in text
    assert not (isolated_var_dir / "mlflow.db").exists()  # looking did not create one


@pytest.mark.slow
def test_comparison_notebook_compares_tracked_runs(isolated_var_dir: Path) -> None:
    import mlflow

    from buzzwatch.schema import LABELS
    from models import tracking
    from models.evaluate import evaluation_report

    truth = ["negative", "neutral", "positive", "negative"]
    runs = {
        "lstm-ft-frozen": ({"embedding": "fasttext", "trainable_embeddings": False}, "lstm", 0.70),
        "lstm-ft-tuned": ({"embedding": "fasttext", "trainable_embeddings": True}, "lstm", 0.74),
        "minilm-frozen": ({"encoder": "minilm", "trainable_layers": 0}, "bert", 0.66),
        "lstm-quick": ({"quick": True}, "lstm", 0.99),
    }
    for name, (params, family, score) in runs.items():
        with tracking.start_run(name, params=params, tags={"family": family}):
            for set_name in ("airline_test", "semeval2016test", "tweeteval_val"):
                tracking.log_report(set_name, evaluation_report(truth, truth, LABELS))
                mlflow.log_metrics({f"{set_name}_macro_f1": score, f"{set_name}_macro_recall": score})
            for epoch, loss in enumerate((0.9, 0.7)):
                tracking.log_epoch({"train_loss": loss, "val_macro_f1": score - 0.1 + 0.05 * epoch}, epoch)
            mlflow.log_metrics(
                {
                    "train_seconds": 10.0,
                    "speed_tweets_per_s": 50.0,
                    "speed_ms_per_tweet": 20.0,
                    "speed_single_p50_ms": 25.0,
                }
            )
    text = _text(_execute(NOTEBOOK))
    assert "3 models: lstm-ft-frozen, lstm-ft-tuned, minilm-frozen" in text  # the quick run is left out
    assert "best macro_f1     on airline_test    : lstm-ft-tuned (0.740)" in text
    assert "minilm-frozen (logged by the run)" in text
