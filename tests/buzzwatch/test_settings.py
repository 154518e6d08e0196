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


@pytest.mark.parametrize(
    ("name", "value"), [("SMTP_PORT", "abc"), ("SMTP_STARTTLS", "maybe"), ("LOG_LEVEL", "verbose")]
)
def test_malformed_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        CommonSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMTP_PORT", "70000", "between 1 and 65535"),
        ("PUBSUB_MAX_DELIVERY_ATTEMPTS", "3", "between 5 and 100"),  # what Pub/Sub accepts
        ("PUBSUB_START_TIMEOUT_S", "-1", "at least 0.1"),
        ("SMTP_TIMEOUT_S", "nan", "a number"),
    ],
)
def test_values_out_of_their_range_name_the_variable_and_the_range(name, value, message):
    with pytest.raises(SettingsError, match=f"{name} must be {message}, got '{value}'"):
        CommonSettings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBSUB_TWEETS_TOPIC", "goog-tweets"),
        ("PUBSUB_SCORED_TOPIC", "my tweets"),
        ("PUBSUB_DEAD_LETTER_TOPIC", "dl"),
        ("PUBSUB_TWEETS_SUBSCRIPTION", "1-worker"),
        ("PUBSUB_SCORED_SUBSCRIPTION", "détecteur"),
        ("PUBSUB_DEAD_LETTER_SUBSCRIPTION", "x" * 256),
    ],
)
def test_a_topic_or_subscription_name_pubsub_refuses_is_refused_at_start(name, value):
    """Each was an INVALID_ARGUMENT traceback from the first call to Pub/Sub, exit 1."""
    with pytest.raises(SettingsError, match=f"{name}='{value}' is not a Pub/Sub name"):
        CommonSettings.from_env({name: value})
    assert CommonSettings.from_env({name: "Tweets-v2.test_1~+%"}) is not None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # Outlook's separator: the mail server took the first address, the others never got an alert.
        ("ALERT_EMAIL_TO", "team@example.com; oncall@example.com", "separate several with commas"),
        ("ALERT_EMAIL_TO", "team@example.com, social media team", "'social media team' is not an e-mail"),
        ("ALERT_EMAIL_FROM", "buzzwatch", "'buzzwatch' is not an e-mail address"),
        ("ALERT_EMAIL_FROM", "a@example.com, b@example.com", "ALERT_EMAIL_FROM is one address, got 2"),
    ],
)
def test_alert_addresses_are_checked_at_start(name, value, message):
    with pytest.raises(SettingsError, match=message):
        CommonSettings.from_env({name: value})
    named = CommonSettings.from_env(
        {"ALERT_EMAIL_TO": "Team <team@example.com>, oncall@x", "ALERT_EMAIL_FROM": "BuzzWatch <bw@x>"}
    )
    assert named.smtp.recipients == ("Team <team@example.com>", "oncall@x")


def test_log_level_takes_any_level_name_in_any_case():
    assert CommonSettings.from_env({"LOG_LEVEL": "warning"}).log_level == "WARNING"
    assert CommonSettings.from_env({"LOG_LEVEL": " Debug "}).log_level == "DEBUG"
    assert CommonSettings.from_env({}).log_level == "INFO"


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
    assert (
        "argument --threads: 'many' is not a positive whole number (from the option or $WORKER_THREADS)"
        in (capsys.readouterr().err)
    )


def test_a_bad_port_is_one_clear_error_for_the_commands_that_use_it(monkeypatch, capsys, tmp_path) -> None:
    """PORT is read by `api` and `worker` only; any other command runs, those two say what is wrong."""
    from buzzwatch.cli import build_parser, main

    monkeypatch.setenv("PORT", "abc")
    source = tmp_path / "in.csv"
    source.write_text("text\nlost my bag\n")
    assert main(["score", "--input", str(source), "--output", str(tmp_path / "out.csv")]) == 0
    assert (tmp_path / "out.csv").is_file()
    capsys.readouterr()
    for command in (["api"], ["worker"], ["worker", "--role", "detection"]):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(command)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "argument --port: 'abc' is not a port number" in err
        assert "Traceback" not in err
    assert build_parser().parse_args(["api", "--port", "9000"]).port == 9000  # the option overrides it
    monkeypatch.setenv("PORT", "8123")
    assert build_parser().parse_args(["worker"]).port == 8123


@pytest.mark.parametrize(("name", "value"), [("SMTP_PORT", "twenty-five"), ("LOG_LEVEL", "verbose")])
def test_a_malformed_setting_read_by_a_handler_is_one_line(name, value, monkeypatch, capsys) -> None:
    """A SettingsError raised while a command runs is printed as one line naming the variable.

    An unknown LOG_LEVEL was a ValueError traceback from logging in `ingest`, `worker` and `detect`.
    """
    from buzzwatch.cli import main

    monkeypatch.setenv(name, value)
    assert main(["detect"]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err
