"""Watch it: per brand, its state, volume and negative share against the baseline with its alerts marked,
and the alerts that explain it; every time in event time, in the brand's own time zone."""

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from buzzwatch.settings import SettingsError
from buzzwatch.telemetry import alerts_in
from buzzwatch.zones import BrandsFile, brand_label, local_time, zone_of
from streamlit_app.settings import UiSettings
from streamlit_app.watch import (
    ALERT_MARK,
    START_MARK,
    STATE_NAMES,
    FeedError,
    FeedRecords,
    alert_marks,
    axis_clock,
    brand_alerts,
    brand_series,
    brand_states,
    brands_in,
    brands_in_a_bad_buzz_first,
    chart_offset,
    empty_hint,
    literal_markdown,
    load_records,
    local_frame,
    quoted_tweet,
)

settings = UiSettings.from_env()
st.title("Watch it")
TIME_FORMAT = "%d %b %H:%M"  # 24-hour clock, no seconds
COLORS = {"negative share": "#d62728", "baseline": "#7f7f7f", "volume": "#1f77b4"}
MARK_DASHES = {ALERT_MARK: [1, 0], START_MARK: [6, 4]}  # the alert solid, the estimated start dashed


@st.cache_resource
def configured() -> tuple[dict, dict]:
    """Each brand's time zone and display name, read once from the brands file."""
    book = BrandsFile.read(settings.brands_file)
    return book.zones(), book.names()


def records(kind: str) -> FeedRecords:
    """The stream's metrics or events, from the detection service's feed or the local sink."""
    return load_records(kind, settings.var_dir, settings.detection_url, settings.detection_cloud_run_auth)


try:
    metric_feed = records("metrics")
except FeedError as exc:
    st.error(str(exc))
    st.stop()
# This run's read, handed to the panel's first render (the feed is read once a render, not twice: from
# several detection instances that is several requests); the panel's own refreshes read it afresh.
unused_metric_feed = [metric_feed]
brands = brands_in(metric_feed.records)
if not brands:
    st.info(empty_hint(settings.var_dir, settings.detection_url))
    st.stop()

try:  # read (and cached) once here: a malformed brands file is one message, not a traceback
    zones, names = configured()
except SettingsError as exc:
    st.error(f"The brands file cannot be read: {exc}")
    st.stop()

# A brand in a bad buzz comes first (the one a person opens the page for); ?brand=ID picks one (a link).
states = brand_states(metric_feed.records)
brands = brands_in_a_bad_buzz_first(brands, states)
asked = st.query_params.get("brand")
brand = st.selectbox(
    "Brand",
    brands,
    index=brands.index(asked) if asked in brands else 0,
    format_func=lambda option: (
        brand_label(option, names) + (" · bad buzz" if states.get(option) == STATE_NAMES["bad_buzz"] else "")
    ),
)
st.query_params["brand"] = brand
label = brand_label(brand, names)
live = st.toggle("Live", value=True, help=f"refresh every {settings.refresh_s:g} s")


def chart(frame: pd.DataFrame, marks: pd.DataFrame, names: list[str], title: str, clock: str) -> alt.Chart:
    """Lines of `names` over event time, alerts marked: dashed at a buzz's start, solid at the alert.
    `clock` names the axis's zone and offset (`chart_offset`); each tooltip gives its point's local time."""
    x = alt.X("time:T", title=f"event time ({clock})", axis=alt.Axis(format=TIME_FORMAT, labelAngle=0))
    y_format = ".0%" if title == "negative share" else "~s"
    lines = (
        alt.Chart(frame[frame["series"].isin(names)])
        .mark_line(interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y("value:Q", title=title, axis=alt.Axis(format=y_format)),
            color=alt.Color(
                "series:N",
                scale=alt.Scale(domain=names, range=[COLORS[name] for name in names]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=[
                alt.Tooltip("when:N", title="time"),
                "series:N",
                alt.Tooltip("value:Q", format=".3"),
            ],
        )
    )
    if marks.empty:
        return lines
    rules = (
        alt.Chart(marks)
        .mark_rule(color="#b00020")
        .encode(
            x="time:T",
            strokeDash=alt.StrokeDash(
                "mark:N",
                scale=alt.Scale(domain=list(MARK_DASHES), range=list(MARK_DASHES.values())),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=[alt.Tooltip("when:N", title="time"), "mark:N"],
        )
    )
    return alt.layer(lines, rules).resolve_scale(strokeDash="independent")


def reasons_chart(reasons: dict[str, float]) -> alt.Chart:
    """The negative reasons as horizontal bars with their whole names (no cut labels)."""
    frame = pd.DataFrame({"reason": list(reasons), "share": list(reasons.values())})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("share:Q", axis=alt.Axis(format=".0%"), title="share of the negative tweets"),
            y=alt.Y("reason:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0)),
            tooltip=["reason:N", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(height=alt.Step(28))
    )


@st.fragment(run_every=settings.refresh_s if live else None)
def brand_panel() -> None:
    """The state, charts and alerts of one brand, refreshed on their own."""
    lookback = timedelta(hours=settings.lookback_hours)
    zone = zone_of(brand, zones)
    try:
        metric_feed = unused_metric_feed.pop() if unused_metric_feed else records("metrics")
        event_feed = records("events")
    except FeedError as exc:
        st.error(str(exc))
        return
    for problem in {**event_feed.unreachable, **metric_feed.unreachable}.values():  # one per instance
        st.warning(f"{problem}; the other instances' brands are shown")
    metrics = metric_feed.records
    series = brand_series(metrics, brand, lookback)
    alerts = brand_alerts(alerts_in(event_feed.records), brand)
    state = brand_states(metrics).get(brand)
    if series.empty:
        st.info(f"No figures for {label} yet.")
    else:
        latest = series.ffill().iloc[-1]
        columns = st.columns(4)
        columns[0].metric("State", state or "not reported", help="learning while its history is short")
        columns[1].metric("Negative share", f"{latest.get('negative share', 0):.0%}")
        columns[2].metric("Usual share", f"{latest.get('baseline', 0):.0%}")
        columns[3].metric("Volume (window)", f"{latest.get('volume', 0):.0f}")
        st.caption(f"Figures up to {local_time(series.index[-1].to_pydatetime(), zone)} (event time).")
        offset = chart_offset(series, zone)
        frame = local_frame(series, zone, offset)
        shown = frame["time"].min()
        marks = alert_marks(alerts, zone, offset)
        marks = marks[marks["time"] >= shown] if not marks.empty else marks
        clock = axis_clock(zone, offset)
        shares = [name for name in ("negative share", "baseline") if name in series.columns]
        if shares:
            st.subheader("Negative share vs usual")
            st.altair_chart(chart(frame, marks, shares, "negative share", clock), width="stretch")
        if "volume" in series.columns:
            st.subheader("Volume")
            st.altair_chart(chart(frame, marks, ["volume"], "tweets in the window", clock), width="stretch")
    st.subheader(f"Alerts ({len(alerts)})")
    if not alerts:
        st.caption(f"No bad-buzz alert for {label} yet.")
    for alert in alerts:
        fired = pd.Timestamp(alert["fired_at"]).to_pydatetime()
        started = pd.Timestamp(alert["started_at"]).to_pydatetime() if alert.get("started_at") else None
        since = f"since {local_time(started, zone)} · " if started else ""
        title = (
            f"{since}alerted {local_time(fired, zone)} · negative {alert.get('negative_share', 0):.0%} vs "
            f"{alert.get('baseline_share', 0):.0%} usually · {alert.get('volume')} tweets · "
            f"{'new' if alert.get('kind', 'new') == 'new' else 'growing'}"
        )
        with st.expander(title, expanded=alert is alerts[0]):
            window_start = pd.Timestamp(alert["window_start"]).to_pydatetime()
            window_end = pd.Timestamp(alert["window_end"]).to_pydatetime()
            st.write(
                f"Measured from {local_time(window_start, zone)} to {local_time(window_end, zone, False)}"
                + (f", started about {local_time(started, zone)} by estimate." if started else ".")
            )
            terms = literal_markdown(", ".join(alert.get("top_terms") or [])) or "none stands out"
            tags = literal_markdown(", ".join(alert.get("top_hashtags") or [])) or "none stands out"
            covered = alert.get("terms_share")
            reach = f" (in {covered:.0%} of the negative tweets)" if covered is not None and terms else ""
            st.markdown(f"**Terms:** {terms}{reach}  \n**Hashtags:** {tags}")
            reasons = alert.get("reasons") or {}
            if reasons:
                main = alert.get("main_reason")
                st.markdown(f"**Why:** mostly {main}" if main else "**Why:** no single reason stands out")
                st.altair_chart(reasons_chart(reasons), width="stretch")
            samples = alert.get("samples") or []
            if samples:
                share = alert.get("samples_share")
                note = (
                    f" (with their copies, {share:.0%} of the negative tweets)" if share is not None else ""
                )
                st.markdown(f"**Representative tweets**{note}")
                for sample in samples:
                    st.markdown(
                        quoted_tweet(str(sample.get("text", "") if isinstance(sample, dict) else sample))
                    )


brand_panel()
