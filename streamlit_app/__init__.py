"""The Streamlit app: Try it (score and correct), Watch it (the live stream per brand), The model."""
