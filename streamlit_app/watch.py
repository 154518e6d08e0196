"""The Watch it page's data: the stream's records (local telemetry sink or the detection service's feed),
per-brand series, state and alerts, in the event time of the brand's own zone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from buzzwatch.telemetry import (
    BASELINE_NEGATIVE_SHARE,
    BRAND_STATE,
    NEGATIVE_SHARE,
    SPIKE_SCORE,
    TWEET_VOLUME,
    read_local,
)

START_MARK = "buzz started (estimate)"
ALERT_MARK = "alert"
STATE_NAMES = {"learning": "Learning", "normal": "Normal", "bad_buzz": "Bad buzz"}
SERIES = {
    NEGATIVE_SHARE: "negative share",
    BASELINE_NEGATIVE_SHARE: "baseline",
    TWEET_VOLUME: "volume",
    SPIKE_SCORE: "spike score",
}
TIME_DIMENSIONS = ("event_time", "minute", "window_end")
TOOLTIP_FORMAT = "%d %b %H:%M %Z"  # 24-hour clock, no seconds, the zone's abbreviation (CET, CEST)


def _moment(record: dict[str, Any]) -> str | None:
    """Event time when the worker gives one (a replay runs faster than the clock), else the write time."""
    dimensions = record.get("dimensions") or {}
    for key in TIME_DIMENSIONS:
        if dimensions.get(key):
            return str(dimensions[key])
    return record.get("time")


def brands_in(metrics: Iterable[dict[str, Any]]) -> list[str]:
    """The brands the stream reported on, sorted."""
    return sorted(
        {
            str((record.get("dimensions") or {}).get("brand"))
            for record in metrics
            if record.get("name") in SERIES and (record.get("dimensions") or {}).get("brand")
        }
    )


def brand_series(
    metrics: Iterable[dict[str, Any]], brand: str, lookback: timedelta | None = None
) -> pd.DataFrame:
    """One row per time, one column per series; `lookback` keeps the span before the newest point.

    Relative to the newest point, not the clock: a replay of 2015 tweets still shows its last hours.
    """
    rows = []
    for record in metrics:
        name = record.get("name")
        dimensions = record.get("dimensions") or {}
        if name not in SERIES or dimensions.get("brand") != brand:
            continue
        moment = _moment(record)
        value = record.get("value")
        if moment is None or not isinstance(value, int | float):
            continue
        rows.append({"time": moment, "series": SERIES[name], "value": float(value)})
    if not rows:
        return pd.DataFrame(columns=list(SERIES.values()), index=pd.DatetimeIndex([], name="time"))
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    frame = frame.dropna(subset=["time"])
    if lookback is not None and not frame.empty:
        frame = frame[frame["time"] >= frame["time"].max() - pd.Timedelta(lookback)]
    table = frame.pivot_table(index="time", columns="series", values="value", aggfunc="last").sort_index()
    # The worker writes a brand's figures one after the other, microseconds apart: carry each value forward so
    # every row holds the latest of each series (otherwise each line is a scatter of isolated points).
    table = table.ffill()
    return table.reindex(columns=[name for name in SERIES.values() if name in table.columns])


def brand_states(metrics: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Each reporting brand's latest phase as a person reads it (Learning, Normal, Bad buzz)."""
    states: dict[str, str] = {}
    for record in metrics:
        dimensions = record.get("dimensions") or {}
        if record.get("name") == BRAND_STATE and dimensions.get("brand") and dimensions.get("state"):
            states[str(dimensions["brand"])] = str(dimensions["state"])
    return {
        brand: STATE_NAMES.get(state, state.replace("_", " ").capitalize()) for brand, state in states.items()
    }


def brands_in_a_bad_buzz_first(brands: Iterable[str], states: Mapping[str, str]) -> list[str]:
    """The brands in a bad buzz now, then the others, each group in the order given."""
    return sorted(brands, key=lambda brand: states.get(brand) != STATE_NAMES["bad_buzz"])


def chart_offset(series: pd.DataFrame, zone: tzinfo) -> timedelta:
    """The one UTC offset the charts draw every time at: `zone`'s at the series' newest point.

    Drawn at each moment's own wall-clock time, the hour repeated when summer time ends would run back on
    the axis (the line doubling over itself) and the hour skipped when it begins would leave a gap; at one
    offset the axis is event time itself. Each point's own local time is its tooltip (`when`)."""
    offset = series.index[-1].to_pydatetime().astimezone(zone).utcoffset()
    return offset if offset is not None else timedelta(0)


def offset_name(offset: timedelta) -> str:
    """'UTC+01:00', 'UTC-05:00', 'UTC+05:30': how the charts' axis names its clock."""
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def axis_clock(zone: tzinfo, offset: timedelta) -> str:
    """How the charts' axis names its clock: the zone and its offset ('Europe/Paris, UTC+01:00'), or 'UTC'."""
    name = str(zone)
    return name if name == "UTC" and not offset else f"{name}, {offset_name(offset)}"


def _on_axis(times: pd.Series, zone: tzinfo, offset: timedelta) -> tuple[pd.Series, pd.Series]:
    """UTC `times` as the charts draw them (wall-clock times at `offset`, no zone attached, so the browser
    draws them as they are, whatever its own zone) and as their tooltips read them (each one's own local
    time in `zone`, with its abbreviation: '25 Oct 02:30 CEST')."""
    drawn = (times + pd.Timedelta(offset)).dt.tz_localize(None)
    return drawn, times.dt.tz_convert(zone).dt.strftime(TOOLTIP_FORMAT)


def local_frame(series: pd.DataFrame, zone: tzinfo, offset: timedelta) -> pd.DataFrame:
    """The series in long form (time, when, series, value): `time` drawn at `offset` (`chart_offset`),
    `when` each point's local time in `zone`."""
    if series.empty:
        return pd.DataFrame(columns=["time", "when", "series", "value"])
    frame = (
        series.rename_axis("time").reset_index().melt(id_vars="time", var_name="series", value_name="value")
    )
    frame["time"], when = _on_axis(frame["time"], zone, offset)
    frame.insert(1, "when", when)
    return frame.dropna(subset=["value"])


def alert_marks(alerts: Iterable[dict[str, Any]], zone: tzinfo, offset: timedelta) -> pd.DataFrame:
    """One row per moment to mark on the charts (time, when, mark): each alert's estimated start and its
    firing time, drawn as `local_frame` draws the series."""
    rows = []
    for alert in alerts:
        for key, what in (("started_at", START_MARK), ("fired_at", ALERT_MARK)):
            moment = pd.to_datetime(alert.get(key), utc=True, errors="coerce", format="ISO8601")
            if not pd.isna(moment):
                rows.append({"time": moment, "mark": what})
    if not rows:
        return pd.DataFrame(columns=["time", "when", "mark"])
    frame = pd.DataFrame(rows)
    frame["time"], when = _on_axis(frame["time"], zone, offset)
    frame.insert(1, "when", when)
    return frame


def empty_hint(var_dir: Path, detection_url: str | None) -> str:
    """What to do when there are no figures yet: where they were looked for, and where the demo writes."""
    if detection_url:
        return f"No figures from the detection service at {detection_url} yet: it reports as tweets flow."
    demo_var = var_dir / "demo" / "var"  # where `buzzwatch demo` keeps its stack's files (stack/demo.py)
    hint = (
        f"No stream figures in {var_dir / 'telemetry'} yet. `buzzwatch demo --with-ui` starts the local "
        "stack and this app on its figures."
    )
    if (demo_var / "telemetry").is_dir():
        command = f"BUZZWATCH_VAR_DIR={demo_var} buzzwatch ui"
        hint += f" A demo wrote figures to {demo_var / 'telemetry'}: run `{command}`."
    return hint


MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()<>#+-.!|~$:&=")  # "=": a line of them makes a heading


def literal_markdown(text: str) -> str:
    """Text shown as written inside Streamlit markdown: anyone's tweet must not become a heading, a link, a
    remote image the page loads (`![](https://...)`) or LaTeX (`$50 and $20` rendered as math)."""
    return "".join(f"\\{char}" if char in MARKDOWN_SPECIALS else char for char in text)


def quoted_tweet(text: str) -> str:
    """A tweet as a markdown block quote, every line of it quoted and taken literally."""
    return "\n".join(f"> {literal_markdown(line)}" if line.strip() else ">" for line in text.splitlines())


def brand_alerts(alerts: Iterable[dict[str, Any]], brand: str) -> list[dict[str, Any]]:
    """The brand's alerts, newest first."""
    return sorted(
        (alert for alert in alerts if alert.get("brand") == brand),
        key=lambda a: str(a.get("fired_at")),
        reverse=True,
    )


class FeedError(Exception):
    """The detection service's feed could not be read; the message says why."""


@dataclass(frozen=True)
class FeedRecords:
    """The records of every source that answered, and why each other did not (URL -> FeedError message)."""

    records: list[dict[str, Any]]
    unreachable: dict[str, str] = field(default_factory=dict)


METADATA_IDENTITY = (
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity"
)


def load_records(
    kind: str, var_dir: Path, detection_url: str | None, cloud_run_auth: bool = False, timeout_s: float = 5.0
) -> FeedRecords:
    """The stream's "metrics" or "events" records: from the detection service's feed when `detection_url`
    is set (BUZZWATCH_DETECTION_URL), else from the local telemetry sink under `var_dir`.

    Several detection instances (each owning some brands' partitions) are several space-separated URLs:
    their records are merged, and one that cannot be read is named in `unreachable` while the others' brands
    are still shown. With `cloud_run_auth`, each request carries an ID token for its URL from the metadata
    server: on Cloud Run, only the app's service account may invoke the detection service. FeedError when
    none can be read.
    """
    if not detection_url:
        return FeedRecords(read_local(var_dir, kind))
    records: list[dict[str, Any]] = []
    unreachable: dict[str, str] = {}
    urls = [url.rstrip("/") for url in detection_url.split()]
    for url in urls:
        try:
            records.extend(_feed_records(kind, url, cloud_run_auth, timeout_s))
        except FeedError as exc:
            unreachable[url] = str(exc)
    if len(unreachable) == len(set(urls)):
        raise FeedError("; ".join(unreachable.values()))
    return FeedRecords(records, unreachable)


def _feed_records(kind: str, base: str, cloud_run_auth: bool, timeout_s: float) -> list[dict[str, Any]]:
    """One detection service's records of this kind."""
    headers = {}
    try:
        if cloud_run_auth:
            token = requests.get(
                METADATA_IDENTITY,
                params={"audience": base, "format": "full"},  # full: with the e-mail the service checks
                headers={"Metadata-Flavor": "Google"},
                timeout=timeout_s,
            )
            token.raise_for_status()
            headers["Authorization"] = f"Bearer {token.text}"
        response = requests.get(f"{base}/v1/watch/{kind}", headers=headers, timeout=timeout_s)
        response.raise_for_status()
        records = response.json()["records"]
        if not isinstance(records, list):
            raise TypeError(f"'records' is {type(records).__name__}, not a list")
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:  # TypeError: not our JSON
        raise FeedError(f"cannot read the detection service's {kind} at {base}: {exc}") from exc
    return [record for record in records if isinstance(record, dict)]
