"""edgetrim dashboard.

    make dashboard     # or: streamlit run dashboard/app.py (serves on 127.0.0.1)
"""
import streamlit as st

from dashboard.pages import explore_page, export_page, model_page, sweep_page, tradeoffs_page

st.set_page_config(page_title="edgetrim", page_icon="✂️", layout="wide")
page = st.navigation([
    st.Page(model_page.main, title="Model & data", url_path="model", default=True),
    st.Page(explore_page.main, title="Explore", url_path="explore"),
    st.Page(sweep_page.main, title="Sweep", url_path="sweep"),
    st.Page(tradeoffs_page.main, title="Trade-offs", url_path="tradeoffs"),
    st.Page(export_page.main, title="Export", url_path="export"),
])
page.run()
