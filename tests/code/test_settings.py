"""Settings come from the environment with local defaults and fail with the variable's name."""

import pytest

from buzzwatch.settings import CommonSettings, SettingsError


def test_defaults_run_locally(tmp_path):
    settings = CommonSettings.from_env({"BUZZWATCH_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'buzzwatch.db'}"
    assert settings.mlflow_tracking_uri.startswith("sqlite:///")
    assert settings.appinsights_connection_string is None
    assert settings.smtp.host is None


def test_production_values_override_defaults():
    settings = CommonSettings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@db/bw",
            "SMTP_HOST": "smtp.example",
            "SMTP_PORT": "587",
            "SMTP_STARTTLS": "true",
            "ALERT_EMAIL_TO": "a@x, b@x",
        }
    )
    assert settings.database_url.startswith("postgresql")
    assert (settings.smtp.port, settings.smtp.starttls, settings.smtp.recipients) == (
        587,
        True,
        ("a@x", "b@x"),
    )


@pytest.mark.parametrize(("name", "value"), [("SMTP_PORT", "abc"), ("SMTP_STARTTLS", "maybe")])
def test_malformed_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        CommonSettings.from_env({name: value})
