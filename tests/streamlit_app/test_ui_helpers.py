"""The pure helpers behind the pages."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from streamlit_app.model_view import confusion_frame, metric_sections, other_metrics
from streamlit_app.watch import (
    ALERT_MARK,
    START_MARK,
    alert_marks,
    axis_clock,
    chart_offset,
    literal_markdown,
    local_frame,
    offset_name,
    quoted_tweet,
)


def test_metric_sections_read_the_flat_keys_of_the_artifact() -> None:
    metrics = {
        "validation_airline_macro_f1": 0.8,
        "validation_airline_accuracy": 0.85,
        "validation_airline_n": 1500.0,
        "validation_airline_confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "tweeteval_test_macro_recall": 0.66,
        "selection_score": 0.7,
        "train_seconds": 900.0,
    }
    sections = dict(metric_sections(metrics))
    assert sections["validation_airline"]["macro_f1"] == 0.8
    assert sections["validation_airline"]["n"] == 1500.0
    assert sections["tweeteval_test"] == {"macro_recall": 0.66}
    assert other_metrics(metrics) == {"selection_score": 0.7, "train_seconds": 900.0}
    frame = confusion_frame(
        sections["validation_airline"]["confusion_matrix"], ["negative", "neutral", "positive"]
    )
    assert frame is not None and frame["count"].sum() == 3


def test_metric_sections_read_nested_and_top_level_reports() -> None:
    assert metric_sections({"macro_f1": 0.5})[0] == ("evaluation", {"macro_f1": 0.5})
    assert metric_sections({"test": {"accuracy": 0.9}}) == [("test", {"accuracy": 0.9})]
    assert confusion_frame([[1, 2]], ["a", "b"]) is None


def test_brand_series_carries_values_forward_between_the_workers_writes() -> None:
    from streamlit_app.watch import brand_series

    records = [
        {
            "name": "negative_share",
            "value": 0.2,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000001Z",
        },
        {
            "name": "baseline_negative_share",
            "value": 0.1,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000002Z",
        },
        {
            "name": "tweet_volume",
            "value": 5,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:00.000003Z",
        },
        {
            "name": "negative_share",
            "value": 0.6,
            "dimensions": {"brand": "b"},
            "time": "2026-01-01T00:00:01Z",
        },
        {
            "name": "negative_share",
            "value": 0.9,
            "dimensions": {"brand": "other"},
            "time": "2026-01-01T00:00:02Z",
        },
    ]
    series = brand_series(records, "b")
    assert list(series.columns) == ["negative share", "baseline", "volume"]
    assert series.iloc[-1].tolist() == [0.6, 0.1, 5.0]
    assert series.iloc[2:].notna().all().all()


def test_a_tweet_is_shown_literally_in_markdown() -> None:
    """Tweets are anyone's: '$50 and $20' rendered as LaTeX, '![](url)' loaded a remote image."""
    text = (
        "Paid $50 & $20 *twice* ![x](https://t.test/p.png) :red[hi] <b>\n# not a heading\n\n- @united #fail"
    )
    quoted = quoted_tweet(text)
    assert quoted == (
        r"> Paid \$50 \& \$20 \*twice\* \!\[x\]\(https\://t\.test/p\.png\) \:red\[hi\] \<b\>" + "\n"
        r"> \# not a heading" + "\n>\n"
        r"> \- @united \#fail"
    )
    assert literal_markdown("lost, luggage") == "lost, luggage"


@pytest.mark.parametrize(
    "tweet",
    [
        "Worst airline ever\n===",
        "Worst airline ever\n---",
        "# lost bag",
        "[call us](https://t.test)",
        "<b>x</b>",
    ],
)
def test_no_tweet_becomes_a_heading_a_link_or_html_in_commonmark(tweet: str) -> None:
    """A tweet's "===" line made the line above it a heading (a setext heading) in a quoted sample."""
    from markdown_it import MarkdownIt

    for shown in (quoted_tweet(tweet), "**Terms:** " + literal_markdown(tweet)):
        html = MarkdownIt("commonmark").render(shown)
        assert not re.search(r"<(h\d|a|img|hr)\b", html) and "<b>" not in html, html


def _paris_minutes(first: str, minutes: int) -> pd.DataFrame:
    """A brand's negative share a minute from `first` (UTC), as `brand_series` gives it."""
    index = pd.date_range(first, periods=minutes, freq="min", tz="UTC", name="time")
    return pd.DataFrame({"negative share": [0.25] * minutes}, index=index)


def test_the_charts_never_run_back_when_summer_time_ends() -> None:
    """Paris's clocks go back from 03:00 CEST to 02:00 CET at 01:00 UTC on 2026-10-25: drawn at their own
    wall-clock times, the hour 02:00-03:00 came twice and the line ran back over itself."""
    zone = ZoneInfo("Europe/Paris")
    series = _paris_minutes("2026-10-24 23:30", 120)  # 01:30 CEST to 02:29 CET
    offset = chart_offset(series, zone)
    assert offset == timedelta(hours=1) and offset_name(offset) == "UTC+01:00"
    frame = local_frame(series, zone, offset)
    assert frame["time"].is_monotonic_increasing and frame["time"].is_unique
    assert frame["time"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()  # event time, at one offset
    assert frame["time"].iloc[0] == pd.Timestamp("2026-10-25 00:30")  # 01:30 CEST drawn at UTC+01:00
    assert frame["when"].iloc[0] == "25 Oct 01:30 CEST"  # the tooltip: its own local time
    assert frame["when"].iloc[89] == "25 Oct 02:59 CEST" and frame["when"].iloc[90] == "25 Oct 02:00 CET"
    alert = {"started_at": "2026-10-25T00:50:00Z", "fired_at": "2026-10-25T01:05:00Z"}
    marks = alert_marks([alert], zone, offset)
    assert marks["time"].tolist() == [pd.Timestamp("2026-10-25 01:50"), pd.Timestamp("2026-10-25 02:05")]
    assert marks["when"].tolist() == ["25 Oct 02:50 CEST", "25 Oct 02:05 CET"]
    assert marks["mark"].tolist() == [START_MARK, ALERT_MARK]


def test_the_charts_leave_no_gap_when_summer_time_begins() -> None:
    """On 2026-03-29 Paris skips 02:00-03:00: at the newest point's offset the minutes stay one apart."""
    zone = ZoneInfo("Europe/Paris")
    series = _paris_minutes("2026-03-29 00:30", 60)  # 01:30 CET to 03:29 CEST
    offset = chart_offset(series, zone)
    assert offset_name(offset) == "UTC+02:00"
    frame = local_frame(series, zone, offset)
    assert frame["time"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()
    assert frame["when"].iloc[29] == "29 Mar 01:59 CET" and frame["when"].iloc[30] == "29 Mar 03:00 CEST"


@pytest.mark.parametrize(
    ("zone", "name"),
    [("America/Chicago", "UTC-06:00"), ("Asia/Kolkata", "UTC+05:30"), ("UTC", "UTC+00:00")],
)
def test_the_axis_names_its_offset(zone: str, name: str) -> None:
    series = _paris_minutes("2026-12-01 12:00", 3)
    offset = chart_offset(series, ZoneInfo(zone))
    assert offset_name(offset) == name
    assert axis_clock(ZoneInfo(zone), offset) == (zone if zone == "UTC" else f"{zone}, {name}")
    assert alert_marks([], ZoneInfo(zone), timedelta(0)).empty
