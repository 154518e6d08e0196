"""Detector settings: one set of defaults for every brand, with optional per-brand overrides."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from buzzwatch.settings import SettingsError, env_float, env_int, env_str
from buzzwatch.zones import BRAND_ID, BrandsFile, brands_file, parse_zone

log = logging.getLogger(__name__)

PRIOR_PATH = Path(__file__).with_name("detector_prior.json")
# Settings of earlier versions, ignored when a saved state or an override still names them: the blind
# warm-up they set is gone (a new brand starts from the prior, with tests that widen while data is thin).
RETIRED_SETTINGS = frozenset({"warmup_minutes", "warmup_tweets", "hour_warmup_minutes"})


def zone_offset_hours(zone: str, minute: int) -> int:
    """Whole hours `zone` (an IANA name, already validated) is ahead of UTC at that minute (minutes since
    the epoch), summer time included; a zone half an hour off rounds up."""
    # (the moment in the zone: `ZoneInfo.utcoffset(moment)` would read its UTC wall time as the zone's,
    # wrong for the hours after a change)
    local = datetime.fromtimestamp(minute * 60, UTC).astimezone(parse_zone(zone, "a brand's time zone"))
    return math.floor(local.utcoffset().total_seconds() / 3600 + 0.5)


@cache
def load_prior() -> dict[str, Any]:
    """The shipped prior of a brand not seen yet (built by scripts/build_detector_prior.py), read once."""
    return json.loads(PRIOR_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class BrandParams:
    """Thresholds that decide when a brand's window is a bad buzz (per brand, overridable)."""

    # Chosen on the benchmark's tuning seeds (bench/detection.py --half tuning); reported on the other half.
    fire_score: float = 4.0  # a window fires when its negative-count z reaches this ...
    # ... and its negative-share z reaches this (score = min of the two, scaled). Kept at 2.0: on the tuning
    # seeds 1, 3, 5 (2026-12-04) 1.5 raised the model's recall from 79% to 86% but its false alerts from
    # 0.52 to 0.72 per brand-week, and fired on a test brand's first morning (tests/worker/detection).
    min_share_z: float = 2.0
    # ... but for a quiet brand, one whose learned mean rate is under `thin_rate_per_minute` tweets a minute,
    # a share z of `thin_min_share_z` may do, once it has been seen a day (a new brand's share is a guess: its
    # first day keeps min_share_z), while it is calm: no episode open nor ended within `thin_calm_minutes`.
    # Without that calm, 1 cut the real Feb 2015 airline week's storms (brands at about 0.2 tweets a
    # minute) into up to 10 new alerts each; with it, the tuning half's quiet brands are alerted sooner
    # (the model's median 33.7 -> 27.5 minutes) for no false alert more (README).
    thin_min_share_z: float = 1.0
    thin_rate_per_minute: float = 0.5
    thin_calm_minutes: int = 1440
    end_score: float = 2.0  # an episode ends after `end_quiet_minutes` closed minutes below this
    min_negatives: int = 6  # fewest negative tweets in a window that can fire ...
    # ... unless it holds this many and its count is clear as a count of tweets (Poisson z >= fire_score,
    # without the smaller dispersion of a model's soft count): at a quiet brand's night, 0.2 negatives
    # expected in 15 minutes, five are clear. 5, chosen on the whole tuning half (README, 2026-12-06): no
    # false alert and no buzz more or less with either scoring, 27 buzzes sooner with human labels (quiet
    # median 23.1 -> 17.8 minutes) and 16 with the model (quiet median 25.3 -> 25.2), none later; first
    # alerts that name their buzz's topic 81 -> 77 of 90 (labels), 73 -> 72 of 84 (model). 4, tried on an
    # earlier detector, cost more topics (README).
    thin_min_negatives: int = 5
    min_excess_negatives: float = 4.0  # negatives above the expected count needed to fire
    share_margin: float = 0.10  # the share test is against baseline share + this margin ...
    # ... times sqrt(this / the window's usual tweets) when it expects more than this many tweets: a brand
    # whose window holds thousands of tweets measures its share well and may fire on a smaller rise.
    share_margin_tweets: float = 300.0
    # ... but never below this (on the true share): a brand's share wobbles hour to hour by more than its
    # sampling noise, so a window of tens of thousands of tweets must not fire on a rise of a point or two.
    # Chosen on the tuning seeds' huge brands (README): their ordinary windows' shares stray from the
    # baseline by up to 0.04 beyond twice the sampling noise; each of their buzzes is still alerted.
    share_margin_floor: float = 0.04
    end_quiet_minutes: int = 15
    # ... but a quiet brand's (see thin_rate_per_minute) after this many: its 15 quiet minutes are three
    # ordinary tweets, so a storm's lull ended the episode and each flare-up was a new alert. 120, fixed
    # on the real week's Delta storm of Sun 22 (3 new alerts with the labels), then measured (README):
    # on the tuning half no buzz and no false alert more or less, one buzz 9 minutes sooner (model).
    thin_end_quiet_minutes: int = 120
    cooldown_minutes: int = 60  # after an episode ends, a re-fire within this reopens it
    update_growth: float = 2.0  # an update when the episode's excess negatives reach growth x last alert
    update_min_negatives: int = 15  # ... and at least this many more than at the last alert
    update_min_interval_minutes: int = 10

    def __post_init__(self) -> None:
        # What would fail or mislead only once tweets flow: at fire_score 0 every window fires (17 alerts on
        # a test day with one buzz); a negative share_margin_tweets is a square root's argument (a crash).
        not_numbers = [setting.name for setting in fields(self) if math.isnan(getattr(self, setting.name))]
        if not_numbers:
            raise SettingsError(f"detector settings must be numbers, got NaN for {', '.join(not_numbers)}")
        if not self.fire_score > 0:  # a very high one (1000) mutes a brand
            raise SettingsError(f"detector setting fire_score must be positive, got {self.fire_score!r}")
        negative = [name for name in NON_NEGATIVE_SETTINGS if getattr(self, name) < 0]
        if negative:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in negative)
            raise SettingsError(f"detector settings must not be negative: {shown}")


# BrandParams settings below zero mean nothing (counts, minutes, rates, margins); the z thresholds may be.
NON_NEGATIVE_SETTINGS = (
    "thin_rate_per_minute",
    "thin_calm_minutes",
    "min_negatives",
    "thin_min_negatives",
    "share_margin",
    "share_margin_tweets",
    "share_margin_floor",
    "end_quiet_minutes",
    "thin_end_quiet_minutes",
    "cooldown_minutes",
    "update_min_negatives",
    "update_min_interval_minutes",
)


@dataclass(frozen=True)
class DetectorConfig:
    """Event-time windows, baseline memory and explanation sizes; `defaults` apply to every brand."""

    windows_minutes: tuple[int, ...] = (3, 5, 15, 30, 60)
    # Those of the windows that are tested only for a quiet brand, one seen a day whose learned mean rate is
    # under its `thin_rate_per_minute`, or one still learning whose tweets so far per unit of its day shape
    # are under it (`BuzzDetector._quiet_so_far`): a quiet buzz's 15-minute window holds too few complaints
    # to be clear while its 60-minute window is still mostly the calm before it. Chosen on the tuning half
    # (README); for every brand (or by the raw mean rate so far, which takes a busy brand's first night for
    # quiet) the 30-minute window also fired on busier brands' shifted day rhythms.
    quiet_windows_minutes: tuple[int, ...] = (30,)
    lateness_tolerance_s: float = 30.0  # events up to this late (event time) are counted exactly
    # The open minute is also tested at every multiple of this many seconds of watermark time, over its
    # tweets before that tick (0: only when the minute closes), so a buzz is alerted once its evidence is
    # in. 30 s, chosen on the whole tuning half (README): alerts out sooner (never later), mostly on the
    # same decisive tweets; 15 s brought them out sooner still but took the model's false alerts past the
    # tuning margin (on 3fd5d06: 0.61 per brand-week against 0.49; 30 s: 0.55), from minutes that began
    # like a buzz and ended calmer.
    tick_seconds: float = 30.0
    defaults: BrandParams = field(default_factory=BrandParams)
    brand_overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    baseline_lag_minutes: int = 60  # a minute joins the baseline this long after it closes
    volume_horizon_days: float = 7.0  # memory of each hour-of-day volume EWMA
    share_horizon_days: float = 7.0  # memory of each hour-of-day negative share
    global_horizon_minutes: float = 2880.0  # memory of the all-hours fallback
    hour_prior_minutes: float = 30.0  # weight of the all-hours rate in an hour bucket with little data
    hour_share_prior_tweets: float = 50.0  # weight of the all-hours share in an hour bucket's share
    # A brand not seen yet: the shipped prior (negative share across real brands, day shape of volume).
    share_prior: float = field(default_factory=lambda: float(load_prior()["negative_share"]))
    share_prior_tweets: float = field(default_factory=lambda: float(load_prior()["share_prior_tweets"]))
    day_shape: tuple[float, ...] = field(default_factory=lambda: tuple(load_prior()["day_shape"]))
    # The same day in the brands' local hours: a brand whose table in the brands file names its
    # `timezone` expects its first days' volume by its own clock (its night quiet, its morning rising);
    # a brand without one keeps `day_shape` (by UTC hour, the shape of US brands' audiences).
    local_day_shape: tuple[float, ...] = field(default_factory=lambda: tuple(load_prior()["local_day_shape"]))
    brand_zones: Mapping[str, str] = field(default_factory=dict)  # brand id -> IANA zone (brands file)
    volume_prior_tweets: float = 1.0  # the volume prior: this many tweets in one minute (vague)
    local_level_minutes: float = 30.0  # the learned level weighs as this many minutes at most, see baseline
    learning_minutes: int = 1440  # a brand is "learning" until it has been seen this many minutes
    reference_gap_minutes: int = 10  # closed minutes count in the expectation once this old (see detector)
    anomaly_weight: float = 0.1  # how much a minute inside an episode moves the baseline
    # While a brand learns (its first day), a clock hour of it that was a clear volume surge (Poisson z >=
    # first_day_surge_z above first_day_surge_ratio x its quietest hour of first_day_reference_minutes or
    # more, by the day shape) keeps anomaly_weight of its share: a buzz it could not alert on does not
    # become its baseline (see `DayProfileBaseline.surges`). Chosen on the tuning half (README).
    first_day_surge_ratio: float = 2.5
    first_day_surge_z: float = 2.0
    first_day_reference_minutes: int = 30
    surge_cap: float = 4.0  # a minute is learned as at most this many times its expected volume ...
    surge_floor: float = 5.0  # ... or this many tweets
    surge_prior_tweets: float = 3.0  # a window's non-negative surge is shrunk towards 1 by this many tweets
    min_rate_per_minute: float = 0.02  # floor on the expected volume (quiet nights)
    reference_size: int = 1000  # recent normal tweets kept as the explanation's reference corpus
    top_terms: int = 10
    samples: int = 5
    # an event-time jump longer than this skips ahead: only its last max_gap_minutes are learned (as silence)
    max_gap_minutes: int = 10080
    # A settled brand's run of closed minutes without a tweet is learned as its traffic until, by its
    # hours' learned rates, it should have held this many tweets (a chance silence that long has odds
    # e^-30); past that it is an outage (the ingester, its filter or the X API stopped, not the brand's
    # public) and not learned: the baseline keeps the traffic it knew, so the stream's return after a day
    # or a week without tweets is not a "surge" against a rate that learned the outage as zero.
    outage_silence_tweets: float = 30.0
    # A brand not seen yet whose older tweets come first (its history: the ingester fetches a new brand's
    # newest 2,000 over up to 7 days from recent search) learns from up to this many of them, its newest;
    # at most history_max_brands brands wait with a history at once (memory: about 1.5 KB a tweet)
    history_max_tweets: int = 5000
    history_max_brands: int = 10

    def __post_init__(self) -> None:
        if not self.windows_minutes or min(self.windows_minutes) < 1:
            raise SettingsError("windows_minutes must hold positive window lengths")
        strays = sorted(set(self.quiet_windows_minutes) - set(self.windows_minutes))
        if strays:  # such a window was never tested, for any brand, without a word
            raise SettingsError(
                f"quiet_windows_minutes {list(self.quiet_windows_minutes)} must be among windows_minutes "
                f"{list(self.windows_minutes)}; {', '.join(map(str, strays))} is not"
            )
        if not set(self.windows_minutes) - set(self.quiet_windows_minutes):
            raise SettingsError(
                "every brand needs a window: quiet_windows_minutes holds all of windows_minutes"
            )
        for name in ("lateness_tolerance_s", "history_max_tweets", "history_max_brands"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if not 0 <= self.tick_seconds <= 60:
            raise SettingsError("tick_seconds must be between 0 (no ticks) and 60")
        for name in ("day_shape", "local_day_shape"):
            shape = getattr(self, name)
            if len(shape) != 24 or min(shape) <= 0:
                raise SettingsError(f"{name} must hold 24 positive relative volumes")
        for brand, zone in self.brand_zones.items():
            parse_zone(zone, f"the time zone of brand {brand!r}")
        known = {f.name for f in fields(BrandParams)} | RETIRED_SETTINGS
        for brand, override in self.brand_overrides.items():
            unknown = set(override) - known
            if unknown:
                raise SettingsError(f"unknown detector setting(s) for brand {brand!r}: {sorted(unknown)}")
            typed = _typed_override(self.defaults, override, brand)
            try:  # a bad value fails here, not at the brand's first tweet
                replace(self.defaults, **typed)
            except SettingsError as exc:
                raise SettingsError(f"the overrides of brand {brand!r}: {exc}") from None

    def params_for(self, brand: str) -> BrandParams:
        """The thresholds for one brand: the defaults with that brand's overrides applied."""
        override = self.brand_overrides.get(brand)
        if not override:
            return self.defaults
        _warn_retired(override, f"brand {brand!r}")
        return replace(self.defaults, **_typed_override(self.defaults, override, brand))

    def utc_offset_of(self, brand: str, minute: int) -> int | None:
        """Whole hours the brand's zone is ahead of UTC at that minute (`zone_offset_hours`), or None for a
        brand without a configured zone."""
        zone = self.brand_zones.get(brand)
        return None if zone is None else zone_offset_hours(zone, minute)

    def day_shape_at(self, utc_offset: int | None) -> tuple[float, ...]:
        """The relative volume of each UTC hour of the day for a brand that many hours ahead of UTC:
        `local_day_shape` turned to its clock; `day_shape` when its zone is not known (None)."""
        if utc_offset is None:
            return self.day_shape
        return tuple(self.local_day_shape[(hour + utc_offset) % 24] for hour in range(24))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored inside the detector state)."""
        payload = asdict(self)
        payload["windows_minutes"] = list(self.windows_minutes)
        payload["quiet_windows_minutes"] = list(self.quiet_windows_minutes)
        payload["day_shape"] = list(self.day_shape)
        payload["local_day_shape"] = list(self.local_day_shape)
        payload["brand_zones"] = dict(self.brand_zones)
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
        if "quiet_windows_minutes" in values:
            values["quiet_windows_minutes"] = tuple(int(w) for w in values["quiet_windows_minutes"])
        elif "windows_minutes" in values:  # saved before quiet windows: every window was every brand's
            values["quiet_windows_minutes"] = ()
        for name in ("day_shape", "local_day_shape"):
            if name in values:
                values[name] = tuple(float(v) for v in values[name])
        if "defaults" in values and isinstance(values["defaults"], Mapping):
            _warn_retired(values["defaults"], "a saved state")
            values["defaults"] = BrandParams(
                **{k: v for k, v in values["defaults"].items() if k not in RETIRED_SETTINGS}
            )
        return cls(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str], brands: BrandsFile | None = None) -> DetectorConfig:
        """Build from BUZZWATCH_DETECTOR_* variables; BUZZWATCH_DETECTOR_BRANDS is a JSON object of overrides.
        The brands' time zones come from `brands`, else the brands file (BUZZWATCH_BRANDS_FILE or
        config/brands.toml), read here.

        Example: BUZZWATCH_DETECTOR_BRANDS='{"united": {"fire_score": 6, "min_negatives": 10}}'.
        """
        defaults = BrandParams(
            fire_score=env_float(env, "BUZZWATCH_DETECTOR_FIRE_SCORE", BrandParams.fire_score),
            min_share_z=env_float(env, "BUZZWATCH_DETECTOR_MIN_SHARE_Z", BrandParams.min_share_z),
            thin_min_share_z=env_float(
                env, "BUZZWATCH_DETECTOR_THIN_MIN_SHARE_Z", BrandParams.thin_min_share_z
            ),
            thin_rate_per_minute=env_float(
                env, "BUZZWATCH_DETECTOR_THIN_RATE_PER_MINUTE", BrandParams.thin_rate_per_minute
            ),
            thin_calm_minutes=env_int(
                env, "BUZZWATCH_DETECTOR_THIN_CALM_MINUTES", BrandParams.thin_calm_minutes
            ),
            share_margin=env_float(env, "BUZZWATCH_DETECTOR_SHARE_MARGIN", BrandParams.share_margin),
            share_margin_tweets=env_float(
                env, "BUZZWATCH_DETECTOR_SHARE_MARGIN_TWEETS", BrandParams.share_margin_tweets
            ),
            share_margin_floor=env_float(
                env, "BUZZWATCH_DETECTOR_SHARE_MARGIN_FLOOR", BrandParams.share_margin_floor
            ),
            end_score=env_float(env, "BUZZWATCH_DETECTOR_END_SCORE", BrandParams.end_score),
            min_negatives=env_int(env, "BUZZWATCH_DETECTOR_MIN_NEGATIVES", BrandParams.min_negatives),
            thin_min_negatives=env_int(
                env, "BUZZWATCH_DETECTOR_THIN_MIN_NEGATIVES", BrandParams.thin_min_negatives
            ),
            thin_end_quiet_minutes=env_int(
                env, "BUZZWATCH_DETECTOR_THIN_END_QUIET_MINUTES", BrandParams.thin_end_quiet_minutes
            ),
            cooldown_minutes=env_int(
                env, "BUZZWATCH_DETECTOR_COOLDOWN_MINUTES", BrandParams.cooldown_minutes
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
            not_ids = [name for name in overrides if not BRAND_ID.match(name)]
            if not_ids:  # "United" matched no tweet: the stream and `buzzwatch replay` carry the id, united
                raise SettingsError(
                    "BUZZWATCH_DETECTOR_BRANDS names each brand by its id (lower-case letters, digits, '-', "
                    f"'_': as config/brands.toml and every tweet name it, 'united'), not {not_ids[0]!r}"
                )
        return cls(
            lateness_tolerance_s=env_float(env, "BUZZWATCH_DETECTOR_LATENESS_S", cls.lateness_tolerance_s),
            tick_seconds=env_float(env, "BUZZWATCH_DETECTOR_TICK_S", cls.tick_seconds),
            defaults=defaults,
            brand_overrides=overrides,
            brand_zones=(brands or BrandsFile.read(brands_file(env))).configured_zones(),
        )


def _typed_override(defaults: BrandParams, override: Mapping[str, Any], brand: str) -> dict[str, Any]:
    """The brand's overridden settings in their defaults' types; a SettingsError names a value that is not."""
    typed: dict[str, Any] = {}
    for setting in fields(BrandParams):
        if setting.name not in override:
            continue
        value, kind = override[setting.name], type(getattr(defaults, setting.name))
        try:
            number = float(value) if not isinstance(value, bool) else math.nan  # float(True) is 1.0
        except (TypeError, ValueError):
            number = math.nan
        if math.isnan(number) or (kind is int and not number.is_integer()):
            expected = "a whole number" if kind is int else "a number"
            raise SettingsError(
                f"detector setting {setting.name!r} for brand {brand!r} must be {expected}, got {value!r}"
            )
        typed[setting.name] = kind(number)
    return typed


def _warn_retired(settings: Mapping[str, Any], where: str) -> None:
    """Log the retired settings `settings` still names (they are ignored)."""
    retired = sorted(RETIRED_SETTINGS & set(settings))
    if retired:
        log.warning("retired detector settings ignored", extra={"settings": retired, "where": where})
