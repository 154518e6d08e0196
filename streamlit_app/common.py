"""What every page needs: the settings, the cached API client, and the guard that stops without an API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from streamlit_app.client import ApiClient, ApiError
from streamlit_app.settings import UiSettings

Answer = TypeVar("Answer")


@st.cache_resource
def api_client(api_url: str) -> ApiClient:
    """One HTTP session per API URL for the whole server."""
    return ApiClient(api_url)


def require_api(settings: UiSettings) -> ApiClient:
    """The client, or an error and a stop when the API is not ready."""
    client = api_client(settings.api_url)
    problem = client.not_ready()
    if problem is not None:
        st.error(
            f"The scoring API at {settings.api_url} is not ready ({problem}). Start it with "
            "`buzzwatch api --host 127.0.0.1 --port 8080`, or set BUZZWATCH_API_URL."
        )
        st.stop()
    return client


def answer_or_stop(call: Callable[[], Answer]) -> Answer:
    """The API's answer; if it fails after the ready check (restarting, its database gone), its message on
    the page and a stop instead of a traceback."""
    try:
        return call()
    except ApiError as exc:
        st.error(f"The scoring API did not answer: {exc.message}")
        st.stop()
