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


def test_a_bad_server_variable_is_a_clear_cli_error_and_spares_other_commands(monkeypatch, capsys) -> None:
    """WORKER_THREADS / WEB_CONCURRENCY are read by the worker's options only, and checked by argparse."""
    from buzzwatch.cli import build_parser

    monkeypatch.setenv("WORKER_THREADS", "many")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    parser = build_parser()
    assert parser.parse_args(["worker", "--threads", "8"]).threads == 8  # the option overrides it
    assert parser.parse_args(["worker", "--threads", "8"]).workers == 2
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["worker"])
    assert exited.value.code == 2
    assert "argument --threads: invalid int value: 'many'" in capsys.readouterr().err
