"""Load tests of the serving API: `python -m stress run` (locust) and `python -m stress bench` (wrk)."""
