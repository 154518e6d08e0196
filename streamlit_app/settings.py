"""The app's settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buzzwatch.settings import (
    DEFAULT_API_URL,
    CommonSettings,
    env_choice,
    env_float,
    env_int,
    env_str,
    env_url,
)
from buzzwatch.zones import brands_file


@dataclass(frozen=True)
class UiSettings:
    """Where the API and the stream's figures are, how the pages refresh and batch."""

    api_url: str
    var_dir: Path
    refresh_s: float
    batch_size: int
    lookback_hours: float
    detection_url: str | None = None  # BUZZWATCH_DETECTION_URL: read the stream from the detection service
    detection_cloud_run_auth: bool = False  # BUZZWATCH_DETECTION_AUTH=cloud-run: call it with an ID token
    brands_file: Path | None = None  # BUZZWATCH_BRANDS_FILE: each brand's time zone (config/brands.toml)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UiSettings:
        """Build from BUZZWATCH_API_URL, BUZZWATCH_DETECTION_*, BUZZWATCH_UI_* and BUZZWATCH_BRANDS_FILE."""
        env = os.environ if env is None else env
        return cls(
            api_url=env_url(env, "BUZZWATCH_API_URL") or DEFAULT_API_URL,
            var_dir=CommonSettings.from_env(env).var_dir,
            refresh_s=env_float(env, "BUZZWATCH_UI_REFRESH_S", 5.0, minimum=0.5),
            batch_size=env_int(env, "BUZZWATCH_UI_BATCH_SIZE", 256, minimum=1),
            lookback_hours=env_float(env, "BUZZWATCH_UI_LOOKBACK_HOURS", 24.0, minimum=0.1),
            detection_url=env_str(env, "BUZZWATCH_DETECTION_URL"),
            detection_cloud_run_auth=env_choice(env, "BUZZWATCH_DETECTION_AUTH", ("cloud-run",)) is not None,
            brands_file=brands_file(env),
        )
