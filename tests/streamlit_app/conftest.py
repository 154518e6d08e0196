"""Fixtures: a real API (tiny predictor, SQLite, local telemetry) on a loopback port for the app to call."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore
from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from tests.support.api import LexiconPredictor, serve_in_thread
from tests.support.integration import server_fixture


@pytest.fixture
def api_app(isolated_var_dir: Path) -> Iterator[Flask]:
    common = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(isolated_var_dir)})
    settings = ApiSettings(common=common, api_key="ui-test-key")
    store = FeedbackStore(common.database_url)
    app = create_app(
        settings,
        predictor=LexiconPredictor(),
        store=store,
        telemetry=LocalTelemetry(common.var_dir, role="api"),
        mailer=Mailer.from_settings(common),
    )
    yield app
    store.close()


@server_fixture
def api_url(api_app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve_in_thread(api_app) as url:
        monkeypatch.setenv("BUZZWATCH_API_URL", url)
        yield url


@pytest.fixture(autouse=True)
def _no_keras_in_the_app_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the pages as the app's own process runs them: without Keras imported.

    After every script run Streamlit clears Keras's session (a full garbage collection) whenever `keras` is
    in sys.modules. The app never imports it, but the model tests that run before these in one pytest
    process do: every page run then paid for a collection of their whole heap (25 page tests took 98 s in
    CI's run instead of 39 s alone). Hidden for the test, restored after.
    """
    monkeypatch.delitem(sys.modules, "keras", raising=False)


@pytest.fixture(scope="package", autouse=True)
def _installed_components_scanned_once() -> Iterator[None]:
    """Each new AppTest scans every installed distribution's metadata for Streamlit v2 components (0.54 CPU-s
    here, for none found): a third of a page test's time. The installed packages do not change during the run,
    so the page tests share the first scan's answer."""
    from streamlit.components.v2 import manifest_scanner

    found = manifest_scanner.scan_component_manifests()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manifest_scanner, "scan_component_manifests", lambda max_workers=None: list(found))
        yield
