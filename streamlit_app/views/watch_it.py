"""Watch it: per brand, volume and negative share against the baseline, and the alerts that explain it."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from buzzwatch.telemetry import alerts_in
from streamlit_app.settings import UiSettings
from streamlit_app.watch import FeedError, brand_alerts, brand_series, brands_in, load_records

settings = UiSettings.from_env()
st.title("Watch it")


def records(kind: str) -> list[dict]:
    """The stream's metrics or events, from the detection service's feed or the local sink."""
    return load_records(kind, settings.var_dir, settings.detection_url, settings.detection_cloud_run_auth)


try:
    brands = brands_in(records("metrics"))
except FeedError as exc:
    st.error(str(exc))
    st.stop()
if not brands:
    where = settings.detection_url or settings.var_dir / "telemetry"
    st.info(
        f"No stream figures from {where} yet. Start the local stack with `buzzwatch demo`: the detection "
        "service writes its metrics and alerts there."
    )
    st.stop()

brand = st.selectbox("Brand", brands)
live = st.toggle("Live", value=True, help=f"refresh every {settings.refresh_s:g} s")


@st.fragment(run_every=settings.refresh_s if live else None)
def brand_panel() -> None:
    """The charts and alerts of one brand, refreshed on its own."""
    lookback = timedelta(hours=settings.lookback_hours)
    try:
        series = brand_series(records("metrics"), brand, lookback)
        alerts = brand_alerts(alerts_in(records("events")), brand)
    except FeedError as exc:
        st.error(str(exc))
        return
    if series.empty:
        st.info(f"No figures for {brand} yet.")
    else:
        latest = series.ffill().iloc[-1]
        columns = st.columns(3)
        columns[0].metric("Negative share", f"{latest.get('negative share', 0):.0%}")
        columns[1].metric("Baseline", f"{latest.get('baseline', 0):.0%}")
        columns[2].metric("Volume (window)", f"{latest.get('volume', 0):.0f}")
        shares = [name for name in ("negative share", "baseline") if name in series.columns]
        if shares:
            st.subheader("Negative share vs baseline")
            colors = {"negative share": "#d62728", "baseline": "#7f7f7f"}
            st.line_chart(series[shares], color=[colors[name] for name in shares])
        if "volume" in series.columns:
            st.subheader("Volume")
            st.area_chart(series[["volume"]])
    st.subheader(f"Alerts ({len(alerts)})")
    if not alerts:
        st.caption(f"No bad-buzz alert for {brand} yet.")
    for alert in alerts:
        title = (
            f"{alert.get('fired_at')} · negative {alert.get('negative_share', 0):.0%} vs "
            f"{alert.get('baseline_share', 0):.0%} · {alert.get('volume')} tweets · "
            f"{alert.get('kind', 'new')}"
        )
        with st.expander(title, expanded=alert is alerts[0]):
            st.write(
                f"Window {alert.get('window_start')} to {alert.get('window_end')}, score {alert.get('score')}"
            )
            terms = ", ".join(alert.get("top_terms") or []) or "none"
            tags = ", ".join(alert.get("top_hashtags") or []) or "none"
            st.markdown(f"**Over-represented terms:** {terms}  \n**Hashtags:** {tags}")
            reasons = alert.get("reasons") or {}
            if reasons:
                st.bar_chart(pd.Series(reasons, name="share"), horizontal=True)
            samples = alert.get("samples") or []
            if samples:
                st.markdown("**Representative tweets**")
                for sample in samples:
                    st.markdown(f"> {sample.get('text', sample) if isinstance(sample, dict) else sample}")


brand_panel()
