"""edgetrim dashboard.

    make dashboard     # or: streamlit run dashboard/app.py (serves on 127.0.0.1)
"""
import streamlit as st

from dashboard.pages import model_page

st.set_page_config(page_title="edgetrim", page_icon="✂️", layout="wide")
page = st.navigation([st.Page(model_page.main, title="Model & data", url_path="model", default=True)])
page.run()
