"""DetectionSettings: each variable lands in its field, documented defaults, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from buzzwatch import zones
from buzzwatch.settings import SettingsError
from buzzwatch.zones import BrandsFile
from worker.detection import DetectorConfig
from worker.detection_service.settings import DetectionSettings


def test_the_defaults_are_the_documented_ones() -> None:
    settings = DetectionSettings.from_env({})
    # from_env adds nothing of its own; the detector reads the brands' time zones from the brands file
    zones = DetectorConfig(brand_zones=settings.brands.configured_zones())
    assert settings == DetectionSettings(brands=BrandsFile.read(), detector=zones)
    assert settings.detector.brand_zones["airparadis"] == "Europe/Paris"
    assert (settings.checkpoint_interval_s, settings.checkpoint_max_messages) == (2.0, 2000)  # README
    assert (settings.seen_retention_days, settings.reset_state) == (14.0, False)
    assert (settings.health_port, settings.health_host, settings.owned_partitions) == (
        8081,
        "127.0.0.1",
        None,
    )
    assert settings.feed_auth.audience is None  # the feed needs no token unless DETECTION_FEED_AUTH_* says so


def test_each_variable_lands_in_its_field(tmp_path: Path) -> None:
    brands = tmp_path / "brands.toml"
    brands.write_text('[[brand]]\nname = "united"\n')
    settings = DetectionSettings.from_env(
        {
            "DETECTION_CHECKPOINT_S": "0.5",
            "DETECTION_CHECKPOINT_MESSAGES": "300",
            "DETECTION_SEEN_RETENTION_DAYS": "3",
            "DETECTION_RESET_STATE": "true",
            "PORT": "9123",
            "DETECTION_HOST": "0.0.0.0",
            "DETECTION_FEED_AUTH_AUDIENCE": "https://detection",
            "DETECTION_FEED_AUTH_SERVICE_ACCOUNT": "app@p.iam",
            "BUZZWATCH_DETECTOR_FIRE_SCORE": "7.5",
            "BUZZWATCH_BRANDS_FILE": str(brands),
        }
    )
    assert (settings.checkpoint_interval_s, settings.checkpoint_max_messages) == (0.5, 300)
    assert (settings.seen_retention_days, settings.reset_state) == (3.0, True)
    assert (settings.health_port, settings.health_host) == (9123, "0.0.0.0")
    assert (settings.feed_auth.audience, settings.feed_auth.service_account) == (
        "https://detection",
        "app@p.iam",
    )
    assert settings.detector.defaults.fire_score == 7.5
    assert settings.brands == BrandsFile(brands, ({"name": "united"},))


def test_the_brands_file_is_read_once_for_the_detector_and_the_mails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detector's zones and the mails' zones and names are one reading of the file (it was read three
    times at the service's start, and a missing file was warned about three times)."""
    path = tmp_path / "brands.toml"
    path.write_text(
        '[[brand]]\nname = "united"\ndisplay_name = "United Airlines"\ntimezone = "America/Chicago"\n'
    )
    settings = DetectionSettings.from_env({"BUZZWATCH_BRANDS_FILE": str(path)})
    path.write_text('[[brand]]\nname = "united"\ntimezone = "Europe/Paris"\n')  # changed after the start
    assert settings.detector.brand_zones == {"united": "America/Chicago"}
    assert str(settings.brands.zones()["united"]) == "America/Chicago"
    assert settings.brands.names() == {"united": "United Airlines"}
    path.unlink()  # a misspelt path was a warning, and every brand was read by id, in UTC
    with pytest.raises(SettingsError, match=f"brands file {path} does not exist"):
        DetectionSettings.from_env({"BUZZWATCH_BRANDS_FILE": str(path)})
    monkeypatch.setattr(zones, "DEFAULT_BRANDS_FILE", path)  # the shipped file missing: said, then UTC
    with caplog.at_level("WARNING", logger="buzzwatch.zones"):
        settings = DetectionSettings.from_env({"BUZZWATCH_BRANDS_FILE": str(path)})
        assert (settings.detector.brand_zones, settings.brands.zones(), settings.brands.names()) == (
            {},
            {},
            {},
        )
    assert [r.getMessage() for r in caplog.records] == ["no brands file: brands read by id, times in UTC"]


@pytest.mark.parametrize(
    "variable",
    ["DETECTION_CHECKPOINT_S", "DETECTION_CHECKPOINT_MESSAGES", "DETECTION_SEEN_RETENTION_DAYS", "PORT"],
)
def test_a_malformed_number_is_refused_by_name(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        DetectionSettings.from_env({variable: "soon"})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DETECTION_CHECKPOINT_S", "-1", "at least 0.1"),
        ("DETECTION_CHECKPOINT_MESSAGES", "0", "at least 1"),
        ("DETECTION_SEEN_RETENTION_DAYS", "0", "at least 1"),  # the hourly prune forgot every seen id
        ("DETECTION_LEASE_S", "inf", "at most 3600"),  # a dead owner's groups were never released
    ],
)
def test_a_number_that_cannot_work_is_refused_with_its_range(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} must be {message}, got '{value}'"):
        DetectionSettings.from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WORKER_MAX_ENVELOPE_BYTES", "0", "at least 1024"),  # every push was dead-lettered as oversized
        ("WORKER_PUBLISH_TIMEOUT_S", "0", "at least 0.1"),
    ],
)
def test_the_scoring_worker_refuses_a_number_that_cannot_work(
    variable: str, value: str, message: str
) -> None:
    from worker.scoring import WorkerSettings

    with pytest.raises(SettingsError, match=f"{variable} must be {message}, got '{value}'"):
        WorkerSettings.from_env({variable: value})


def test_an_instance_id_the_database_cannot_keep_is_refused_by_name() -> None:
    """A group's owner is VARCHAR(200) on PostgreSQL: a longer id failed each take of a group there."""
    assert DetectionSettings.from_env({"DETECTION_INSTANCE_ID": "i" * 200}).instance_id == "i" * 200
    with pytest.raises(SettingsError, match="DETECTION_INSTANCE_ID is 201 characters long; at most 200"):
        DetectionSettings.from_env({"DETECTION_INSTANCE_ID": "i" * 201})
