"""What every page needs: the settings, the cached API client, and the guard that stops without an API."""

from __future__ import annotations

import streamlit as st

from streamlit_app.client import ApiClient
from streamlit_app.settings import UiSettings


@st.cache_resource
def api_client(api_url: str) -> ApiClient:
    """One HTTP session per API URL for the whole server."""
    return ApiClient(api_url)


def require_api(settings: UiSettings) -> ApiClient:
    """The client, or an error and a stop when the API is not ready."""
    client = api_client(settings.api_url)
    if not client.ready():
        st.error(
            f"The scoring API at {settings.api_url} is not ready. Start it with "
            "`buzzwatch api --host 127.0.0.1 --port 8080`, or set BUZZWATCH_API_URL."
        )
        st.stop()
    return client
