"""The analyst workbench (Streamlit): entry script app/workbench.py, pages in app/app_pages/."""
