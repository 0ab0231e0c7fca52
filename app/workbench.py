"""Audience Workbench: `streamlit run app/workbench.py` from the repository root."""
from __future__ import annotations

import streamlit as st

from app import context  # the project is installed (`pip install -e .`), so app/ imports as a package

# The page registry: adding a page is one line here.
PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/insights:", default=True),
    st.Page("app_pages/audiences.py", title="Audiences", icon=":material/groups:"),
    st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/leaderboard:"),
    st.Page("app_pages/retrain.py", title="Retrain", icon=":material/model_training:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("app_pages/service.py", title="Service", icon=":material/monitor_heart:"),
]

st.set_page_config(page_title="Audience Workbench", page_icon=":material/target:", layout="wide")
page = st.navigation(PAGES)
context.sidebar()
page.run()
