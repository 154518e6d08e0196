"""The API's own settings, read once from the environment next to `CommonSettings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buzzwatch.settings import CommonSettings, SettingsError, env_float, env_int, env_list, env_str

if TYPE_CHECKING:
    from models.predictor import Predictor


@dataclass(frozen=True)
class ApiSettings:
    """Limits, security and drift-alert settings of the scoring API."""

    common: CommonSettings
    api_key: str | None = None
    app_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_request_bytes: int = 2 * 1024 * 1024
    max_batch: int = 256
    max_text_chars: int = 1000
    max_comment_chars: int = 2000
    drift_window_s: float = 3600.0
    drift_min_wrong: int = 20
    drift_min_wrong_share: float = 0.3
    drift_cooldown_s: float = 6 * 3600.0
    prediction_retention_s: float = 7 * 24 * 3600.0
    prediction_log_max_rows: int = 100_000
    anonymous_texts_per_min: int = 15_000
    anonymous_feedback_per_min: int = 30
    wrong_secrets_per_min: int = 10  # wrong keys or tokens one address may send a minute, then 429s
    proxy_hops: int = 0
    onnx_threads: int = 1
    db_wait_s: float = 2.0  # the most one request waits in total for database locks, then a 503

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        """Build from BUZZWATCH_API_* variables (plus the common ones); defaults run locally."""
        env = os.environ if env is None else env
        return cls(
            common=CommonSettings.from_env(env),
            api_key=env_str(env, "BUZZWATCH_API_KEY"),
            app_token=env_str(env, "BUZZWATCH_APP_TOKEN"),
            cors_origins=env_list(env, "BUZZWATCH_CORS_ORIGINS"),
            max_request_bytes=env_int(env, "BUZZWATCH_API_MAX_REQUEST_BYTES", 2 * 1024 * 1024, minimum=1024),
            max_batch=env_int(env, "BUZZWATCH_API_MAX_BATCH", 256, minimum=1),
            max_text_chars=env_int(env, "BUZZWATCH_API_MAX_TEXT_CHARS", 1000, minimum=1),
            max_comment_chars=env_int(env, "BUZZWATCH_API_MAX_COMMENT_CHARS", 2000, minimum=0),
            drift_window_s=env_float(env, "BUZZWATCH_DRIFT_WINDOW_S", 3600.0, minimum=1.0),
            drift_min_wrong=env_int(env, "BUZZWATCH_DRIFT_MIN_WRONG", 20, minimum=1),
            drift_min_wrong_share=env_float(
                env, "BUZZWATCH_DRIFT_MIN_WRONG_SHARE", 0.3, minimum=0.0, maximum=1.0
            ),
            drift_cooldown_s=env_float(env, "BUZZWATCH_DRIFT_COOLDOWN_S", 6 * 3600.0, minimum=0.0),
            prediction_retention_s=env_float(
                env, "BUZZWATCH_PREDICTION_RETENTION_S", 7 * 24 * 3600.0, minimum=60.0
            ),
            prediction_log_max_rows=env_int(env, "BUZZWATCH_PREDICTION_LOG_MAX_ROWS", 100_000, minimum=1),
            anonymous_texts_per_min=env_int(env, "BUZZWATCH_API_TEXTS_PER_MIN", 15_000, minimum=0),
            anonymous_feedback_per_min=env_int(env, "BUZZWATCH_API_FEEDBACK_PER_MIN", 30, minimum=0),
            wrong_secrets_per_min=env_int(env, "BUZZWATCH_API_WRONG_SECRETS_PER_MIN", 10, minimum=0),
            proxy_hops=env_int(env, "BUZZWATCH_API_PROXY_HOPS", 0, minimum=0),
            onnx_threads=env_int(env, "BUZZWATCH_API_ONNX_THREADS", 1, minimum=1),
            db_wait_s=env_float(env, "BUZZWATCH_API_DB_WAIT_S", 2.0, minimum=0.0, maximum=25.0),
        )


def load_predictor(settings: ApiSettings) -> Predictor:
    """The model BUZZWATCH_MODEL_URI names; no usable artifact there is one `SettingsError` line.

    Here, not in `api.app`: `buzzwatch api` checks the model before it starts gunicorn, and importing the
    app (Flask and the routes, about 0.2 s of CPU) there only delayed every start-up.
    """
    from models.predictor import ModelLoadError, Predictor

    try:
        return Predictor.load(settings.common.model_uri, threads=settings.onnx_threads)
    except ModelLoadError as exc:
        uri = settings.common.model_uri
        raise SettingsError(f"cannot load the model BUZZWATCH_MODEL_URI={uri}: {exc}") from None
