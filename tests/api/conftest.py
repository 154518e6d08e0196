"""Fixtures: the app built by its factory with a tiny predictor, a real SQLite store and local telemetry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore
from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from tests.support.api import API_KEY, APP_TOKEN, FakeClock, LexiconPredictor, RecordingSleep


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(isolated_var_dir: Path) -> ApiSettings:
    common = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(isolated_var_dir)})
    return ApiSettings(
        common=common,
        api_key=API_KEY,
        app_token=APP_TOKEN,
        cors_origins=("http://localhost:8501",),
        max_request_bytes=64 * 1024,
        max_batch=8,
        max_text_chars=300,
        drift_window_s=600,
        drift_min_wrong=3,
        drift_min_wrong_share=0.5,
        drift_cooldown_s=3600,
        anonymous_texts_per_min=100_000,  # the fuzzers post from one address; the limits have their own tests
        anonymous_feedback_per_min=100_000,
    )


@pytest.fixture
def store_sleep() -> RecordingSleep:
    """Every wait of the store for a prediction another worker may not have written yet."""
    return RecordingSleep()


@pytest.fixture
def store(settings: ApiSettings, clock: FakeClock, store_sleep: RecordingSleep) -> Iterator[FeedbackStore]:
    feedback_store = FeedbackStore(settings.common.database_url, clock=clock, sleep=store_sleep)
    yield feedback_store
    feedback_store.close()


@pytest.fixture
def telemetry(settings: ApiSettings) -> LocalTelemetry:
    return LocalTelemetry(settings.common.var_dir, role="api")


@pytest.fixture
def mailer(settings: ApiSettings) -> Mailer:
    return Mailer.from_settings(settings.common)


@pytest.fixture
def app(
    settings: ApiSettings, store: FeedbackStore, telemetry: LocalTelemetry, mailer: Mailer, clock: FakeClock
) -> Flask:
    return create_app(
        settings, predictor=LexiconPredictor(), store=store, telemetry=telemetry, mailer=mailer, clock=clock
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
