"""The Streamlit dashboard for reliability teams and leads."""
