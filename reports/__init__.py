"""Figures (plotly) shared by the app and the static HTML report: `python -m reports --out report.html`."""
