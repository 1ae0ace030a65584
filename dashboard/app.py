"""edgetrim dashboard.

    make dashboard     # or: streamlit run dashboard/app.py (serves on 127.0.0.1)

Each page is a file under dashboard/pages/ with a main(); the files are registered as pages
(not the functions) so that AppTest can switch between them in one session, as a person does.
"""
from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="edgetrim", page_icon="✂️", layout="wide")
page = st.navigation([
    st.Page(PAGES / "model_page.py", title="Model & data", url_path="model", default=True),
    st.Page(PAGES / "explore_page.py", title="Explore", url_path="explore"),
    st.Page(PAGES / "sweep_page.py", title="Sweep", url_path="sweep"),
    st.Page(PAGES / "tradeoffs_page.py", title="Trade-offs", url_path="tradeoffs"),
    st.Page(PAGES / "export_page.py", title="Export", url_path="export"),
])
page.run()
