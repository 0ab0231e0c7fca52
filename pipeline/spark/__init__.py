"""`--engine spark`: the same run as the in-process engine, with the heavy passes as Spark jobs.

Reading, cleaning, the statistics and chart tables and user features run in Spark (local mode, or a
cluster with --spark-master). Parsing, the checks, dedupe, bots, counts and the engagement formula are Spark
SQL expressions with the in-process rules; the in-process engine's own functions run (mapInPandas/
applyInPandas) only where Spark cannot decide exactly as they do: the few odd rows of the input
(pipeline.data.clean.parse_rows) and the audience kernel and packing. The audiences are ranked on the driver
by the in-process model stages when the clean events fit there, else engagement's holdout and audiences are
Spark jobs too (driver.py). The driver streams every table into SQLite through store.writer, so the app and
the API read the run like any other.
"""
