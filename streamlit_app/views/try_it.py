"""Try it: score a tweet (or a CSV of them), see the probabilities, and tell the model when it is wrong."""

import streamlit as st

from buzzwatch.schema import is_blank
from buzzwatch.tables import CsvError, frame_csv, read_string_csv
from streamlit_app.client import ApiError
from streamlit_app.common import answer_or_stop, require_api
from streamlit_app.scoring import (
    ERROR,
    PREDICTED_LABEL,
    clashing_columns,
    probabilities_frame,
    score_frame,
    score_summary,
)
from streamlit_app.settings import UiSettings

settings = UiSettings.from_env()
st.title("Try it")
client = require_api(settings)
served = answer_or_stop(client.model)
limits = served.get("limits", {})  # the API's own limits, so the inputs never offer what it refuses
st.session_state.setdefault("feedback_sent", {})

one_tweet, csv_file = st.tabs(["One tweet", "A CSV file"])

with one_tweet:
    with st.form("score_form"):
        text = st.text_area(
            "Tweet",
            placeholder="@AirParadis my flight is delayed again...",
            max_chars=limits.get("max_text_chars"),
        )
        submitted = st.form_submit_button("Score", type="primary")
    if submitted:
        if is_blank(text):
            st.warning("Type or paste a tweet first.")
        else:
            try:
                st.session_state["prediction"] = client.predict_one(text)
            except ApiError as exc:
                st.error(f"The API refused this text: {exc.message}")

    prediction = st.session_state.get("prediction")
    if prediction:
        prediction_id = prediction["prediction_id"]
        label = prediction["label"]
        confidence = prediction["probabilities"][label]
        st.subheader(f"{label.capitalize()} ({confidence:.0%})")
        if not prediction.get("language_supported", True):
            st.warning(
                f"This tweet looks like it is in another language ({prediction.get('language')}) than the "
                "model reads (English): the label is a guess, and the stream counts such tweets apart."
            )
        st.bar_chart(probabilities_frame(prediction), x="label", y="probability", horizontal=True)
        st.caption(f"model {prediction['model_version']} · prediction {prediction_id}")

        sent = st.session_state["feedback_sent"].get(prediction_id)
        if sent:
            st.success(f"Thanks: feedback recorded ({sent}).")
        else:
            st.write("Is this right?")
            thumbs = st.feedback("thumbs", key=f"thumbs_{prediction_id}")
            right_label, comment = None, None
            if thumbs == 1:
                right_label = label
            elif thumbs == 0:
                others = [name for name in prediction["probabilities"] if name != label]
                with st.form(f"correction_{prediction_id}"):
                    choice = st.radio("The right label", others, horizontal=True)
                    max_comment = limits.get("max_comment_chars")
                    if max_comment != 0:  # 0: the API takes no comments
                        comment = st.text_input("Comment (optional)", max_chars=max_comment)
                    if st.form_submit_button("Send correction"):
                        right_label = choice
            if right_label is not None:
                try:
                    stored = client.feedback(prediction_id, right_label, comment)
                    st.session_state["feedback_sent"][prediction_id] = stored["label"]
                except ApiError as exc:
                    if exc.status != 409:
                        st.error(f"Feedback not stored: {exc.message}")
                        st.stop()
                    st.session_state["feedback_sent"][prediction_id] = "already stored"
                st.rerun()

with csv_file:
    upload = st.file_uploader("A CSV file with a `text` column", type=["csv"])
    if upload is None:
        st.stop()
    try:
        frame = read_string_csv(upload.getvalue(), upload.name)
    except CsvError as exc:
        st.error(f"This file is not a readable CSV: {exc}")
        st.stop()
    if "text" not in frame.columns:
        st.error(f"The file has no `text` column (columns: {', '.join(map(str, frame.columns))}).")
        st.stop()
    clashes = clashing_columns(frame, served["labels"])
    if clashes:
        st.error(
            f"The file already has the column(s) {', '.join(clashes)} that scoring writes: rename them, so "
            "no column of yours is replaced."
        )
        st.stop()
    scored_key = f"scored_{upload.file_id}"
    if scored_key not in st.session_state:  # score each upload once, not on every rerun
        progress = st.progress(0.0, text=f"Scoring {len(frame)} tweets...")
        st.session_state[scored_key] = score_frame(
            client,
            frame,
            min(settings.batch_size, limits.get("max_batch", settings.batch_size)),
            on_progress=lambda done, total: progress.progress(
                done / max(total, 1), text=f"Scored {done}/{total}"
            ),
        )
        progress.empty()
    scored = st.session_state[scored_key]
    (st.warning if ERROR in scored.columns else st.success)(score_summary(scored))
    st.dataframe(scored, width="stretch")
    st.bar_chart(scored[PREDICTED_LABEL].value_counts())
    st.download_button("Download the scored CSV", frame_csv(scored), "scored.csv", "text/csv")
