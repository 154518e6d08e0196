"""The model: the champion's evaluation (metrics, confusion matrix) and the feedback received so far."""

import altair as alt
import streamlit as st

from streamlit_app.common import answer_or_stop, require_api
from streamlit_app.model_view import (
    CHOSEN_ON,
    confusion_frame,
    feedback_frame,
    metric_sections,
    other_metrics,
    per_class_frame,
    readable,
)
from streamlit_app.settings import UiSettings

settings = UiSettings.from_env()
st.title("The model")
client = require_api(settings)
model = answer_or_stop(client.model)
labels = model["labels"]
st.caption(f"Serving model **{model['model_version']}** · labels: {', '.join(labels)}")


def heatmap(frame, x: str, y: str, title: str) -> alt.Chart:
    """A labelled count heatmap."""
    base = alt.Chart(frame, title=title).encode(
        x=alt.X(f"{x}:N", sort=labels), y=alt.Y(f"{y}:N", sort=labels)
    )
    cells = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")))
    return cells + base.mark_text().encode(text="count:Q")


sections = metric_sections(model["metrics"])
if not sections:
    st.info("This model carries no evaluation metrics.")
for name, report in sections:
    st.subheader(readable(name))
    if name in CHOSEN_ON:
        st.caption(
            "This set chose the model: its figures are optimistic; the test sets are the fair estimate."
        )
    columns = st.columns(4)
    for column, key in zip(columns, ("macro_f1", "macro_recall", "accuracy", "n"), strict=True):
        if key in report:
            value = report[key]
            column.metric(readable(key), f"{int(value):,}" if key == "n" else f"{value:.3f}")
    per_class = per_class_frame(report)
    if per_class is not None:
        st.dataframe(per_class, width="stretch")
    matrix = confusion_frame(report.get("confusion_matrix"), labels)
    if matrix is not None:
        st.altair_chart(heatmap(matrix, "predicted", "true", f"Confusion matrix ({name})"), width="stretch")
others = other_metrics(model["metrics"])
if others:
    st.dataframe(
        {"metric": [readable(key) for key in others], "value": list(others.values())}, hide_index=True
    )

st.subheader("Feedback received so far")
stats = answer_or_stop(client.feedback_stats)
if not stats["total"]:
    st.info("No feedback yet: correct a prediction on the Try it page.")
    st.stop()
columns = st.columns(3)
columns[0].metric("Feedback", stats["total"])
columns[1].metric("Model was right", stats["correct"])
columns[2].metric("Corrections", f"{stats['wrong']} ({stats['wrong'] / stats['total']:.0%} of the feedback)")
st.altair_chart(
    heatmap(feedback_frame(stats), "correct", "predicted", "Predicted vs corrected"), width="stretch"
)
st.caption(
    f"Last feedback at {stats['last_received_at']}. Export: GET /v1/admin/feedback.csv with the API key."
)
