"""A full or read-only disk: nothing stored is answered as an error, nothing answered is lost, and the
errors and /readyz name the path.

Tests run as root in CI, where chmod does not stop a write. So: telemetry under a path whose parent is a
regular file (no process can write there), and a real full disk: a 2 MiB tmpfs filled to the last byte
(needs the right to mount, as root in a container usually has; skipped with that message otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore, predictions_table
from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from tests.support.api import FakeClock, LexiconPredictor
from tests.support.disks import fill_disk, small_tmpfs


def test_a_failing_telemetry_sink_never_fails_a_stored_feedback(
    settings: ApiSettings, store: FeedbackStore, mailer: Mailer, clock: FakeClock, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the telemetry folder's parent should be")
    telemetry = LocalTelemetry(blocked / "var", role="api")  # every write fails: NotADirectoryError
    client = create_app(
        settings, predictor=LexiconPredictor(), store=store, telemetry=telemetry, mailer=mailer, clock=clock
    ).test_client()
    prediction = client.post("/v1/predict", json={"text": "great crew, thanks"}).get_json()
    feedback = {"prediction_id": prediction["prediction_id"], "label": "negative"}
    assert client.post("/v1/feedback", json=feedback).status_code == 201
    assert client.post("/v1/feedback", json=feedback).status_code == 409  # the retry: it is stored
    ready = client.get("/readyz")
    assert ready.status_code == 200  # scoring and feedback work: reported, not unready
    assert str(blocked / "var" / "telemetry") in ready.get_json()["telemetry"]
    assert "NotADirectoryError" in ready.get_json()["telemetry"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk") as disk:
        yield disk


def test_a_full_disk_is_a_clear_503_and_nothing_answered_is_lost(
    small_disk: Path, mailer: Mailer, clock: FakeClock
) -> None:
    common = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(small_disk / "var")})
    settings = ApiSettings(common=common, api_key="k", app_token="t")
    store = FeedbackStore(common.database_url, flush_interval_s=3600, clock=clock)  # flushed by the routes
    client: FlaskClient = create_app(
        settings,
        predictor=LexiconPredictor(),
        store=store,
        telemetry=LocalTelemetry(common.var_dir, role="api"),
        mailer=mailer,
        clock=clock,
    ).test_client()
    database = str((small_disk / "var" / "buzzwatch.db").resolve())
    assert client.get("/readyz").status_code == 200

    filler = fill_disk(small_disk)
    texts = [f"great crew, thanks, flight {n} " + "x" * 900 for n in range(200)]
    scored = client.post("/v1/predict", json={"texts": texts[:8]})
    assert scored.status_code == 200  # scoring does not need the disk
    for start in range(8, 200, 8):  # more than any free page the database had left
        client.post("/v1/predict", json={"texts": texts[start : start + 8]})
    prediction_id = scored.get_json()["predictions"][0]["prediction_id"]
    feedback = {"prediction_id": prediction_id, "label": "negative"}
    refused = client.post("/v1/feedback", json=feedback)
    assert refused.status_code == 503, refused.get_json()
    assert database in refused.get_json()["message"] and "not stored" in refused.get_json()["message"]
    assert refused.headers["Retry-After"] == "30"
    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert database in unready.get_json()["database"]

    filler.unlink()
    assert client.get("/readyz").status_code == 200  # the queued predictions are written now
    assert client.post("/v1/feedback", json=feedback).status_code == 201
    with store.engine.connect() as connection:  # every prediction answered while the disk was full
        assert connection.execute(select(func.count()).select_from(predictions_table)).scalar_one() == 200
    store.close()

