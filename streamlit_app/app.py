"""BuzzWatch in the browser: `buzzwatch ui` (or `streamlit run streamlit_app/app.py`)."""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="BuzzWatch", page_icon=":material/campaign:", layout="wide")
page = st.navigation(
    [
        st.Page(VIEWS / "try_it.py", title="Try it", icon=":material/search:", default=True),
        st.Page(VIEWS / "watch_it.py", title="Watch it", icon=":material/monitoring:"),
        st.Page(VIEWS / "the_model.py", title="The model", icon=":material/model_training:"),
    ]
)
page.run()
