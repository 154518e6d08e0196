"""Settings read once from the environment, with embedded local defaults.

Every entry point builds one settings object (`CommonSettings.from_env()` plus its own section) and passes
it down; nothing reads the environment at import time. The defaults run the whole stack on one laptop
(Pub/Sub emulator, SQLite, a local MLflow store, a local SMTP sink or outbox, a local telemetry sink);
production switches to the real services by configuration only.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_URI = str(REPO_ROOT / "models" / "artifacts" / "champion")
# Where `buzzwatch ui` and the app find the scoring API when BUZZWATCH_API_URL is unset: `buzzwatch api`'s.
DEFAULT_API_URL = "http://127.0.0.1:8080"
# How long creating the Pub/Sub topology waits for an answer (the library alone waits 600 s, silently).
DEFAULT_PUBSUB_START_TIMEOUT_S = 30.0
# LOG_LEVEL's values: the level names Python's logging knows (DEBUG, INFO, WARNING, ...), not NOTSET.
LOG_LEVELS = tuple(name for name in logging.getLevelNamesMapping() if name != "NOTSET")


class CommandError(ValueError):
    """What a command cannot do with what it was given (a file, an argument, a setting): `buzzwatch.cli.main`
    prints it as one line, `buzzwatch COMMAND: MESSAGE`, exit status 2, never a traceback."""


class SettingsError(CommandError):
    """A setting is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """A string setting; empty values count as unset."""
    value = env.get(name, "").strip()
    return value if value else default


PUBSUB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")


def env_pubsub_name(env: Mapping[str, str], name: str, default: str) -> str:
    """A topic or subscription id as Pub/Sub accepts it (3-255 letters, digits or -_.~+%, a letter first, not
    "goog..."): one that is not was an INVALID_ARGUMENT traceback from the first call to Pub/Sub."""
    value = env_str(env, name, default) or default
    if not PUBSUB_NAME.fullmatch(value) or value.lower().startswith("goog"):
        raise SettingsError(
            f"{name}={value!r} is not a Pub/Sub name: 3 to 255 letters, digits or - _ . ~ + %, starting "
            "with a letter and not with 'goog'"
        )
    return value


def _within(name: str, raw: str, value: float, minimum: float | None, maximum: float | None) -> None:
    """Refuse a value outside [minimum, maximum], naming the variable and the range."""
    if (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return
    if maximum is None:
        raise SettingsError(f"{name} must be at least {minimum:g}, got {raw!r}")
    if minimum is None:
        raise SettingsError(f"{name} must be at most {maximum:g}, got {raw!r}")
    raise SettingsError(f"{name} must be between {minimum:g} and {maximum:g}, got {raw!r}")


def env_int(
    env: Mapping[str, str], name: str, default: int, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer setting, within [minimum, maximum] when given."""
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    _within(name, raw, value, minimum, maximum)
    return value


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A number setting (never NaN), within [minimum, maximum] when given."""
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if math.isnan(value):
        raise SettingsError(f"{name} must be a number, got {raw!r}")
    _within(name, raw, value, minimum, maximum)
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off."""
    raw = env_str(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_choice(
    env: Mapping[str, str], name: str, choices: Iterable[str], default: str | None = None
) -> str | None:
    """A setting that must be one of `choices` (compared case-insensitively, returned as the choice is)."""
    raw = env_str(env, name)
    if raw is None:
        return default
    known = {choice.lower(): choice for choice in choices}
    if raw.lower() not in known:
        raise SettingsError(f"{name} must be one of {', '.join(known.values())}, got {raw!r}")
    return known[raw.lower()]


def env_list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A comma-separated list setting."""
    raw = env_str(env, name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def http_url(raw: str) -> str | None:
    """`raw` without a trailing slash when it is an http(s) address with a host, else None."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(char.isspace() for char in raw):
        return None
    return raw.rstrip("/")


def env_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) address with a host (a trailing slash dropped); None when unset."""
    raw = env_str(env, name)
    if raw is None:
        return None
    url = http_url(raw)
    if url is None:
        raise SettingsError(
            f"{name}: {raw!r} is not an http(s) address such as https://buzzwatch.example.com"
        )
    return url


def env_addresses(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated e-mail addresses (`team@example.com` or `Team <team@example.com>`), each checked."""
    addresses = env_list(env, name, default)
    for value in addresses:
        _, address = parseaddr(value)
        local, at, domain = address.rpartition("@")
        if ";" in value or not (local and at and domain) or any(char.isspace() for char in address):
            raise SettingsError(
                f"{name}: {value!r} is not an e-mail address; separate several with commas, not semicolons"
            )
    return addresses


@dataclass(frozen=True)
class SmtpSettings:
    """Where alert emails go; with no host they are written to an outbox folder of .eml files."""

    host: str | None
    port: int
    username: str | None
    password: str | None
    starttls: bool
    use_ssl: bool
    sender: str
    recipients: tuple[str, ...]
    timeout_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """Build from SMTP_* and ALERT_EMAIL_* variables."""
        senders = env_addresses(env, "ALERT_EMAIL_FROM", ("buzzwatch@localhost",))
        if len(senders) != 1:
            raise SettingsError(f"ALERT_EMAIL_FROM is one address, got {len(senders)}")
        return cls(
            host=env_str(env, "SMTP_HOST"),
            port=env_int(env, "SMTP_PORT", 25, minimum=1, maximum=65535),
            username=env_str(env, "SMTP_USERNAME"),
            password=env_str(env, "SMTP_PASSWORD"),
            starttls=env_bool(env, "SMTP_STARTTLS", False),
            use_ssl=env_bool(env, "SMTP_SSL", False),
            sender=senders[0],
            recipients=env_addresses(env, "ALERT_EMAIL_TO", ("social-media-team@localhost",)),
            timeout_s=env_float(env, "SMTP_TIMEOUT_S", 10.0, minimum=0.1),
        )


@dataclass(frozen=True)
class CommonSettings:
    """Settings shared by every BuzzWatch service."""

    var_dir: Path
    model_uri: str
    mlflow_tracking_uri: str
    gcp_project: str
    tweets_topic: str
    scored_topic: str
    dead_letter_topic: str
    tweets_subscription: str  # the scoring workers' (push or pull)
    scored_subscription: str  # the detection service's
    dead_letter_subscription: str  # keeps dead letters for inspection
    max_delivery_attempts: int  # deliveries before Pub/Sub dead-letters a message
    appinsights_connection_string: str | None
    database_url: str
    smtp: SmtpSettings
    log_level: str
    pubsub_emulator_host: str | None = None  # None: Google Cloud, with Application Default Credentials
    pubsub_start_timeout_s: float = DEFAULT_PUBSUB_START_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CommonSettings:
        """Build from the process environment (or a given mapping, in tests)."""
        env = os.environ if env is None else env
        var_dir = Path(env_str(env, "BUZZWATCH_VAR_DIR", str(REPO_ROOT / "var")) or "var")
        return cls(
            var_dir=var_dir,
            model_uri=env_str(env, "BUZZWATCH_MODEL_URI", DEFAULT_MODEL_URI) or DEFAULT_MODEL_URI,
            mlflow_tracking_uri=env_str(env, "MLFLOW_TRACKING_URI", f"sqlite:///{var_dir / 'mlflow.db'}")
            or "",
            gcp_project=env_str(env, "GOOGLE_CLOUD_PROJECT", "buzzwatch-local") or "buzzwatch-local",
            tweets_topic=env_pubsub_name(env, "PUBSUB_TWEETS_TOPIC", "tweets"),
            scored_topic=env_pubsub_name(env, "PUBSUB_SCORED_TOPIC", "tweets-scored"),
            dead_letter_topic=env_pubsub_name(env, "PUBSUB_DEAD_LETTER_TOPIC", "tweets-dead-letter"),
            tweets_subscription=env_pubsub_name(env, "PUBSUB_TWEETS_SUBSCRIPTION", "tweets-worker"),
            scored_subscription=env_pubsub_name(env, "PUBSUB_SCORED_SUBSCRIPTION", "tweets-scored-detector"),
            dead_letter_subscription=env_pubsub_name(
                env, "PUBSUB_DEAD_LETTER_SUBSCRIPTION", "tweets-dead-letter-keep"
            ),
            max_delivery_attempts=env_int(env, "PUBSUB_MAX_DELIVERY_ATTEMPTS", 5, minimum=5, maximum=100),
            appinsights_connection_string=env_str(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
            database_url=env_str(env, "DATABASE_URL", f"sqlite:///{var_dir / 'buzzwatch.db'}") or "",
            smtp=SmtpSettings.from_env(env),
            log_level=env_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO") or "INFO",
            pubsub_emulator_host=env_str(env, "PUBSUB_EMULATOR_HOST"),
            pubsub_start_timeout_s=env_float(
                env, "PUBSUB_START_TIMEOUT_S", DEFAULT_PUBSUB_START_TIMEOUT_S, minimum=0.1
            ),
        )
