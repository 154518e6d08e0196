"""BuzzWatch in the browser: `buzzwatch ui` (or `streamlit run streamlit_app/app.py`)."""

from pathlib import Path

import streamlit as st

from buzzwatch.settings import SettingsError
from streamlit_app.settings import UiSettings

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="BuzzWatch", page_icon=":material/campaign:", layout="wide")
try:  # every page reads these: a malformed one is one message naming it, not a traceback on each page
    UiSettings.from_env()
except SettingsError as exc:
    st.error(f"BuzzWatch cannot start: {exc}")
    st.stop()
page = st.navigation(
    [
        st.Page(VIEWS / "try_it.py", title="Try it", icon=":material/search:", default=True),
        st.Page(VIEWS / "watch_it.py", title="Watch it", icon=":material/monitoring:"),
        st.Page(VIEWS / "the_model.py", title="The model", icon=":material/model_training:"),
    ]
)
page.run()
