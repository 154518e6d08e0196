"""A full or read-only disk: nothing stored is answered as an error, nothing answered is lost, and the
errors and /readyz name the path.

Tests run as root in CI, where chmod does not stop a write. So: telemetry under a path whose parent is a
regular file (no process can write there), and a real full disk: a 2 MiB tmpfs filled to the last byte
(needs the right to mount, as root in a container usually has; skipped with that message otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.app import create_app
from api.settings import ApiSettings
from api.store import FeedbackStore, predictions_table
from buzzwatch.notify import Mailer
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import MODEL_DRIFT_ALERT, LocalTelemetry, read_local
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


class DiskFillingMailer(Mailer):
    """The real spool, on the small disk, which fills (the filler kept) as a mail is about to be spooled."""

    def __init__(self, disk: Path, common: CommonSettings) -> None:
        super().__init__(common.smtp, common.var_dir / "mail-spool", common.var_dir / "outbox")
        self.disk = disk
        self.filler: Path | None = None

    def send(self, *args: Any, **kwargs: Any) -> bool:
        if self.filler is None:
            self.filler = fill_disk(self.disk)
        return super().send(*args, **kwargs)


def test_a_drift_mail_refused_by_a_full_disk_whose_claim_cannot_be_released_is_retried_once(
    small_disk: Path, clock: FakeClock
) -> None:
    """The claim's release is a database write, refused by the same full disk: the claim stayed and the drift
    alert waited out the cooldown (6 hours by default) instead of going out with the next wrong feedback."""
    common = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(small_disk / "var")})
    settings = ApiSettings(
        common=common, api_key="k", app_token="t", drift_min_wrong=3, drift_min_wrong_share=0.5
    )
    store = FeedbackStore(common.database_url, clock=clock)
    mailer = DiskFillingMailer(small_disk, common)
    telemetry_dir = small_disk.parent / "telemetry"  # off the small disk: the events are what is counted

    def client() -> FlaskClient:  # an API process (a restart builds a new one on the same files)
        return create_app(
            settings,
            predictor=LexiconPredictor(),
            store=store,
            telemetry=LocalTelemetry(telemetry_dir, role="api"),
            mailer=mailer,
            clock=clock,
        ).test_client()

    first = client()
    predictions = [
        first.post("/v1/predict", json={"text": f"great trip {n}"}).get_json()["prediction_id"]
        for n in range(6)
    ]

    def correct(api: FlaskClient, index: int) -> None:
        feedback = {"prediction_id": predictions[index], "label": "negative"}
        assert api.post("/v1/feedback", json=feedback).status_code == 201

    for index in range(3):  # the third crosses the threshold: the mail and the claim's release both fail
        correct(first, index)
    assert mailer.filler is not None and not mailer.outbox_dir.exists()
    assert store.last_drift_alert() == clock.now  # the claim is held
    mailer.filler.unlink()  # room again
    clock.now += timedelta(minutes=1)
    correct(first, 3)
    mails = sorted(mailer.outbox_dir.glob("*.eml"))
    assert len(mails) == 1 and b"Model drift" in mails[0].read_bytes()
    for api, index in ((first, 4), (client(), 5)):  # sent: neither this process nor a restarted one again
        correct(api, index)
    assert sorted(mailer.outbox_dir.glob("*.eml")) == mails
    assert len(read_local(telemetry_dir, "events", MODEL_DRIFT_ALERT)) == 1
    store.close()
