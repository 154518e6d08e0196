"""Detector settings: one set of defaults for every brand, with optional per-brand overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from buzzwatch.settings import SettingsError, env_float, env_int, env_str


@dataclass(frozen=True)
class BrandParams:
    """Thresholds that decide when a brand's window is a bad buzz (per brand, overridable)."""

    # Chosen on the benchmark's tuning seeds 1-2 (bench/detection.py --tune), reported on seeds 3-5.
    fire_score: float = 4.0  # a window fires when its negative-count z reaches this ...
    min_share_z: float = 2.0  # ... and its negative-share z reaches this (score = min of the two, scaled)
    end_score: float = 2.0  # an episode ends after `end_quiet_minutes` closed minutes below this
    min_negatives: int = 6  # fewest negative tweets in a window that can fire
    min_excess_negatives: float = 4.0  # negatives above the expected count needed to fire
    share_margin: float = 0.10  # the share test is against baseline share + this margin
    end_quiet_minutes: int = 15
    cooldown_minutes: int = 60  # after an episode ends, a re-fire within this reopens it
    update_growth: float = 2.0  # an update when the episode's excess negatives reach growth x last alert
    update_min_negatives: int = 15  # ... and at least this many more than at the last alert
    update_min_interval_minutes: int = 10
    warmup_minutes: int = 120  # no alert until the baseline holds this many minutes (lag included: 3 h)
    warmup_tweets: int = 300  # ... and this many tweets ...
    hour_warmup_minutes: int = 30  # ... and this many minutes of the current hour of day (so about a day)


@dataclass(frozen=True)
class DetectorConfig:
    """Event-time windows, baseline memory and explanation sizes; `defaults` apply to every brand."""

    windows_minutes: tuple[int, ...] = (3, 5, 15, 60)
    lateness_tolerance_s: float = 30.0  # events up to this late (event time) are counted exactly
    defaults: BrandParams = field(default_factory=BrandParams)
    brand_overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    baseline_lag_minutes: int = 60  # a minute joins the baseline this long after it closes
    volume_horizon_days: float = 7.0  # memory of each hour-of-day volume EWMA
    share_horizon_days: float = 7.0  # memory of each hour-of-day negative share
    global_horizon_minutes: float = 2880.0  # memory of the all-hours fallback
    hour_prior_minutes: float = 30.0  # weight of the all-hours rate in an hour bucket with little data
    hour_share_prior_tweets: float = 50.0  # weight of the all-hours share in an hour bucket's share
    share_prior: float = 0.3  # negative share assumed before any data
    share_prior_tweets: float = 20.0
    anomaly_weight: float = 0.1  # how much a minute inside an episode moves the baseline
    surge_cap: float = 4.0  # a minute is learned as at most this many times its expected volume ...
    surge_floor: float = 5.0  # ... or this many tweets
    min_rate_per_minute: float = 0.02  # floor on the expected volume (quiet nights)
    reference_size: int = 1000  # recent normal tweets kept as the explanation's reference corpus
    top_terms: int = 10
    samples: int = 5
    max_gap_minutes: int = 10080  # an event-time jump longer than this skips ahead without baseline updates

    def __post_init__(self) -> None:
        if not self.windows_minutes or min(self.windows_minutes) < 1:
            raise SettingsError("windows_minutes must hold positive window lengths")
        if self.lateness_tolerance_s < 0:
            raise SettingsError("lateness_tolerance_s must not be negative")
        known = {f.name for f in fields(BrandParams)}
        for brand, override in self.brand_overrides.items():
            unknown = set(override) - known
            if unknown:
                raise SettingsError(f"unknown detector setting(s) for brand {brand!r}: {sorted(unknown)}")

    def params_for(self, brand: str) -> BrandParams:
        """The thresholds for one brand: the defaults with that brand's overrides applied."""
        override = self.brand_overrides.get(brand)
        if not override:
            return self.defaults
        typed = {
            f.name: type(getattr(self.defaults, f.name))(override[f.name])
            for f in fields(BrandParams)
            if f.name in override
        }
        return replace(self.defaults, **typed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored inside the detector state)."""
        payload = asdict(self)
        payload["windows_minutes"] = list(self.windows_minutes)
        payload["brand_overrides"] = {b: dict(o) for b, o in self.brand_overrides.items()}
        return payload

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DetectorConfig:
        """Rebuild from `to_dict` output; unknown keys are refused."""
        values = dict(payload)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"unknown detector setting(s): {sorted(unknown)}")
        if "windows_minutes" in values:
            values["windows_minutes"] = tuple(int(w) for w in values["windows_minutes"])
        if "defaults" in values and isinstance(values["defaults"], Mapping):
            values["defaults"] = BrandParams(**values["defaults"])
        return cls(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DetectorConfig:
        """Build from BUZZWATCH_DETECTOR_* variables; BUZZWATCH_DETECTOR_BRANDS is a JSON object of overrides.

        Example: BUZZWATCH_DETECTOR_BRANDS='{"United": {"fire_score": 6, "min_negatives": 10}}'.
        """
        defaults = BrandParams(
            fire_score=env_float(env, "BUZZWATCH_DETECTOR_FIRE_SCORE", BrandParams.fire_score),
            end_score=env_float(env, "BUZZWATCH_DETECTOR_END_SCORE", BrandParams.end_score),
            min_negatives=env_int(env, "BUZZWATCH_DETECTOR_MIN_NEGATIVES", BrandParams.min_negatives),
            cooldown_minutes=env_int(
                env, "BUZZWATCH_DETECTOR_COOLDOWN_MINUTES", BrandParams.cooldown_minutes
            ),
            warmup_minutes=env_int(env, "BUZZWATCH_DETECTOR_WARMUP_MINUTES", BrandParams.warmup_minutes),
            hour_warmup_minutes=env_int(
                env, "BUZZWATCH_DETECTOR_HOUR_WARMUP_MINUTES", BrandParams.hour_warmup_minutes
            ),
        )
        raw_overrides = env_str(env, "BUZZWATCH_DETECTOR_BRANDS")
        overrides: dict[str, dict[str, float]] = {}
        if raw_overrides:
            try:
                overrides = json.loads(raw_overrides)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"BUZZWATCH_DETECTOR_BRANDS is not a JSON object: {exc}") from exc
            if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
                raise SettingsError("BUZZWATCH_DETECTOR_BRANDS must map brand names to objects of settings")
        return cls(
            lateness_tolerance_s=env_float(env, "BUZZWATCH_DETECTOR_LATENESS_S", cls.lateness_tolerance_s),
            defaults=defaults,
            brand_overrides=overrides,
        )
