"""The negative-reason classifier: numpy serving matches scikit-learn, the shipped artifact works."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.reasons import (
    DEFAULT_ARTIFACT_DIR,
    META_FILE,
    ReasonClassifier,
    _fit,
    export,
    load_reason_model,
    reason_features,
    reason_table,
    train_reasons,
)
from models.text import NORMALISER_VERSION

TEMPLATES = {
    "lost luggage": ["lost my bag {}", "where is my luggage {}", "bags never arrived {}"],
    "late flight": ["flight delayed {} hours", "still waiting, {} hours late", "delay after delay {}"],
    "customer service issue": ["on hold for {} minutes", "nobody answers the phone {}", "worst service {}"],
}


def synthetic_airline(rows_per_reason: int = 60) -> pd.DataFrame:
    rows = []
    for reason, templates in TEMPLATES.items():
        for i in range(rows_per_reason):
            hashtag = reason.title().replace(" ", "")
            text = f"@airline {templates[i % len(templates)].format(f'x{i}')} #{hashtag}{i}"
            rows.append(
                {
                    "text": text,
                    "label": "negative",
                    "source": "airline",
                    "id": f"{reason}-{i}",
                    "negativereason": reason.title(),
                    "source_split": "",
                }
            )
    return pd.DataFrame(rows)


def test_features_are_tokens_and_bigrams() -> None:
    assert reason_features("Lost my BAG") == [
        "lost",
        "my",
        "bag",
        "<allcaps>",
        "lost my",
        "my bag",
        "bag <allcaps>",
    ]
    assert reason_features("") == []


@pytest.mark.slow
def test_numpy_inference_matches_sklearn_on_real_tweets(tmp_path: Path) -> None:
    from models.data import load_labelled

    table = reason_table(load_labelled(sources=["airline"]))
    train, held_out = table.iloc[:2500], table.iloc[2500:3500]
    pipeline = _fit(train["text"], train["reason"], C=3.0, min_df=2)
    export(pipeline, tmp_path, {"metrics": {}})
    numpy_model = ReasonClassifier.load(tmp_path)
    texts = [*held_out["text"].tolist(), "", "zzz unseen words only"]
    expected = pipeline.predict_proba(texts)
    assert numpy_model.reasons == tuple(pipeline.classes_)
    np.testing.assert_allclose(numpy_model.predict_proba(texts), expected, atol=1e-5)
    assert numpy_model.predict(texts) == list(pipeline.predict(texts))


def test_numpy_inference_matches_sklearn_on_a_tiny_model(tmp_path: Path) -> None:
    table = reason_table(synthetic_airline(20))
    pipeline = _fit(table["text"], table["reason"], C=1.0, min_df=1)
    export(pipeline, tmp_path, {"metrics": {"test": {"macro_f1": 1.0}}})
    model = ReasonClassifier.load(tmp_path)
    texts = ["my bag is lost", "2 hours late again", "on hold forever", "", "nothing known"]
    np.testing.assert_allclose(model.predict_proba(texts), pipeline.predict_proba(texts), atol=1e-5)
    assert model.metrics == {"test": {"macro_f1": 1.0}}
    assert model.predict([]) == []


def test_train_reasons_end_to_end_on_synthetic_data(tmp_path: Path) -> None:
    from buzzwatch.settings import CommonSettings

    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path / "var")})
    report = train_reasons(
        synthetic_airline(), output_dir=tmp_path / "artifact", grid=(1.0,), track=True, settings=settings
    )
    assert report["macro_f1"] > 0.9
    model = ReasonClassifier.load(tmp_path / "artifact")
    assert set(model.reasons) == set(TEMPLATES)
    assert model.predict(["they lost my luggage"]) == ["lost luggage"]
    meta = json.loads((tmp_path / "artifact" / META_FILE).read_text())
    assert meta["normaliser_version"] == NORMALISER_VERSION
    assert (tmp_path / "var" / "mlflow.db").exists()


def test_shipped_artifact_is_small_and_sensible() -> None:
    size = sum(path.stat().st_size for path in DEFAULT_ARTIFACT_DIR.iterdir())
    assert size < 2_000_000
    model = ReasonClassifier.load()
    assert {"late flight", "lost luggage", "cancelled flight", "customer service issue"} <= set(model.reasons)
    predictions = model.predict(
        [
            "@united lost my bag AGAIN, no one knows where my luggage is",
            "@delta flight delayed 4 hours and counting",
            "@JetBlue my flight was cancelled and no rebooking",
            "@AmericanAir on hold for 2 hours, nobody answers the phone",
        ]
    )
    assert predictions == ["lost luggage", "late flight", "cancelled flight", "customer service issue"]
    probabilities = model.predict_proba(["late again"])
    assert probabilities.shape == (1, len(model.reasons))
    assert probabilities.sum() == pytest.approx(1.0)
    assert model.metrics["test"]["n"] > 500


def test_serving_does_not_import_sklearn() -> None:
    code = (
        "import sys; from models.reasons import ReasonClassifier; "
        "ReasonClassifier.load().predict(['lost bag']); "
        "assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_missing_artifact_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ReasonClassifier.load(tmp_path)


def _damaged_copies(root: Path) -> dict[str, Path]:
    """Copies of the shipped artifact with one file truncated, emptied or removed."""
    cases: dict[str, Path] = {}
    for name, damage in [
        ("weights truncated", lambda folder: _truncate(folder / "weights.npz")),
        ("vocabulary not JSON", lambda folder: (folder / "vocabulary.json").write_text('["late')),
        ("meta not JSON", lambda folder: (folder / META_FILE).write_text("{")),
        ("meta without reasons", lambda folder: _drop_key(folder / META_FILE, "reasons")),
        ("vocabulary missing", lambda folder: (folder / "vocabulary.json").unlink()),
        ("folder missing", shutil.rmtree),
    ]:
        folder = root / name.replace(" ", "-")
        shutil.copytree(DEFAULT_ARTIFACT_DIR, folder)
        damage(folder)
        cases[name] = folder
    return cases


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_key(path: Path, key: str) -> None:
    meta = json.loads(path.read_text())
    del meta[key]
    path.write_text(json.dumps(meta))


def test_a_damaged_artifact_is_a_clear_error_naming_the_folder(tmp_path: Path) -> None:
    for name, folder in _damaged_copies(tmp_path).items():
        expected = FileNotFoundError if "missing" in name else ValueError
        with pytest.raises(expected, match=str(folder)):
            ReasonClassifier.load(folder)


def test_services_load_no_reason_model_and_one_warning_when_the_artifact_is_unusable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name, folder in _damaged_copies(tmp_path).items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="models.reasons"):
            assert load_reason_model(folder) is None, name
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1 and str(folder) in warnings[0].getMessage(), name
    assert load_reason_model().predict(["they lost my luggage"]) == ["lost luggage"]
